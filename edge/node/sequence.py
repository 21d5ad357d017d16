"""The read sequence number survives restarts: it only ever increases on a node (SI 2022/71 asks for
sequentially numbered records). Kept in a small file in the state directory, replaced atomically."""

from __future__ import annotations

from pathlib import Path

from edge.errors import StateError
from edge.files import write_atomic


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
        try:
            write_atomic(self.path, str(next_seq).encode(), mode=0o644)
        except OSError as exc:
            raise StateError(f"cannot write sequence file {str(self.path)!r}: {exc.strerror or exc}") from exc
