"""Scene generator: named scenarios with ground truth, night-IR look, faces a detector finds."""

from __future__ import annotations

import csv
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.sample.scene import (
    SCENARIOS,
    default_scene,
    plate_boxes,
    render_frames,
    scenario,
    truth_rows,
    write_scene,
)

ROOT = Path(__file__).resolve().parents[2]
FACE_MODEL = ROOT / "models/face_detection_full_range.tflite"  # drawn faces: BlazeFace finds them all


def test_default_scene_stays_small_for_the_demo_and_ci() -> None:
    spec = default_scene()
    assert (spec.width, spec.height) == (1280, 720)
    assert len(spec.vehicles) == 4
    assert spec.duration_s < 10


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_scenario_has_one_truth_row_per_vehicle(name: str) -> None:
    spec = scenario(name)
    rows = truth_rows(spec)
    assert len(rows) == len(spec.vehicles)
    assert all(float(r["first_seen_s"]) < float(r["last_seen_s"]) <= spec.duration_s for r in rows)


def test_unknown_scenario_names_the_choices() -> None:
    with pytest.raises(ValueError, match="overtake"):
        scenario("rush-hour")


def test_a_stopping_vehicle_stays_in_view_for_its_wait() -> None:
    spec = scenario("stop")
    stopper, _ = truth_rows(spec)
    moving = spec.vehicles[0]
    assert float(stopper["last_seen_s"]) - float(stopper["first_seen_s"]) > moving.stop_s + 0.5 * moving.duration_s


def test_overtaking_vehicles_are_in_view_together() -> None:
    a, b = truth_rows(scenario("overtake"))
    assert max(float(a["first_seen_s"]), float(b["first_seen_s"])) + 1.0 < min(float(a["last_seen_s"]),
                                                                               float(b["last_seen_s"]))


def test_rendering_is_a_pure_function_of_the_spec() -> None:
    spec = scenario("overtake")
    first = [f.copy() for f in islice(render_frames(spec), 20, 23)]
    again = list(islice(render_frames(spec), 20, 23))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))


def test_night_ir_look_is_grey_and_flat_with_a_bright_plate() -> None:
    day = next(islice(render_frames(scenario("default")), 30, None))
    night = next(islice(render_frames(scenario("night")), 30, None))
    assert np.array_equal(night[..., 0], night[..., 1])  # grey
    assert night.std() < 0.6 * day.std()  # low contrast
    assert np.percentile(night, 99.9) > 180  # the plate still shines


def test_write_scene_writes_video_sidecar_and_truth(tmp_path: Path) -> None:
    spec = scenario("overtake")
    video, sidecar, truth = write_scene(spec, tmp_path / "s.mp4")
    cap = cv2.VideoCapture(str(video))
    try:
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == round(spec.duration_s * spec.fps)
    finally:
        cap.release()
    assert '"start_time"' in sidecar.read_text(encoding="utf-8")
    with truth.open(encoding="utf-8") as fh:
        assert [r["plate"] for r in csv.DictReader(fh)] == [v.plate.replace(" ", "") for v in spec.vehicles]


def test_drivers_and_pedestrians_are_faces_to_the_privacy_detector() -> None:
    if not FACE_MODEL.is_file():
        pytest.skip(f"{FACE_MODEL} is missing (scripts/setup.sh fetches it)")
    from edge.privacy.faces import RedactorSettings, build_redactor

    redactor = build_redactor(RedactorSettings(model=str(FACE_MODEL), manifest=str(ROOT / "models/manifest.json"),
                                               threshold=0.3, check_model=str(FACE_MODEL)))
    spec = scenario("faces")
    frame = next(islice(render_frames(spec), 50, None))  # an approaching car near the camera, two pedestrians
    faces = redactor.faces(frame)
    pavement = [b for b in faces if b.centre[0] < 0.12 * spec.width or b.centre[0] > 0.88 * spec.width]
    cabin = [b for b in faces if 0.12 * spec.width <= b.centre[0] <= 0.88 * spec.width]
    assert len(pavement) == 2
    assert len(cabin) >= 1


def test_plate_boxes_say_where_each_plate_is_drawn() -> None:
    from dataclasses import replace

    spec = replace(default_scene(), width=1920, height=1080)
    index = round(spec.fps * 1.5)
    frame = next(islice(render_frames(spec), index, None))
    (plate,) = plate_boxes(spec, index)
    assert plate.w == 170 and plate.x >= 0 and plate.x + plate.w <= 1920
    inner = frame[plate.y + 2 : plate.y + plate.h - 2, plate.x + 2 : plate.x + plate.w - 2]
    assert float(inner.mean()) > 150  # a white plate with dark characters, on a blue car
