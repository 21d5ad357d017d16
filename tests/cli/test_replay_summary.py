"""The replay summary says "published" only of reads a broker acknowledged, and each source has its own state."""

from __future__ import annotations

from pathlib import Path

from edge.cli.commands import _delivery
from edge.config.lab import replay_state_dir


def _summary(**kw: object) -> dict[str, object]:
    return {"outbox_depth": 4, "state_dir": "var/replay/x", "broker": "127.0.0.1:18831", "broker_connected": False,
            "published": 0} | kw


def test_a_broker_that_never_answered_published_nothing() -> None:
    said = _delivery(_summary())
    assert said == "broker 127.0.0.1:18831 not reachable, nothing published: outbox now holds 4"


def test_without_a_broker_the_reads_stay_in_the_outbox() -> None:
    said = _delivery(_summary(broker=None))
    assert "published" not in said and "outbox now holds 4" in said


def test_acknowledged_reads_are_published() -> None:
    assert _delivery(_summary(broker_connected=True, published=4, outbox_depth=0)).startswith(
        "4 published to 127.0.0.1:18831")


def test_each_source_has_its_own_state_folder(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "scene.mp4", tmp_path / "b" / "scene.mp4"
    assert replay_state_dir(str(a)) != replay_state_dir(str(b))
    assert replay_state_dir(str(a)) == replay_state_dir(str(a))
    assert replay_state_dir(str(a)).startswith("var/replay/scene-mp4-")
    assert replay_state_dir("rtsp://cam.local/stream1").startswith("var/replay/stream1-")
