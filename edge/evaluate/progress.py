"""Progress on stderr for long runs: a line at most every two seconds (eval), a live status line (replay)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

from edge.capture.video import IMAGE_SUFFIXES
from edge.wording import counted


class Progress:
    """``<label>: <count>/<total> images`` on stderr while it runs, and once at the end of a long run."""

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.count = 0
        self._last = time.monotonic()

    def step(self) -> None:
        self.count += 1  # int += under the GIL; an approximate count is fine for a progress line
        now = time.monotonic()
        if now - self._last >= 2.0:
            self._last = now
            print(f"{self.label}: {self.count}/{self.total} images", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.total >= 50:
            print(f"{self.label}: {self.total}/{self.total} images", file=sys.stderr, flush=True)


def frame_count(kind: str, path: str | None) -> int | None:
    """Frames a replay source will give, when it can be told in advance (a video file, an image folder)."""
    if path is None:
        return None
    if kind == "images":
        return sum(1 for p in Path(path).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if kind != "video":
        return None
    import cv2

    cap = cv2.VideoCapture(path)
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    return n if n > 0 else None


def recording_length_s(kind: str, path: str | None, fps: float) -> float | None:
    """How long a replay source is, in seconds, when it can be told in advance: a video file by its own frame count
    and rate, an image folder by its count at ``fps``."""
    if kind == "images":
        n = frame_count(kind, path)
        return n / fps if n and fps > 0 else None
    if kind != "video" or path is None:
        return None
    import cv2

    cap = cv2.VideoCapture(path)
    try:
        frames, rate = float(cap.get(cv2.CAP_PROP_FRAME_COUNT)), float(cap.get(cv2.CAP_PROP_FPS))
    finally:
        cap.release()
    return frames / rate if frames > 0 and 0 < rate <= 1000 else None


class ReplayProgress:
    """``frame 250/750 (33%)  24.8 fps  3 passes`` on one terminal line, rewritten at most every half second.

    ``clear()`` wipes it before another line is printed (a read), so the two never mix. The frame shown is the
    recording's (frames a realtime replay dropped count as passed); a recording whose last frames did not decode
    ends short of 100%, and the last line says so.
    """

    def __init__(self, total: int | None, *, enabled: bool, stream: TextIO | None = None,
                 interval_s: float = 0.5) -> None:
        self.total = total
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.interval_s = interval_s
        self.frames = 0  # frames through the pipeline
        self.position = 0  # frames of the recording passed (the latest frame's index + 1)
        self.passes = 0
        self._started = time.monotonic()
        self._last = 0.0
        self._shown = False

    def line(self) -> str:
        elapsed = max(1e-6, time.monotonic() - self._started)
        at = max(self.frames, self.position)
        of = f"/{self.total} ({100 * at // self.total}%)" if self.total else ""
        return f"replay: frame {at}{of}  {self.frames / elapsed:.1f} fps  {counted(self.passes, 'pass')}"

    def short_end(self) -> str | None:
        """Why the replay ended before the recording's last frame, or None when it did not."""
        at = max(self.frames, self.position)
        if not self.total or at >= self.total:
            return None
        return (f"ended at frame {at} of {self.total}: the last {counted(self.total - at, 'frame')} the file announces "
                "did not decode")

    def frame(self, passes: int, index: int | None = None) -> None:
        self.frames += 1
        self.position = max(self.position, index + 1 if index is not None else self.frames)
        self.passes = passes
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            self.stream.write("\r\x1b[K" + self.line())
            self.stream.flush()
            self._shown = True

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False
            self._last = 0.0  # shown again at the next frame

    def done(self) -> None:
        if self.enabled:
            short = self.short_end()
            self.stream.write("\r\x1b[K" + self.line() + (f"  ({short})" if short else "") + "\n")
            self.stream.flush()
            self._shown = False
