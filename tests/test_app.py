"""The composition root: what it builds when a part cannot run."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edge.app import node_redactor, tracker_views
from edge.config import parse_config
from edge.privacy.centerface import CenterFaceDetector

ROOT = Path(__file__).resolve().parents[1]


def test_a_missing_face_model_gives_no_redactor_so_no_image_leaves(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = parse_config({
        "node": {"site": "s", "camera": "c", "state_dir": str(tmp_path)},
        "read": {"manifest": str(ROOT / "models" / "manifest.json")},
        "privacy": {"image": "redacted_overview", "face_model": str(tmp_path / "absent.tflite")},
    }, origin="test")
    with caplog.at_level(logging.ERROR, logger="edge"):
        assert node_redactor(config) is None
    assert "no image will leave" in caplog.text and "absent.tflite" in caplog.text


def test_the_node_redactor_judges_grey_frames_with_the_configured_night_threshold(tmp_path: Path) -> None:
    models = ROOT / "models"
    config = parse_config({
        "node": {"site": "s", "camera": "c", "state_dir": str(tmp_path)},
        "read": {"manifest": str(models / "manifest.json")},
        "privacy": {"face_model": str(models / "centerface.tflite"),
                    "face_check_model": str(models / "face_detection_full_range.tflite"),
                    "face_night_threshold": 0.11},
    }, origin="test")
    redactor = node_redactor(config)
    assert redactor is not None
    assert isinstance(redactor.detector, CenterFaceDetector) and redactor.detector.night_threshold == 0.11


@pytest.mark.parametrize(("image", "overview_camera", "views"), [
    ("redacted_overview", False, 2), ("redacted_overview", True, 0), ("plate_patch", False, 0)])
def test_tracks_keep_earlier_frames_only_where_the_plate_camera_s_own_overview_may_leave(
    tmp_path: Path, image: str, overview_camera: bool, views: int,
) -> None:
    capture: dict[str, object] = {"source": "video", "path": str(tmp_path / "plate.mp4")}
    if overview_camera:  # its frames replace the plate camera's, which would be kept for nothing (6 MB each)
        capture["overview"] = {"source": "video", "path": str(tmp_path / "overview.mp4")}
    config = parse_config({
        "node": {"site": "s", "camera": "c", "state_dir": str(tmp_path)},
        "capture": capture,
        "read": {"manifest": str(ROOT / "models" / "manifest.json")},
        "privacy": {"image": image},
    }, origin="test")
    assert tracker_views(config) == views
