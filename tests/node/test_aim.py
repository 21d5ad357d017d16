"""``edge-anpr aim``: measures plate widths at full resolution against the 90 px guide; the still is redacted."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.field import run_cli

from edge.detect.contour import ContourDetectorOptions, ContourPlateDetector
from edge.domain import Box, Frame
from edge.node.aim import MIN_PLATE_PX, AimReport, annotate, survey
from edge.sample.plates import render_plate

ROOT = Path(__file__).resolve().parents[2]
FACE_MODEL = ROOT / "models" / "fetched" / "face_detection_full_range.tflite"


def scene(char_height: int) -> np.ndarray:
    image = np.full((720, 1280, 3), 70, np.uint8)
    plate = render_plate("AB12 CDE", char_height=char_height)
    h, w = plate.shape[:2]
    image[300 : 300 + h, 500 : 500 + w] = plate
    return image


def frame(image: np.ndarray, index: int = 0) -> Frame:
    return Frame(index, datetime(2026, 3, 14, tzinfo=UTC), image,
                 cv2.resize(image, (640, 360), interpolation=cv2.INTER_AREA))


def detector() -> ContourPlateDetector:
    return ContourPlateDetector(ContourDetectorOptions(min_width=24))


def test_widths_are_measured_at_full_resolution_not_on_the_detection_stream() -> None:
    plate_width = render_plate("AB12 CDE", char_height=30).shape[1]
    report, best, boxes = survey([frame(scene(30))], detector(), 10)
    assert report.frames == 1
    assert len(report.widths) == 1
    assert abs(report.widths[0] - plate_width) <= 6
    assert best is not None
    assert boxes[0].w == report.widths[0]


def test_verdict_follows_the_openalpr_guide() -> None:
    assert AimReport(10, (60, 62, 64)).verdict()[0] is False
    assert "zoom in" in AimReport(10, (60, 62, 64)).verdict()[1]
    assert AimReport(10, (120, 130)).verdict() == (True, "plates are 125 px wide: within 90-250 px, good")
    assert "zoom out" in AimReport(10, (300,)).verdict()[1]
    ok, advice = AimReport(10, ()).verdict()
    assert not ok
    assert "no plate seen" in advice


def test_survey_keeps_the_frame_with_the_widest_plate() -> None:
    frames = [frame(scene(20), 0), frame(scene(40), 1), frame(scene(30), 2)]
    report, best, _ = survey(frames, detector(), 10)
    assert len(report.widths) == 3
    assert best is not None
    assert best.index == 1
    assert survey(frames, detector(), 2)[0].frames == 2


def test_annotate_draws_on_a_copy() -> None:
    image = scene(30)
    before = image.copy()
    out = annotate(image, [Box(500, 300, 80, 20), Box(100, 100, 120, 30)])
    assert np.array_equal(image, before)
    assert not np.array_equal(out, before)
    assert tuple(out[300, 540]) == (0, 0, 230)  # below 90 px: red
    assert MIN_PLATE_PX == 90


def _config(tmp_path: Path, char_height: int) -> Path:
    camera = tmp_path / "camera"
    camera.mkdir()
    for i in range(3):
        cv2.imwrite(str(camera / f"{i}.png"), scene(char_height))
    config = tmp_path / "node.yaml"
    config.write_text(
        f"node: {{site: s1, camera: c1, state_dir: '{tmp_path / 'state'}'}}\n"
        f"capture: {{source: images, path: '{camera}', main_size: [1280, 720], lores_size: [640, 360]}}\n"
        f"read: {{manifest: '{ROOT / 'models' / 'manifest.json'}'}}\n"
        f"privacy: {{face_model: '{FACE_MODEL}'}}\n"
    )
    return config


@pytest.mark.integration
def test_cli_reports_widths_and_writes_a_redacted_still(tmp_path: Path) -> None:
    if not FACE_MODEL.is_file():
        pytest.skip("face model not fetched (python -m edge.runtime.fetch)")
    out = tmp_path / "aim.jpg"
    done = run_cli("aim", "--config", str(_config(tmp_path, 40)), "--frames", "3", "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["plates"] == 3
    assert result["ok"] is True
    assert result["median_px"] > MIN_PLATE_PX
    assert "redacted" in result["still_note"]
    assert "NOT" not in result["still_note"]
    still = cv2.imread(str(out))
    assert still.shape == (720, 1280, 3)


def test_cli_refuses_an_unredacted_still_when_the_face_model_is_missing(tmp_path: Path) -> None:
    config = _config(tmp_path, 12)
    config.write_text(config.read_text().replace(str(FACE_MODEL), str(tmp_path / "missing.tflite")))
    done = run_cli("aim", "--config", str(config), "--frames", "2", "--out", str(tmp_path / "aim.jpg"))
    assert done.returncode == 4
    assert "no still is written" in done.stderr
    assert not (tmp_path / "aim.jpg").exists()
    bench = run_cli("aim", "--config", str(config), "--frames", "2", "--out", str(tmp_path / "aim.jpg"),
                    "--unredacted")
    assert bench.returncode == 0, bench.stderr
    assert "ADJUST" in bench.stdout or "no plate" in bench.stdout
    assert "NOT redacted" in bench.stdout
