"""A progress line on stderr for long evaluation runs, at most every two seconds."""

from __future__ import annotations

import sys
import time


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
