"""The camera sections of ``capture``: the overview camera beside the plate camera, and the plate camera's exposure.

Kept apart from :mod:`edge.config.model` so the capture section reads as one idea: where frames come from
(model.py), a second camera (``capture.overview``) and how the plate camera exposes (``capture.exposure``).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


def check_size(v: tuple[int, int]) -> tuple[int, int]:
    """A frame size (width, height) between 32 and 8192 pixels on each side."""
    if v[0] < 32 or v[1] < 32 or v[0] > 8192 or v[1] > 8192:
        raise ValueError(f"size {list(v)} must be between 32 and 8192 pixels on each side")
    return v


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False, allow_inf_nan=False)


class OverviewConfig(_Section):
    """A second, colour camera whose frame nearest in time to a read is the read's overview image."""

    source: Literal["picamera", "video", "stream"] = Field(
        "picamera", description="Where the overview frames come from: a second Pi camera, a video file (a replay) or "
        "a URL."
    )
    camera_index: int = Field(
        1, ge=0, le=7, description="picamera2 camera index of the overview camera (Pi 5: 0 and 1, the two connectors)."
    )
    path: str | None = Field(None, description="Overview video file or stream URL (not for picamera).")
    size: tuple[int, int] = Field((1920, 1080), description="Overview frame size (width, height) from a Pi camera.")
    fps: float = Field(10.0, gt=0, le=120, description="Overview camera frame rate (a Pi camera).")
    offset_s: float = Field(
        0.0, ge=-3600.0, le=3600.0,
        description="Seconds added to the overview's frame times to put them on the plate camera's clock (a replay: "
        "the overview recording starts this long after the plate recording).",
    )
    tolerance_s: float = Field(
        0.1, gt=0.0, le=5.0,
        description="Largest time between a read's frame and the overview frame paired with it; none that near: "
        "the read goes without an overview image (health: overview_missing).",
    )
    buffer_frames: int = Field(
        8, ge=2, le=256,
        description="Most overview frames held in memory for pairing (6.2 MB each at 1080p; one the plate camera's "
        "time has passed is let go once a later one is nearer); one pushed out before the plate camera's time "
        "reached it is counted (health: overview_dropped).",
    )

    @field_validator("size")
    @classmethod
    def _positive_size(cls, v: tuple[int, int]) -> tuple[int, int]:
        return check_size(v)

    @model_validator(mode="after")
    def _path_needed(self) -> OverviewConfig:
        if self.source != "picamera" and not self.path:
            raise ValueError(f"capture.overview.path is required when capture.overview.source is {self.source!r}")
        return self


class ExposureProfile(_Section):
    """The plate camera's controls in one light (picamera2: AeEnable, ExposureTime, AnalogueGain,
    FrameDurationLimits) and whether the IR illuminator is on."""

    auto_exposure: bool = Field(
        True, description="Let the camera choose exposure (with exposure_time_us set it holds that shutter and "
        "varies the gain only)."
    )
    exposure_time_us: int | None = Field(
        None, ge=10, le=1_000_000,
        description="Shutter in microseconds (UK roadside practice about 1000, 1/1000 s; 1/500 s holds to about 40 "
        "mph); none: the camera's choice.",
    )
    analogue_gain_max: float = Field(
        8.0, ge=1.0, le=64.0,
        description="Analogue gain cap: with auto-exposure off the gain used; with it on, a frame above it fixes "
        "the gain at the cap until the profile changes.",
    )
    frame_duration_us: int | None = Field(
        None, ge=1000, le=10_000_000,
        description="Frame duration in microseconds (both FrameDurationLimits); none: from capture.fps.",
    )
    ir_light: bool = Field(False, description="Switch the IR illuminator on (capture.exposure.ir_gpio).")

    @model_validator(mode="after")
    def _shutter_fits_frame(self) -> ExposureProfile:
        if (self.exposure_time_us is not None and self.frame_duration_us is not None
                and self.exposure_time_us > self.frame_duration_us):
            raise ValueError(f"exposure_time_us {self.exposure_time_us} is longer than frame_duration_us "
                             f"{self.frame_duration_us}: a frame cannot expose longer than it lasts")
        if not self.auto_exposure and self.exposure_time_us is None:
            raise ValueError("auto_exposure is off: give exposure_time_us (the shutter to hold)")
        return self


class NightProfile(ExposureProfile):
    """The night defaults: a short manual shutter at a high gain under the IR lamp (UK roadside practice)."""

    auto_exposure: bool = Field(
        False, description="Let the camera choose exposure; off by night: the IR-lit plate sets the level."
    )
    exposure_time_us: int | None = Field(
        1000, ge=10, le=1_000_000,
        description="Shutter in microseconds (UK roadside practice about 1000, 1/1000 s; 1/500 s holds to about 40 "
        "mph; aim reports the blur).",
    )
    analogue_gain_max: float = Field(
        12.0, ge=1.0, le=64.0,
        description="Analogue gain cap: with auto-exposure off the gain used; with it on, a frame above it fixes "
        "the gain at the cap until the profile changes.",
    )
    ir_light: bool = Field(True, description="Switch the IR illuminator on (capture.exposure.ir_gpio).")


class ExposureConfig(_Section):
    """Day and night profiles of the plate camera, switched by the scene's brightness or by a schedule."""

    switch: Literal["none", "lux", "schedule"] = Field(
        "none", description="What switches day and night: none (the day profile always), lux (picamera2's Lux "
        "metadata, with hysteresis) or schedule (night_from to night_until, local time)."
    )
    day: ExposureProfile = Field(default_factory=ExposureProfile, description="Controls by day.")
    night: NightProfile = Field(default_factory=NightProfile, description="Controls by night.")
    night_below_lux: float = Field(
        20.0, ge=0.0, le=100_000.0, description="Switch to night when the scene is darker than this (lux)."
    )
    day_above_lux: float = Field(
        60.0, ge=0.0, le=100_000.0,
        description="Switch back to day when brighter than this (lux); above night_below_lux (the hysteresis). A "
        "NoIR camera sees its own IR lamp: set it above what the lamp alone gives.",
    )
    hold_s: float = Field(
        30.0, ge=0.0, le=3600.0, description="How long the light must stay past a threshold before the profile "
        "switches."
    )
    night_from: str = Field("19:00", description="Schedule: night starts (HH:MM, local time of schedule_timezone).")
    night_until: str = Field("07:00", description="Schedule: night ends (HH:MM, local time).")
    schedule_timezone: str = Field("Europe/London", description="Time zone of the schedule (IANA name).")
    ir_gpio: int | None = Field(
        None, ge=0, le=27, description="BCM GPIO pin driving the IR illuminator (gpiozero OutputDevice); none: no "
        "lamp."
    )

    @field_validator("night_from", "night_until")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError(f"{v!r} is not a time of day as HH:MM (00:00 to 23:59)")
        return v

    @field_validator("schedule_timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$", v):
            raise ValueError(f"{v!r} is not an IANA time zone name (e.g. Europe/London, UTC)")
        return v

    @model_validator(mode="after")
    def _hysteresis(self) -> ExposureConfig:
        if self.day_above_lux <= self.night_below_lux:
            raise ValueError(f"day_above_lux {self.day_above_lux} must be above night_below_lux "
                             f"{self.night_below_lux} (the gap stops the profile flapping at dusk)")
        if self.switch == "schedule" and self.night_from == self.night_until:
            raise ValueError(f"night_from and night_until are both {self.night_from}: the schedule has no night")
        return self
