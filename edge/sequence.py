"""The read sequence number survives restarts: it only ever increases on a node (SI 2022/71 asks for
sequentially numbered records). Kept in a small file in the state directory, replaced atomically."""

from __future__ import annotations

import os
from pathlib import Path

from edge.errors import StateError


class SequenceFile:
    """Stores the next sequence number; ``save`` is called after each read is queued."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> int:
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise StateError(f"cannot read sequence file {str(self.path)!r}: {exc.strerror or exc}") from exc
        if not text.isdigit():
            raise StateError(f"sequence file {str(self.path)!r} holds {text[:20]!r}, not a number; "
                             "fix it by hand to the last seq published plus one")
        return int(text)

    def save(self, next_seq: int) -> None:
        tmp = self.path.with_suffix(".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(str(next_seq))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            raise StateError(f"cannot write sequence file {str(self.path)!r}: {exc.strerror or exc}") from exc
