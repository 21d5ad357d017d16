"""Two cameras end to end on real parts: the sample scene's plate view (by day, and in the night IR look) read by
the production pipeline, and its colour overview camera's frame nearest the read, redacted, as the read's image."""

from __future__ import annotations

import base64
import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import main
from edge.sample.overview import overview_path, write_overview
from edge.sample.scene import default_scene, write_scene

ROOT = Path(__file__).resolve().parents[2]
READER = ROOT / "models" / "ppocr_rec_plate.tflite"
pytestmark = pytest.mark.integration


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "node.yaml"
    path.write_text(
        f"""
node: {{site: test-site, camera: cam1, state_dir: {tmp_path / 'state'}}}
read: {{model: {READER}, manifest: {ROOT / 'models/manifest.json'}}}
privacy:
  fields: [plate, time, seq, site, camera, confidence, direction]
  image: redacted_overview
  face_model: {ROOT / 'models/centerface.tflite'}
  face_check_model: {ROOT / 'models/face_detection_full_range.tflite'}
""",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("look", ["day", "night_ir"])
def test_a_read_from_the_plate_camera_carries_the_overview_camera_s_redacted_colour_frame(
    tmp_path: Path, look: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if not READER.is_file() or not (ROOT / "models/centerface.tflite").is_file():
        pytest.skip("the plate reader or the face model is missing from models/")
    spec = replace(default_scene(3, 1), width=640, height=360, look=look)  # type: ignore[arg-type]
    video, _, truth = write_scene(spec, tmp_path / f"{look}.mp4")
    wide, _ = write_overview(spec, overview_path(video), offset_s=0.2, fps=10, size=(800, 450))
    code = main(["replay", str(video), "--overview", str(wide), "--config", str(_config(tmp_path)),
                 "--truth", str(truth), "--json", "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["exact"], summary["false_passes"]) == (1, 0)
    assert summary["overview_missing"] == 0 and summary["overview_frames"] > 0
    with sqlite3.connect(tmp_path / "state" / "outbox.sqlite") as db:
        payloads = [json.loads(row[0]) for row in db.execute("SELECT payload FROM messages")]
    assert len(payloads) == 1
    image = payloads[0]["image"]
    assert (image["kind"], image["width"], image["height"]) == ("redacted_overview", 800, 450)
    assert image["redaction"]["second_pass_faces"] == 0
    jpeg = cv2.imdecode(np.frombuffer(base64.b64decode(image["data"]), np.uint8), cv2.IMREAD_COLOR)
    b, _, r = (float(c) for c in jpeg[:40].reshape(-1, 3).mean(axis=0))
    assert b - r > 10  # the overview camera's colour sky, also at night (the plate camera's view is grey there)
