"""The audit log: an append-only, hash-chained JSON-lines record of what left the node.

One line per message queued to leave::

    {"fields":["camera","id",...],"hash":"<64 hex>","image":false,"kind":"read","n":17,
     "policy":"<sha256 of the policy section>","prev":"<hash of line n-1>","read_id":"site.cam.17.ab12cd34",
     "time":"2026-11-22T08:30:15.123Z"}

``hash`` is sha256 of the line's canonical JSON without ``hash`` (keys sorted, no spaces); ``prev`` is
the previous entry's hash (64 zeros for the first); ``n`` counts entries from the log's start. Changing
an entry breaks its hash, deleting or reordering entries breaks ``prev`` and ``n``, and the sidecar
``<file>.head`` (``{"n": .., "hash": ..}`` of the last entry, rewritten atomically after each append)
catches entries cut from the end. Retention purges old entries by rewriting the file behind a
``checkpoint`` line that carries the number and last hash of what was removed, so the rest still
verifies. The head hash is what an auditor notes down (or a central system records) to pin the chain.

The plate text never enters this log: an auditor sees ids, field names and the policy version only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from edge.clock import iso_ms
from edge.errors import StateError
from edge.files import canonical_json, write_atomic

GENESIS = "0" * 64


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


class AuditLog:
    """Appends entries to the chain at ``path`` (created with mode 0600); also a retention store (``logs``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._n, self._last = _tail_state(self.path)
        except OSError as exc:
            raise StateError(f"cannot open audit log {str(self.path)!r}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise StateError(f"audit log {str(self.path)!r} ends in a damaged line ({exc}); "
                             f"run `edge-anpr audit verify {self.path}`") from exc

    @property
    def head(self) -> tuple[int, str]:
        """(n, hash) of the last entry; n is -1 for an empty log."""
        return self._n, self._last

    def append(self, *, read_id: str, fields: Sequence[str], image: bool, policy_version: str,
               time: datetime) -> str:
        """Add one entry and return its hash (raises OSError when the disk refuses: callers fail closed)."""
        with self._lock:
            entry: dict[str, Any] = {
                "kind": "read",
                "n": self._n + 1,
                "time": iso_ms(time),
                "read_id": read_id,
                "fields": sorted(fields),
                "image": bool(image),
                "policy": policy_version,
                "prev": self._last,
            }
            entry["hash"] = entry_hash(entry)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "ab") as f:
                f.write(canonical_json(entry) + b"\n")
                f.flush()
                os.fsync(f.fileno())
            self._n, self._last = entry["n"], entry["hash"]
            write_atomic(self.head_path, canonical_json({"n": self._n, "hash": self._last}) + b"\n")
            return str(entry["hash"])

    # --- retention store ("logs") ------------------------------------------------------------------

    def oldest(self) -> datetime | None:
        with self._lock:
            for entry in _entries(self.path):
                if entry.get("kind") == "read":
                    return _parse_time(str(entry["time"]))
            return None

    def purge_before(self, cutoff: datetime) -> int:
        """Remove entries older than ``cutoff``, leaving a checkpoint so the remaining chain verifies."""
        with self._lock:
            entries = list(_entries(self.path))
            keep_from = 0
            while keep_from < len(entries) and (
                entries[keep_from].get("kind") != "read" or _parse_time(str(entries[keep_from]["time"])) < cutoff
            ):
                keep_from += 1
            removed = entries[:keep_from]
            removed_reads = sum(1 for e in removed if e.get("kind") == "read")
            if removed_reads == 0:
                return 0
            last = removed[-1]
            last_n = int(last["n"]) if last.get("kind") == "read" else int(last["next_n"]) - 1
            last_hash = str(last["hash"]) if last.get("kind") == "read" else str(last["last_hash"])
            prior = int(removed[0]["purged"]) if removed[0].get("kind") == "checkpoint" else 0
            checkpoint: dict[str, Any] = {
                "kind": "checkpoint",
                "purged": prior + removed_reads,
                "before": iso_ms(cutoff),
                "next_n": last_n + 1,
                "last_hash": last_hash,
            }
            checkpoint["hash"] = entry_hash(checkpoint)
            lines = [canonical_json(checkpoint)] + [canonical_json(e) for e in entries[keep_from:]]
            write_atomic(self.path, b"".join(line + b"\n" for line in lines))
            return removed_reads


def verify(path: str | Path) -> tuple[bool, int | None]:
    """Check the chain in ``path``: (True, None), or (False, number of the first bad line, 1-based).

    A line cut from the end is reported as the line number where it should have been.
    """
    p = Path(path)
    expected_prev, expected_n = GENESIS, 0
    line_no = 0
    with p.open("rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                entry = json.loads(raw)
                if not isinstance(entry, dict) or entry.get("hash") != entry_hash(entry):
                    return False, line_no
            except (ValueError, TypeError):
                return False, line_no
            if entry.get("kind") == "checkpoint" and line_no == 1:
                if not isinstance(entry.get("next_n"), int) or not isinstance(entry.get("last_hash"), str):
                    return False, line_no
                expected_prev, expected_n = entry["last_hash"], entry["next_n"]
                continue
            if entry.get("kind") != "read" or entry.get("prev") != expected_prev or entry.get("n") != expected_n:
                return False, line_no
            expected_prev, expected_n = entry["hash"], expected_n + 1
    head = _read_head(p.with_name(p.name + ".head"))
    if head is not None and (head.get("hash") != expected_prev or head.get("n") != expected_n - 1):
        cut = isinstance(head.get("n"), int) and head["n"] >= expected_n
        return False, line_no + 1 if cut else max(1, line_no)
    return True, None


# --- `edge-anpr audit verify FILE` ------------------------------------------------------------------


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, help="audit log to check (e.g. /var/lib/edge-anpr/audit.jsonl)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")


def main(args: argparse.Namespace) -> int:
    """0 when the chain is intact, 1 when it is broken, 6 when the file cannot be read."""
    try:
        ok, bad = verify(args.file)
    except OSError as exc:
        print(f"cannot read audit log {str(args.file)!r}: {exc.strerror or exc}")
        return StateError.exit_code
    entries = 0 if not ok else sum(1 for e in _entries(Path(args.file)) if e.get("kind") == "read")
    if args.json:
        print(json.dumps({"file": str(args.file), "ok": ok, "first_bad_line": bad, "entries": entries}))
    elif ok:
        print(f"{args.file}: chain intact, {entries} entries")
    else:
        print(f"{args.file}: chain BROKEN at line {bad} (altered, deleted or reordered entries)")
    return 0 if ok else 1


# --- helpers ----------------------------------------------------------------------------------------


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _entries(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open("rb") as f:
        return [json.loads(line) for line in f if line.strip()]


def _read_head(path: Path) -> dict[str, Any] | None:
    """The head sidecar, None when there is none, {} when it is unreadable (which then fails the check)."""
    if not path.exists():
        return None
    try:
        head = json.loads(path.read_bytes())
    except ValueError:
        return {}
    return head if isinstance(head, dict) else {}


def _tail_state(path: Path) -> tuple[int, str]:
    """(n, hash) of the last entry, reading only the end of the file."""
    if not path.exists() or path.stat().st_size == 0:
        return -1, GENESIS
    with path.open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - 65536))
        last = f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    entry = json.loads(last)
    if entry.get("kind") == "checkpoint":
        return int(entry["next_n"]) - 1, str(entry["last_hash"])
    return int(entry["n"]), str(entry["hash"])

