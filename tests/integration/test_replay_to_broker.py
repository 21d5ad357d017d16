"""End to end on real parts: a generated scene replayed through the production pipeline (the default edges
detector and PP-OCR reader on LiteRT, real face model, durable outbox) into a real Mosquitto; a real
subscriber checks what arrived."""

from __future__ import annotations

import base64
import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.broker import MosquittoBroker, Subscriber

from edge.cli import main
from edge.sample.scene import default_scene, write_scene

ROOT = Path(__file__).resolve().parents[2]
READER = ROOT / "models" / "ppocr_rec_plate.tflite"  # the default reader, with the default detector
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not READER.is_file():
        pytest.skip(f"{READER} is missing (run scripts/setup.sh: it converts the plate reader)")
    if not (ROOT / "models/centerface.tflite").is_file():
        pytest.skip("models/centerface.tflite is missing (run scripts/setup.sh: it converts the face model)")
    video, _, _ = write_scene(default_scene(), tmp_path_factory.mktemp("scene") / "scene.mp4")
    return video


def _truth(video: Path) -> list[dict[str, str]]:
    with video.with_name(video.stem + ".truth.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _config(tmp_path: Path, image: str) -> Path:
    path = tmp_path / "node.yaml"
    path.write_text(
        f"""
node: {{site: test-site, camera: cam1, state_dir: {tmp_path / 'state'}}}
read: {{model: {READER}, manifest: {ROOT / 'models/manifest.json'}}}
privacy:
  fields: [plate, time, seq, site, camera, confidence, direction]
  image: {image}
  face_model: {ROOT / 'models/centerface.tflite'}
  face_check_model: {ROOT / 'models/face_detection_full_range.tflite'}
""",
        encoding="utf-8",
    )
    return path


def _replay(video: Path, config: Path, broker: MosquittoBroker) -> int:
    return main(["replay", str(video), "--config", str(config), "--broker", f"127.0.0.1:{broker.port}", "--quiet"])


def test_replay_publishes_one_read_per_vehicle_in_order(
    scene: Path, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    sub = Subscriber("127.0.0.1", mosquitto.port, "anpr/#").start()
    try:
        assert _replay(scene, _config(tmp_path, "none"), mosquitto) == 0
        truth = _truth(scene)
        reads = sub.wait_for(len(truth), timeout=20, where=lambda m: m.topic == "anpr/test-site/cam1/reads")
    finally:
        sub.stop()
    payloads = [json.loads(m.payload) for m in reads]
    assert len(payloads) == len(truth)
    assert sorted(p["plate"] for p in payloads) == sorted(t["plate"] for t in truth)
    assert [p["seq"] for p in payloads] == list(range(len(truth)))  # published in capture order
    allowed = {"id", "schema", "seq", "time", "site", "camera", "plate", "confidence", "direction"}
    for p in payloads:
        assert set(p) == allowed
        assert p["site"] == "test-site" and p["camera"] == "cam1"
        assert p["time"].endswith("Z")
    assert len({p["id"] for p in payloads}) == len(payloads)
    directions = {p["plate"]: p["direction"] for p in payloads}
    assert all(directions[t["plate"]] == t["direction"] for t in truth)


def test_status_is_retained_online_while_running_and_offline_after(
    scene: Path, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    live = Subscriber("127.0.0.1", mosquitto.port, "anpr/test-site/cam1/status").start()
    try:
        assert _replay(scene, _config(tmp_path, "none"), mosquitto) == 0
        seen = live.wait_for(2, timeout=10)
    finally:
        live.stop()
    assert [json.loads(m.payload)["state"] for m in seen] == ["online", "offline"]
    late = Subscriber("127.0.0.1", mosquitto.port, "anpr/test-site/cam1/status").start()
    try:
        retained = late.wait_for(1, timeout=10)
    finally:
        late.stop()
    assert retained[0].retain
    assert json.loads(retained[0].payload)["state"] == "offline"


def test_images_that_leave_are_redacted_overviews_with_a_record(
    scene: Path, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    sub = Subscriber("127.0.0.1", mosquitto.port, "anpr/test-site/cam1/reads").start()
    try:
        assert _replay(scene, _config(tmp_path, "redacted_overview"), mosquitto) == 0
        reads = sub.wait_for(len(_truth(scene)), timeout=20)
    finally:
        sub.stop()
    assert len(reads) == len(_truth(scene))
    for message in reads:
        image = json.loads(message.payload)["image"]
        assert image["kind"] == "redacted_overview"
        assert image["redaction"]["second_pass_faces"] == 0
        decoded = cv2.imdecode(np.frombuffer(base64.b64decode(image["data"]), np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape[:2] == (image["height"], image["width"])


def test_replay_with_the_broker_down_keeps_every_read_in_the_outbox(scene: Path, tmp_path: Path) -> None:
    from edge.clock import SystemClock
    from edge.config import OutboxConfig
    from edge.outbox.store import Outbox

    config = _config(tmp_path, "none")
    assert main(["replay", str(scene), "--config", str(config), "--quiet"]) == 0  # no broker configured
    with Outbox(tmp_path / "state" / "outbox.sqlite", OutboxConfig(), SystemClock()) as outbox:
        assert outbox.depth() == len(_truth(scene))
