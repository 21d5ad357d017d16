"""A recording keeps its own time in ``run`` as in ``replay``: its old timestamps do not age its reads out, neither
before its first frame nor when a later run or replay picks up the outbox an earlier one left."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.broker import MosquittoBroker, Subscriber, free_port
from support.field import run_cli

from edge.sample.scene import default_scene, write_scene

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
OLD = (datetime.now(UTC) - timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%SZ")  # far past outbox.max_age_s (1 day)


@pytest.fixture(scope="module")
def old_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("video")
    spec = replace(default_scene(5, 4), width=640, height=360, start_time=OLD)
    video, _, _ = write_scene(spec, folder / "old.mp4")
    return video


def config(tmp_path: Path, video: Path, port: int) -> Path:
    path = tmp_path / "node.yaml"
    path.write_text(
        f"node: {{site: site1, camera: cam1, state_dir: '{tmp_path / 'state'}'}}\n"
        f"capture: {{source: video, path: '{video}', lores_size: [640, 360], main_size: [640, 360]}}\n"
        "detect: {backend: contour, second_look: none}\n"
        f"read: {{model: '{ROOT / 'models/plate_ocr.tflite'}', manifest: '{ROOT / 'models/manifest.json'}'}}\n"
        f"mqtt: {{host: 127.0.0.1, port: {port}, insecure_lab_mode: true}}\n"
    )
    return path


def test_run_with_a_year_old_recording_publishes_its_reads_instead_of_dropping_them_by_age(
    mosquitto: MosquittoBroker, old_video: Path, tmp_path: Path
) -> None:
    sub = Subscriber(mosquitto.host, mosquitto.port, "anpr/site1/cam1/reads").start()
    try:
        done = run_cli("run", "--config", str(config(tmp_path, old_video, mosquitto.port)), timeout=120)
        got = sub.wait_for(3, 10)
    finally:
        sub.stop()
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(got) >= 3, "the old node dropped every read by outbox.max_age_s"
    assert all(json.loads(m.payload)["time"].startswith(OLD[:10]) for m in got), "stamped with the recording's time"
    assert "older than max_age_s" not in done.stderr


def test_a_replay_that_continues_an_earlier_ones_outbox_sends_those_reads_too(
    mosquitto: MosquittoBroker, old_video: Path, tmp_path: Path
) -> None:
    node = config(tmp_path, old_video, free_port())
    first = run_cli("replay", str(old_video), "--config", str(node), "--json", "--quiet", timeout=120)
    assert first.returncode == 0, first.stderr[-2000:]
    held = json.loads(first.stdout)["outbox_depth"]
    assert held >= 3, "nothing reached a broker: the reads wait in the outbox"
    sub = Subscriber(mosquitto.host, mosquitto.port, "anpr/site1/cam1/reads").start()
    try:
        second = run_cli("replay", str(old_video), "--config", str(node), "--json", "--quiet",
                         "--broker", f"{mosquitto.host}:{mosquitto.port}", timeout=120)
        got = sub.wait_for(2 * held, 10)
    finally:
        sub.stop()
    assert second.returncode == 0, second.stderr[-2000:]
    summary = json.loads(second.stdout)
    assert summary["outbox_depth"] == 0
    assert len({json.loads(m.payload)["id"] for m in got}) == 2 * held, "the first replay's reads were aged out"
