"""Day and night exposure profiles of the plate camera: which one applies now, and the controls it sets.

:class:`ProfileSwitch` is pure: it is told the scene's brightness (picamera2's ``Lux`` metadata) and the time,
and says which profile applies. By brightness it switches only when the light has stayed past a threshold for
``hold_s`` (night below ``night_below_lux``, day above ``day_above_lux``: the gap between them is the
hysteresis that stops it flapping at dusk, or when the IR lamp lights the scene it measures); by schedule it
follows the clock. :func:`camera_controls` turns a profile into picamera2 controls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge.config.camera import ExposureConfig, ExposureProfile
from edge.errors import ConfigError

ProfileName = Literal["day", "night"]


@dataclass(frozen=True, slots=True)
class ProfileChange:
    """The profile switched (``update`` returns one only when it did)."""

    profile: ProfileName
    reason: str


def _hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def time_zone(name: str) -> tzinfo:
    """The IANA zone named by ``capture.exposure.schedule_timezone``; a ConfigError naming it if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"capture.exposure.schedule_timezone {name!r} is not a time zone this system knows "
                          f"(an IANA name such as Europe/London or UTC)") from exc


class ProfileSwitch:
    """Chooses the day or night profile from brightness (with hysteresis and a hold time) or a schedule."""

    def __init__(self, config: ExposureConfig, zone: tzinfo | None = None) -> None:
        self.config = config
        self._zone = zone if zone is not None or config.switch != "schedule" else time_zone(config.schedule_timezone)
        self._from, self._until = _hhmm(config.night_from), _hhmm(config.night_until)
        self.profile: ProfileName = "day"
        self.switches = 0
        self._started = False
        self._past_since: datetime | None = None  # when the light first went past the other profile's threshold

    @property
    def settings(self) -> ExposureProfile:
        return self.config.night if self.profile == "night" else self.config.day

    def update(self, lux: float | None, now: datetime) -> ProfileChange | None:
        """Feed one frame's brightness and time; the change when the profile switched (the first call sets the
        starting profile without counting a switch)."""
        wanted, reason = self._wanted(lux, now)
        if not self._started:
            self._started = True
            if wanted is not None:
                self.profile = wanted
            return ProfileChange(self.profile, reason or "start")
        if wanted is None or wanted == self.profile:
            return None
        self.profile = wanted
        self.switches += 1
        self._past_since = None
        return ProfileChange(wanted, reason)

    def _wanted(self, lux: float | None, now: datetime) -> tuple[ProfileName | None, str]:
        mode = self.config.switch
        if mode == "none":
            return "day", "capture.exposure.switch is none"
        if mode == "schedule":
            return self._scheduled(now)
        return self._by_light(lux, now)

    def _scheduled(self, now: datetime) -> tuple[ProfileName, str]:
        local = now.astimezone(self._zone).time() if now.tzinfo is not None else now.time()
        start, end = self._from, self._until
        night = start <= local < end if start < end else (local >= start or local < end)
        window = f"{self.config.night_from}-{self.config.night_until}"
        return ("night", f"schedule: night {window}") if night else ("day", f"schedule: day outside {window}")

    def _by_light(self, lux: float | None, now: datetime) -> tuple[ProfileName | None, str]:
        cfg = self.config
        if lux is None:
            return None, "no Lux metadata"
        if not self._started:  # the first frame: whichever side of the middle the light is on
            middle = (cfg.night_below_lux + cfg.day_above_lux) / 2.0
            return ("night" if lux < middle else "day"), f"start at {lux:.1f} lux"
        past = lux < cfg.night_below_lux if self.profile == "day" else lux > cfg.day_above_lux
        if not past:
            self._past_since = None
            return None, ""
        if self._past_since is None:
            self._past_since = now
        held = (now - self._past_since).total_seconds()
        if held < cfg.hold_s:
            return None, ""
        other: ProfileName = "night" if self.profile == "day" else "day"
        limit = cfg.night_below_lux if other == "night" else cfg.day_above_lux
        side = "below" if other == "night" else "above"
        return other, f"{lux:.1f} lux, {side} {limit:g} for {held:.0f} s"


def camera_controls(profile: ExposureProfile, fps: float, *, reset: bool = False) -> dict[str, Any]:
    """picamera2 controls for ``profile``: AeEnable, ExposureTime (us), AnalogueGain, the frame duration (us, or
    FrameRate from ``fps``). ``reset``: after a manual profile, 0 gives shutter and gain back to the camera."""
    controls: dict[str, Any] = {"AeEnable": profile.auto_exposure}
    if profile.frame_duration_us is not None:
        controls["FrameDurationLimits"] = (profile.frame_duration_us, profile.frame_duration_us)
    else:
        controls["FrameRate"] = fps
    if profile.exposure_time_us is not None:
        controls["ExposureTime"] = profile.exposure_time_us
    elif reset:
        controls["ExposureTime"] = 0
    if not profile.auto_exposure:
        controls["AnalogueGain"] = profile.analogue_gain_max
    elif reset:
        controls["AnalogueGain"] = 0.0
    return controls
