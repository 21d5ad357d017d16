"""The read sequence number survives restarts: it only ever increases on a node (SI 2022/71 asks for
sequentially numbered records).

Two records keep it, so losing either cannot make a number repeat: the outbox commits the next number
in the same transaction as the read (``edge.outbox.store``), and this small file in the state directory
*reserves* it before that transaction (replaced atomically, mode 0600). A crash between the two leaves a
gap, never a repeat; at start the node continues from the larger of the two.
"""

from __future__ import annotations

from pathlib import Path

from edge.errors import StateError
from edge.files import os_error_text, refuse_link, write_atomic

MAX_SEQ = 2**53 - 1  # the read schema's bound: exact in every JSON reader


class SequenceFile:
    """Reserves sequence numbers: ``reserve(n)`` is called before a read numbered ``n - 1`` is committed."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._reserved: int | None = None

    def load(self) -> int:
        """The next sequence number this file allows (0 when there is no file); refuses a value that is not a
        number or is beyond the schema's bound (a damaged or tampered file must not be published)."""
        refuse_link(self.path)  # written by rename (a link is replaced), never read through one
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self._reserved = 0
            return 0
        except OSError as exc:
            raise StateError(f"cannot read sequence file {str(self.path)!r}: {exc.strerror or exc}") from exc
        text = raw[:64].decode("ascii", "replace").strip()
        if len(raw) > 32 or not text.isdigit() or not text.isascii() or int(text) > MAX_SEQ:
            shown = text[:20] + ("..." if len(text) > 20 else "")
            raise StateError(f"sequence file {str(self.path)!r} holds {shown!r} ({len(raw)} bytes), not a sequence "
                             f"number from 0 to {MAX_SEQ}; set it by hand to the last seq published plus one")
        self._reserved = int(text)
        return self._reserved

    def reserve(self, next_seq: int) -> None:
        """Record that numbers below ``next_seq`` may be in use (written only when it grows)."""
        if not 0 <= next_seq <= MAX_SEQ + 1:
            raise StateError(f"sequence number {next_seq} is beyond {MAX_SEQ}: this node cannot number more reads")
        if self._reserved is not None and next_seq <= self._reserved:
            return
        self.save(next_seq)

    def save(self, next_seq: int) -> None:
        try:
            write_atomic(self.path, str(next_seq).encode(), mode=0o600)
        except OSError as exc:
            raise StateError(f"cannot write sequence file {str(self.path)!r}: {os_error_text(exc)}") from exc
        self._reserved = next_seq
