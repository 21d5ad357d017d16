"""The Pi cameras through picamera2 (a fake Picamera2): the plate camera's day and night profiles and IR lamp,
the overview camera's one stream, and the two cameras' frames paired by their sensor timestamps."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support.picamera import FakeLamp, FakePicamera2

from edge.capture.overview import OverviewFeed
from edge.capture.picam import PicameraSource
from edge.config.camera import ExposureConfig
from edge.domain import Frame
from edge.errors import SourceError

NOW = datetime(2026, 12, 7, 17, 0, tzinfo=UTC)
MONOTONIC_NOW = 10_000_000_000  # the monotonic clock "now": sensor time 10 s is NOW


class _Clock:
    def now(self) -> datetime:
        return NOW


def _source(camera: FakePicamera2, **kw: Any) -> PicameraSource:
    kw.setdefault("main_size", (64, 36))
    kw.setdefault("lores_size", (32, 18))
    return PicameraSource(fps=25.0, clock=_Clock(), camera_factory=lambda: camera, monotonic=lambda: MONOTONIC_NOW,
                          **kw)


def _all(source: PicameraSource) -> list[Frame]:
    got: list[Frame] = []
    with pytest.raises(SourceError, match="camera stopped delivering frames"):
        got.extend(source.frames())
    return got


def test_dusk_switches_the_plate_camera_to_its_night_controls_and_lights_the_ir_lamp() -> None:
    light = [{"Lux": 400.0, "ExposureTime": 2000, "AnalogueGain": 1.5}] * 3 + [{"Lux": 4.0}] * 5
    camera = FakePicamera2(0, frames=8, metadata=light)
    lamps: list[FakeLamp] = []

    def lamp(pin: int) -> FakeLamp:
        lamps.append(FakeLamp(pin))
        return lamps[-1]

    exposure = ExposureConfig(switch="lux", hold_s=0.1, ir_gpio=17)
    source = _source(camera, exposure=exposure, lamp_factory=lamp)
    frames = _all(source)
    assert len(frames) == 8 and camera.released == 8 and camera.closed
    assert camera.controls["AeEnable"] is False  # the night profile: manual 1/1000 s at gain 12
    assert camera.controls["ExposureTime"] == 1000 and camera.controls["AnalogueGain"] == 12.0
    # frame 3 is the first dark one (t=0.12 s), frame 6 is 0.12 s later: past the 0.1 s hold
    assert source.state.profile == "night" and source.state.switches == 1
    assert lamps[0].pin == 17 and lamps[0].switched[-2:] == [True, False]  # lit at night, off when the camera closed
    assert lamps[0].closed
    assert source.camera_health() == {"exposure_profile": "night", "profile_switches": 1, "lux": 4.0,
                                      "ir_light": True}


def test_a_camera_without_a_lamp_never_touches_gpio() -> None:
    camera = FakePicamera2(0, frames=3, metadata=[{"Lux": 2.0}] * 3)

    def no_gpio(pin: int) -> FakeLamp:
        raise AssertionError("no ir_gpio: no lamp")

    source = _source(camera, exposure=ExposureConfig(switch="lux", hold_s=0), lamp_factory=no_gpio)
    _all(source)
    assert source.state.profile == "night" and "ir_light" not in source.camera_health()


def test_auto_exposure_gain_over_the_cap_is_held_at_the_cap() -> None:
    meta = [{"Lux": 300.0, "AnalogueGain": g, "ExposureTime": 500} for g in (2.0, 9.5, 11.0, 7.9)]
    camera = FakePicamera2(0, frames=4, metadata=meta)
    exposure = ExposureConfig.model_validate({"day": {"exposure_time_us": 500, "analogue_gain_max": 8.0}})
    source = _source(camera, exposure=exposure)
    _all(source)
    assert camera.controls["ExposureTime"] == 500  # shutter priority from the start (configure)
    assert [c for c in camera.control_calls if c == {"AnalogueGain": 8.0}] == [{"AnalogueGain": 8.0}]  # once
    assert source.state.gain_capped == 1
    assert source.camera_health()["exposure_us"] == 500


def test_without_exposure_settings_the_camera_runs_as_before() -> None:
    camera = FakePicamera2(0, frames=2)
    frames = _all(_source(camera))
    assert camera.controls == {"FrameRate": 25.0} and camera.control_calls == []
    assert frames[0].lores.shape == (18, 32, 3)


def test_the_overview_camera_has_one_stream_whose_image_is_also_its_lores() -> None:
    camera = FakePicamera2(1, frames=2)
    frames = _all(_source(camera, main_size=(96, 54), lores_size=None, camera_index=1))
    assert set(camera.streams) == {"main"}
    assert frames[0].image.shape == (54, 96, 3) and frames[0].lores is frames[0].image


def test_the_two_cameras_frames_pair_by_sensor_timestamp() -> None:
    # plate camera: 25 fps from sensor time 9.0 s; overview: 10 fps from 9.013 s, and 0.05 s late on the node's clock
    plate = FakePicamera2(0, frames=20, first_ns=9_000_000_000, step_ns=40_000_000)
    wide = FakePicamera2(1, frames=12, first_ns=9_013_000_000, step_ns=100_000_000)
    feed = OverviewFeed(_source(wide, lores_size=None, camera_index=1), offset_s=-0.05, tolerance_s=0.06)
    feed.open()
    paired: list[tuple[int, int | None]] = []
    try:
        for frame in _source(plate).frames():
            image = feed.nearest(frame.timestamp)
            paired.append((frame.index, None if image is None else int(image[0, 0, 0])))
            if frame.index == 19:
                break
    finally:
        feed.close()
    # plate frame i at 9.0 + 0.04 i s; overview frame j at 9.013 + 0.1 j - 0.05 = 8.963 + 0.1 j s
    for i, j in paired:
        t = 9.0 + 0.04 * i
        expected = min(range(12), key=lambda k: abs(8.963 + 0.1 * k - t))
        assert j == expected, (i, j, expected)
    assert feed.stats.frames == 9 and feed.stats.dropped == 0  # read only as far as asked: to 9.763 s, past 9.76


def test_a_live_overview_camera_that_stops_stops_the_node() -> None:
    wide = FakePicamera2(1, frames=3)
    feed = OverviewFeed(_source(wide, lores_size=None, camera_index=1), live=True)
    feed.open()
    try:
        deadline = time.monotonic() + 5.0
        while feed.stats.frames < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        with pytest.raises(SourceError, match="camera stopped delivering frames"):
            feed.nearest(NOW + timedelta(seconds=1))
    finally:
        feed.close()
    assert wide.closed
