"""The overview camera: its recent frames, and the one nearest in time to a read, as the read's overview image.

Plates are found and read on the plate camera's frames; the overview image published with a read comes from a
second, colour camera. :class:`OverviewFeed` keeps the overview camera's latest ``buffer_frames`` frames in
memory (never on disk), each on the plate camera's clock (its own time plus ``offset_s``), and pairs a plate
frame that has reads with the overview frame nearest in time, if one is within ``tolerance_s``.

A live camera fills the buffer from its own thread (capture never waits: the oldest frame gives way; one that
gives way while the plate camera could still ask for its time is counted in ``dropped``). A recording is read
only as far as the plate camera's time asks, so a replay is deterministic.

The pairing lives as long as the tracker holds the plate frame: :meth:`pair` keys it on the plate frame's image
with a weak reference, so the overview frame of a track's best read stays in memory exactly while the tracker
keeps that read's frame, and no longer. :meth:`attach` gives a pass its overview; one without (none within
the tolerance) gets an empty image, which the privacy stage never publishes.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from edge.capture import FrameSource
from edge.domain import Frame, Image, VehiclePass

log = logging.getLogger(__name__)

NO_OVERVIEW: Image = np.zeros((0, 0, 3), np.uint8)  # a pass whose overview camera had no frame near its read


@dataclass
class OverviewStats:
    frames: int = 0  # overview frames received
    paired: int = 0  # plate frames with reads given an overview frame
    missing: int = 0  # passes that went without an overview image (none within the tolerance)
    dropped: int = 0  # overview frames pushed out of the buffer while the plate camera could still ask for them

    def health(self) -> dict[str, int]:
        return {"overview_frames": self.frames, "overview_missing": self.missing, "overview_dropped": self.dropped}


class OverviewFeed:
    """Recent overview frames and their pairing with plate frames. ``live``: the source is read by a thread."""

    def __init__(
        self, source: FrameSource, *, offset_s: float = 0.0, tolerance_s: float = 0.1, buffer_frames: int = 8,
        live: bool = False,
    ) -> None:
        self.source = source
        self.offset = timedelta(seconds=offset_s)
        self.tolerance = timedelta(seconds=tolerance_s)
        self.live = live
        self.stats = OverviewStats()
        self._buffer: deque[tuple[datetime, Image]] = deque()
        self._size = buffer_frames
        self._lock = threading.Lock()
        self._asked: datetime | None = None  # the latest plate time asked for
        self._frames: Iterator[Frame] | None = None
        self._ended = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._paired: dict[int, tuple[weakref.ref[Any], Image]] = {}

    # -- the buffer ------------------------------------------------------------------------------

    def open(self) -> None:
        """Start reading the overview camera (a live one in its own thread)."""
        self._stop.clear()
        if self.live:
            self._thread = threading.Thread(target=self._capture, name="capture-overview", daemon=True)
            self._thread.start()
        else:
            self._frames = self.source.frames()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        frames, self._frames = self._frames, None
        close = getattr(frames, "close", None)
        if callable(close):
            close()  # releases the camera or the file
        with self._lock:
            self._buffer.clear()
            self._paired.clear()

    @property
    def held(self) -> int:
        """Overview frames held for pairings whose plate frames are still held (by the tracker)."""
        with self._lock:
            return len(self._paired)

    def camera_health(self) -> dict[str, int]:
        return self.stats.health()

    def _capture(self) -> None:
        try:
            for frame in self.source.frames():
                if self._stop.is_set():
                    break
                self._push(frame)
        except Exception as exc:  # noqa: BLE001 - raised in the frame loop at the next pairing
            self._error = exc
        self._ended = True

    def _push(self, frame: Frame) -> None:
        when = frame.timestamp + self.offset
        with self._lock:
            self.stats.frames += 1
            self._buffer.append((when, frame.image))
            while len(self._buffer) > self._size:
                gone, _ = self._buffer.popleft()
                if self._asked is None or gone >= self._asked - self.tolerance:
                    self.stats.dropped += 1  # the plate camera could still have wanted it

    def _read_to(self, when: datetime) -> None:
        """A recording: read on until a frame is past ``when`` + tolerance (or the recording ends)."""
        if self._frames is None:
            return
        while not self._buffer or self._buffer[-1][0] <= when + self.tolerance:
            frame = next(self._frames, None)
            if frame is None:
                self._frames = None
                return
            self._push(frame)

    def observe(self, when: datetime) -> None:
        """The plate camera's time has reached ``when`` (every plate frame): overview frames older than it, less the
        tolerance, are no longer wanted, so pushing them out is not a drop."""
        with self._lock:
            self._asked = when if self._asked is None else max(self._asked, when)

    def nearest(self, when: datetime) -> Image | None:
        """The overview frame nearest ``when`` (the plate camera's time), if one is within the tolerance."""
        if self._error is not None:
            raise self._error
        self.observe(when)
        if not self.live:
            self._read_to(when)
        with self._lock:
            best = min(self._buffer, key=lambda item: abs(item[0] - when), default=None)
        if best is None or abs(best[0] - when) > self.tolerance:
            return None
        return best[1]

    # -- pairing with plate frames ------------------------------------------------------------------

    def pair(self, frame: Frame) -> bool:
        """Pair a plate frame that has reads with the overview frame nearest it; False when there is none."""
        image = self.nearest(frame.timestamp)
        if image is None:
            return False
        key = id(frame.image)

        def forget(ref: weakref.ref[Any], key: int = key) -> None:
            with self._lock:
                if self._paired.get(key, (None,))[0] is ref:
                    del self._paired[key]

        with self._lock:
            self._paired[key] = (weakref.ref(frame.image, forget), image)
            self.stats.paired += 1
        return True

    def attach(self, p: VehiclePass) -> VehiclePass:
        """The pass with the overview camera's frame paired with its best read's frame (an empty image when it had
        none). The plate camera's earlier frames (views) and other plates' boxes belong to another camera's
        geometry: they are left out."""
        with self._lock:
            entry = self._paired.get(id(p.overview))
        image = entry[1] if entry is not None and entry[0]() is p.overview else None
        if image is None:
            self.stats.missing += 1
            image = NO_OVERVIEW
        return replace(p, overview=image, views=(), others=(), overview_camera=True)
