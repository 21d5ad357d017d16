"""Files the node keeps: replaced atomically, and JSON in one canonical form for hashing and signing.

An atomic write is made beside the file with its final mode, flushed to disk, then renamed over it: a
reader (or a node restarted after a power cut) sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` atomically; the file has ``mode`` from its creation (whatever the umask)."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def canonical_json(obj: Any) -> bytes:
    """The one byte form of a JSON value that hashes and signatures cover (sorted keys, no spaces, UTF-8)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def os_error_text(exc: OSError) -> str:
    """An OSError for a person; a full disk is named as such."""
    text = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{text} (the disk holding the state directory is full)"
    return text
