"""Day and night profiles: switched by the scene's light with hysteresis and a hold time, or by a schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from edge.capture.exposure import ProfileSwitch, camera_controls
from edge.config.camera import ExposureConfig, ExposureProfile

T0 = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


def _feed(switch: ProfileSwitch, luxes: list[float | None], step_s: float = 1.0) -> list[str]:
    out = []
    for i, lux in enumerate(luxes):
        switch.update(lux, T0 + timedelta(seconds=i * step_s))
        out.append(switch.profile)
    return out


def test_without_a_switch_the_day_profile_always_applies() -> None:
    switch = ProfileSwitch(ExposureConfig())
    assert _feed(switch, [0.0, 0.0, 5000.0, None]) == ["day"] * 4
    assert switch.switches == 0


def test_a_dark_start_begins_at_night_without_counting_a_switch() -> None:
    switch = ProfileSwitch(ExposureConfig(switch="lux", hold_s=0))
    assert _feed(switch, [3.0]) == ["night"]
    assert switch.switches == 0


def test_light_between_the_thresholds_never_switches_either_way() -> None:
    cfg = ExposureConfig(switch="lux", night_below_lux=20, day_above_lux=60, hold_s=0)
    dusk = ProfileSwitch(cfg)
    assert _feed(dusk, [100.0, 40.0, 30.0, 21.0, 59.0]) == ["day"] * 5
    dawn = ProfileSwitch(cfg)
    assert _feed(dawn, [5.0, 25.0, 59.0, 40.0]) == ["night"] * 4
    assert dusk.switches == dawn.switches == 0


def test_the_light_must_stay_past_a_threshold_for_the_hold_time() -> None:
    switch = ProfileSwitch(ExposureConfig(switch="lux", hold_s=10))
    # dusk at t=1; a headlight's flash at t=5 restarts the hold; night from t=16 (10 s below 20 lux since t=6)
    luxes: list[float | None] = [200.0, 10.0, 10.0, 10.0, 10.0, 300.0] + [10.0] * 12
    profiles = _feed(switch, luxes)
    assert profiles.index("night") == 16
    assert switch.switches == 1
    # back to day only once it is brighter than day_above_lux (60) for 10 s; a frame without Lux changes nothing
    later = _feed(switch, [80.0] * 5 + [None] + [80.0] * 6)
    assert later[:10] == ["night"] * 10 and later[-1] == "day"
    assert switch.switches == 2


def test_the_schedule_switches_at_night_from_and_until_across_midnight() -> None:
    cfg = ExposureConfig(switch="schedule", night_from="19:30", night_until="06:45")
    switch = ProfileSwitch(cfg, zone=UTC)
    at = [datetime(2026, 12, 7, h, m, tzinfo=UTC) for h, m in ((12, 0), (19, 29), (19, 30), (23, 59), (3, 0))]
    at += [datetime(2026, 12, 8, 6, 44, tzinfo=UTC), datetime(2026, 12, 8, 6, 45, tzinfo=UTC)]
    seen = []
    for when in at:
        switch.update(None, when)
        seen.append(switch.profile)
    assert seen == ["day", "day", "night", "night", "night", "night", "day"]
    assert switch.switches == 2


def test_the_schedule_is_read_in_the_configured_time_zone() -> None:
    switch = ProfileSwitch(ExposureConfig(switch="schedule", night_from="19:00", night_until="07:00",
                                          schedule_timezone="Europe/London"))
    switch.update(None, datetime(2026, 7, 1, 18, 30, tzinfo=UTC))  # 19:30 British Summer Time
    assert switch.profile == "night"


def test_profiles_become_picamera2_controls() -> None:
    night = ExposureProfile(auto_exposure=False, exposure_time_us=1000, analogue_gain_max=12.0,
                            frame_duration_us=33_333, ir_light=True)
    assert camera_controls(night, 25.0) == {"AeEnable": False, "FrameDurationLimits": (33_333, 33_333),
                                            "ExposureTime": 1000, "AnalogueGain": 12.0}
    day = ExposureProfile()
    assert camera_controls(day, 25.0) == {"AeEnable": True, "FrameRate": 25.0}
    # after a manual profile, 0 gives shutter and gain back to the camera's auto-exposure
    assert camera_controls(day, 25.0, reset=True) == {"AeEnable": True, "FrameRate": 25.0, "ExposureTime": 0,
                                                      "AnalogueGain": 0.0}
    shutter_priority = ExposureProfile(exposure_time_us=500)
    assert camera_controls(shutter_priority, 30.0)["ExposureTime"] == 500


@pytest.mark.parametrize(("section", "words"), [
    ({"switch": "lux", "night_below_lux": 50, "day_above_lux": 40}, "must be above night_below_lux"),
    ({"day": {"auto_exposure": False}}, "give exposure_time_us"),
    ({"night": {"exposure_time_us": None}}, "give exposure_time_us"),
    ({"day": {"exposure_time_us": 50_000, "frame_duration_us": 40_000}}, "cannot expose longer than it lasts"),
    ({"night_from": "25:00"}, "not a time of day"),
    ({"switch": "schedule", "night_from": "20:00", "night_until": "20:00"}, "has no night"),
])
def test_impossible_exposure_settings_are_refused_naming_them(section: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        ExposureConfig.model_validate(section)
