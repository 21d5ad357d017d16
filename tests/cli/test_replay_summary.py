"""The replay summary says "published" only of reads a broker acknowledged, and each source has its own state."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def test_a_pass_line_says_which_time_it_shows_and_that_a_direction_is_unknown(
        capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import UTC, datetime, timedelta

    import numpy as np

    from edge.cli.commands import _PassPrinter
    from edge.domain import Box, FormatMatch, PlateDetection, PlateRead, PlateText, VehiclePass
    from edge.evaluate.progress import ReplayProgress

    t = datetime(2026, 3, 14, 8, 0, 2, 760000, tzinfo=UTC)
    best = PlateRead(frame_index=7, timestamp=t + timedelta(milliseconds=400),
                     detection=PlateDetection(Box(10, 20, 110, 24), 0.9), raw=PlateText("W8CLU", (0.9,) * 5),
                     match=FormatMatch("W8CLU", "uk_prefix", False, "W8 CLU"), crop=np.zeros((24, 110, 3), np.uint8))
    vehicle = VehiclePass(track_id=1, plate="W8CLU", display="W8 CLU", format_name="uk_prefix", confidence=0.95,
                          first_seen=t, last_seen=t + timedelta(seconds=1), sightings=1, best=best,
                          overview=np.zeros((72, 128, 3), np.uint8), direction=None)
    _PassPrinter(quiet=False, progress=ReplayProgress(None, enabled=False))(vehicle, None)
    line = capsys.readouterr().out
    assert line.startswith("node: first seen 2026-03-14T08:00:02.760Z  W8 CLU")
    assert "direction unknown" in line and " - " not in line
    assert "1 sighting " in line
