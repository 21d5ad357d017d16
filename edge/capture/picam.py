"""The Raspberry Pi camera through picamera2: a full-resolution ``main`` stream and a small ``lores`` one.

``picamera2`` is imported only here, and only when a source is opened (importing it probes devices).
Every request is released in ``finally``; sensor timestamps (CLOCK_MONOTONIC ns) are converted to UTC.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np

from edge.clock import Clock, monotonic_ns, monotonic_ns_to_utc
from edge.domain import Frame
from edge.errors import SourceError

log = logging.getLogger(__name__)


def _default_camera_factory() -> Any:
    try:
        from picamera2 import Picamera2
    except ImportError as exc:
        raise SourceError(
            "capture.source is 'picamera' but picamera2 is not installed "
            "(on Raspberry Pi OS: apt install python3-picamera2, and a venv made with --system-site-packages)"
        ) from exc
    try:
        return Picamera2()
    except (RuntimeError, IndexError) as exc:
        raise SourceError(f"no camera found by picamera2: {exc}") from exc


class PicameraSource:
    """Two-stream capture. ``camera_factory`` returns a Picamera2-like object (a fake in tests)."""

    def __init__(
        self,
        *,
        main_size: tuple[int, int],
        lores_size: tuple[int, int],
        fps: float,
        clock: Clock,
        camera_factory: Callable[[], Any] = _default_camera_factory,
        monotonic: Callable[[], int] = monotonic_ns,
    ) -> None:
        self.main_size = main_size
        self.lores_size = lores_size
        self.fps = fps
        self.clock = clock
        self.camera_factory = camera_factory
        self.monotonic = monotonic

    def frames(self) -> Iterator[Frame]:
        cam = self.camera_factory()
        try:
            config = cam.create_video_configuration(
                main={"size": self.main_size, "format": "RGB888"},
                lores={"size": self.lores_size, "format": "YUV420"},
                controls={"FrameRate": self.fps},
            )
            cam.configure(config)
            cam.start()
            index = 0
            while True:
                try:
                    request = cam.capture_request()
                except (RuntimeError, OSError) as exc:
                    raise SourceError(f"the camera stopped delivering frames: {exc}") from exc
                try:
                    frame = self._frame(request, index)
                finally:
                    request.release()
                yield frame
                index += 1
        finally:
            try:
                cam.stop()
            finally:
                cam.close()

    def _frame(self, request: Any, index: int) -> Frame:
        # make_array returns a copy of the buffer, not a view: it stays valid after request.release(); it may
        # be a slice of a row-padded copy, which is made compact here (copied only then)
        main = np.ascontiguousarray(request.make_array("main"), dtype=np.uint8)
        yuv = request.make_array("lores")
        lores = np.asarray(cv2.cvtColor(yuv, cv2.COLOR_YUV420p2BGR), dtype=np.uint8)
        sensor_ns = request.get_metadata().get("SensorTimestamp")
        now = self.clock.now()
        stamp = now if sensor_ns is None else monotonic_ns_to_utc(
            int(sensor_ns), now=now, monotonic_now_ns=self.monotonic()
        )
        return Frame(index, stamp, main, lores)
