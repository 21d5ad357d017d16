"""A network stream URL is read through OpenCV, timed by the node's clock; a dead stream is a clear error."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.capture.video import StreamSource
from edge.errors import SourceError


class _Clock:
    def now(self) -> datetime:
        return datetime(2026, 3, 14, 8, 0, tzinfo=UTC)


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_frames_of_an_http_stream_arrive_in_order(http_folder: tuple[Path, str]) -> None:
    folder, base = http_folder
    writer = cv2.VideoWriter(str(folder / "cam.avi"), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (160, 120))
    for i in range(8):
        writer.write(np.full((120, 160, 3), 30 * i, np.uint8))
    writer.release()
    source = StreamSource(f"{base}/cam.avi", lores_size=(80, 60), clock=_Clock(), max_failures=3)
    frames = []
    with pytest.raises(SourceError, match="stopped delivering frames"):  # the recording ends: the stream is gone
        frames.extend(source.frames())
    assert [f.index for f in frames] == list(range(8))
    assert frames[0].lores.shape == (60, 80, 3)
    assert frames[0].timestamp == _Clock().now()


def test_an_unreachable_stream_names_the_url(http_folder: tuple[Path, str]) -> None:
    _, base = http_folder
    source = StreamSource(f"{base}/absent.avi", lores_size=(80, 60), clock=_Clock())
    with pytest.raises(SourceError, match=r"absent\.avi"):
        list(source.frames())
