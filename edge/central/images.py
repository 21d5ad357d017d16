"""Images at the centre: one file per read, under a folder per UTC day of the read; rows keep the path.

``<root>/<YYYY>/<MM>/<DD>/<read id>.jpg``. A file is written whole (temporary name, fsync, rename) before
the row that refers to it is committed, so a stored row always finds its image; writing the same read again
(a redelivery) rewrites the same file. Retention removes files by the read's day, so a file whose row was
never committed (a crash between the two) goes with its day.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path

from edge.central.records import ReadRecord


class ImageFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def relative_path(self, read: ReadRecord) -> str:
        t = read.time
        return f"{t.year:04d}/{t.month:02d}/{t.day:02d}/{read.id}.jpg"

    def save(self, read: ReadRecord) -> str:
        """Write the read's image; returns its path relative to the root. Raises OSError (disk full...)."""
        if read.image is None:
            raise ValueError(f"read {read.id} has no image")
        rel = self.relative_path(read)
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, read.image.data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return rel

    def remove(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.root / rel).unlink()

    def remove_days_before(self, cutoff: datetime) -> int:
        """Remove every day folder wholly before ``cutoff``'s day (and empty month/year folders); folders removed."""
        removed = 0
        last_day = (cutoff - timedelta(days=1)).date()
        for day in sorted(self.root.glob("[0-9][0-9][0-9][0-9]/[0-9][0-9]/[0-9][0-9]")):
            try:
                year, month, dom = (int(p) for p in day.relative_to(self.root).parts)
                when = datetime(year, month, dom).date()
            except ValueError:
                continue
            if when <= last_day:
                shutil.rmtree(day, ignore_errors=True)
                removed += 1
        for parent in sorted(self.root.glob("[0-9][0-9][0-9][0-9]/[0-9][0-9]"), reverse=True):
            with contextlib.suppress(OSError):
                parent.rmdir()  # only when empty
        for parent in self.root.glob("[0-9][0-9][0-9][0-9]"):
            with contextlib.suppress(OSError):
                parent.rmdir()
        return removed
