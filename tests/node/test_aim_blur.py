"""``aim`` reports each vehicle's speed across the image, the exposure it was taken with and the motion blur
(px = speed in px/s x exposure in s), and the longest shutter that keeps the fastest plate sharp."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_aim import UK, _aim, _need_models, finder, scene

from edge.config import TrackConfig
from edge.domain import Box, Frame
from edge.node.aim import PlateBlur, plate_speed, shutter_advice, survey
from edge.track import PlateTracker

T0 = datetime(2026, 12, 7, 21, 0, tzinfo=UTC)


def _moving(count: int, step_px: int, fps: float = 25.0) -> list[Frame]:
    frames = []
    for i in range(count):
        image = scene(30, x=300 + step_px * i)
        frames.append(Frame(i, T0 + timedelta(seconds=i / fps), image,
                            cv2.resize(image, (640, 360), interpolation=cv2.INTER_AREA)))
    return frames


def test_each_vehicle_gets_its_speed_exposure_and_motion_blur() -> None:
    found = survey(_moving(12, 8), finder(), None, tracker=PlateTracker(TrackConfig(), UK), exposure_us=lambda: 2000)
    (vehicle,) = found.report.blur
    assert vehicle.plate == "AB12CDE" and vehicle.exposure_us == 2000
    assert vehicle.speed_px_s is not None and abs(vehicle.speed_px_s - 200.0) < 15  # 8 px a frame at 25 fps
    assert vehicle.blur_px is not None and abs(vehicle.blur_px - 0.4) < 0.05
    assert vehicle.width_px == found.report.widths[0]


def test_a_plate_followed_through_neighbouring_frames_gives_its_speed_and_a_still_one_none() -> None:
    seen = {i: (T0 + timedelta(seconds=i / 10), (Box(100 + 20 * i, 50, 60, 14), Box(900, 400, 60, 14)))
            for i in range(8)}
    assert abs((plate_speed(4, Box(180, 50, 60, 14), seen) or 0.0) - 200.0) < 1e-6  # 20 px per 0.1 s
    assert plate_speed(4, Box(900, 400, 60, 14), seen) == 0.0  # parked: no blur at any shutter
    same_time = {i: (T0, (Box(100 + 20 * i, 50, 60, 14),)) for i in range(3)}
    assert plate_speed(1, Box(120, 50, 60, 14), same_time) is None  # one image at a time: no speed


def test_the_shutter_advice_is_for_the_fastest_plate() -> None:
    slow, fast = PlateBlur("AB12CDE", 120, 300.0, 4000), PlateBlur("CD34EFG", 110, 1500.0, 4000)
    ok, advice = shutter_advice([slow, fast])
    assert ok is False and "6.0 px" in advice and "at most 666 us (1/1502 s)" in advice
    ok, advice = shutter_advice([PlateBlur("AB12CDE", 120, 800.0, 1000)])
    assert ok is True and "0.80 px" in advice
    ok, advice = shutter_advice([PlateBlur("AB12CDE", 120, 800.0, None)])
    assert ok is None and "--exposure-us" in advice and "at most 1250 us" in advice
    assert shutter_advice([])[0] is None
    assert np.isclose(fast.blur_px or 0.0, 6.0)


@pytest.mark.integration
def test_cli_reports_the_blur_of_a_recording_taken_at_a_given_shutter(tmp_path: Path) -> None:
    _need_models()
    video = tmp_path / "lane.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), 25.0, (1280, 720))
    for i in range(12):
        writer.write(scene(40, x=300 + 12 * i))  # 12 px a frame at 25 fps: 300 px/s
    writer.release()
    result = _aim(str(video), "--exposure-us", "8000", "--out", str(tmp_path / "aim.jpg"))
    (vehicle,) = result["vehicles"]  # type: ignore[misc]
    assert vehicle["exposure_us"] == 8000 and abs(vehicle["speed_px_s"] - 300) < 25
    assert abs(vehicle["blur_px"] - 2.4) < 0.25
    assert result["blur_ok"] is False and re.search(r"at most 3[0-9]{3} us", str(result["shutter_advice"]))
