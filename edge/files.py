"""Files the node keeps: replaced atomically, and JSON in one canonical form for hashing and signing.

An atomic write is made beside the file with its final mode, flushed to disk, then renamed over it: a
reader (or a node restarted after a power cut) sees the old file or the new one, never half of one. The rename
replaces a symbolic link at the path; it never writes through one.

The node never follows a symbolic link to one of its state files: :func:`refuse_link` before a file is read or
opened by a library, :func:`open_nofollow` where the node opens it itself. A link there would make the node
rewrite (and chmod 0600) whatever file it points to, as its audit log or outbox.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from edge.errors import StateError


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


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or a new file in the folder ``path`` durable (its entry, not only the file's bytes)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def canonical_json(obj: Any) -> bytes:
    """The one byte form of a JSON value that hashes and signatures cover (sorted keys, no spaces, UTF-8)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def os_error_text(exc: OSError) -> str:
    """An OSError for a person; a full disk is named as such."""
    text = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{text} (the disk holding the state directory is full)"
    return text


def refuse_link(path: str | os.PathLike[str]) -> None:
    """Raise :class:`StateError` naming ``path`` when it is a symbolic link (absent or a plain file: nothing)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StateError(f"state file {os.fspath(path)!r} cannot be examined: {os_error_text(exc)}") from exc
    if stat.S_ISLNK(mode):
        raise StateError(_link_text(path))


def open_nofollow(path: str | os.PathLike[str], flags: int, mode: int = 0o600) -> int:
    """``os.open`` that refuses a symbolic link at ``path`` (:class:`StateError` naming it); other errors as OSError."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StateError(_link_text(path)) from exc
        raise


def _link_text(path: str | os.PathLike[str]) -> str:
    try:
        target = f" (to {os.readlink(path)!r})"
    except OSError:
        target = ""
    return (f"state file {os.fspath(path)!r} is a symbolic link{target}: the node does not follow links in its state "
            f"directory; remove the link (the node makes the file again) or put the file itself there")
