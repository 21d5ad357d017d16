"""The overview camera: its recent frames, and the one nearest in time to a read, as the read's overview image.

Plates are found and read on the plate camera's frames; the overview image published with a read comes from a
second, colour camera. :class:`OverviewFeed` keeps the overview camera's recent frames in memory (never on
disk; at most ``buffer_frames``, and none older than the last one at or before the plate camera's time, which
can no longer be the nearest), each on the plate camera's clock (its own time plus ``offset_s``), and pairs a
plate frame that has reads with the overview frame nearest in time, if one is within ``tolerance_s``.

A live camera fills the buffer from its own thread (capture never waits: the oldest frame gives way; one that
gives way while the plate camera could still ask for its time is counted in ``dropped``). A recording is read
only as far as the plate camera's time asks, so a replay is deterministic.

:meth:`pair` gives the overview frame nearest a plate frame with reads, which the tracker keeps in that frame's
place (so a track holds one frame, the overview camera's, and the plate camera's goes as soon as it is read).
:meth:`attach` makes a pass the overview camera's; one without an overview frame (none within the tolerance)
gets an empty image, which the privacy stage never publishes.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

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

    @property
    def buffered(self) -> int:
        """Overview frames in the buffer now."""
        with self._lock:
            return len(self._buffer)

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
            self._let_go()
            while len(self._buffer) > self._size:
                gone, _ = self._buffer.popleft()
                if self._asked is None or gone >= self._asked - self.tolerance:
                    self.stats.dropped += 1  # the plate camera could still have wanted it

    def _read_to(self, when: datetime) -> None:
        """A recording: read on until a frame is at or past ``when`` (or the recording ends): a later one is further
        from ``when``, so it cannot be the nearest."""
        if self._frames is None:
            return
        while not self._buffer or self._buffer[-1][0] < when:
            frame = next(self._frames, None)
            if frame is None:
                self._frames = None
                return
            self._push(frame)

    def observe(self, when: datetime) -> None:
        """The plate camera's time has reached ``when`` (every plate frame): overview frames older than it, less the
        tolerance, are no longer wanted, so pushing them out is not a drop; and a frame with a later one at or
        before ``when`` can never again be the nearest (the plate camera's time only goes on), so it is let go."""
        with self._lock:
            self._asked = when if self._asked is None else max(self._asked, when)
            self._let_go()

    def _let_go(self) -> None:
        """Under the lock: drop the frames before the last one at or before the time asked."""
        while self._asked is not None and len(self._buffer) > 1 and self._buffer[1][0] <= self._asked:
            self._buffer.popleft()

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

    def pair(self, frame: Frame) -> Image:
        """The overview frame nearest a plate frame that has reads (:data:`NO_OVERVIEW` when none is within the
        tolerance): the tracker keeps it in the plate frame's place."""
        image = self.nearest(frame.timestamp)
        if image is None:
            return NO_OVERVIEW
        with self._lock:
            self.stats.paired += 1
        return image

    def attach(self, p: VehiclePass) -> VehiclePass:
        """The pass as the overview camera's: its overview is the frame paired with its best read (an empty image
        when it had none, counted in ``missing``). The plate camera's earlier frames (views) and other plates'
        boxes belong to another camera's geometry: they are left out."""
        if p.overview.size == 0:
            self.stats.missing += 1
        return replace(p, overview=p.overview if p.overview.size else NO_OVERVIEW, views=(), others=(),
                       overview_camera=True)
