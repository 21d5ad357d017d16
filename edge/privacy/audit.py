"""The audit log: an append-only, hash-chained JSON-lines record of what left the node.

One line per message queued to leave::

    {"fields":["camera","id",...],"hash":"<64 hex>","image":false,"kind":"read","n":17,
     "policy":"<sha256 of the policy section>","prev":"<hash of line n-1>","read_id":"site.cam.17.ab12cd34",
     "time":"2026-11-22T08:30:15.123Z"}

``hash`` is sha256 of the line's canonical JSON without ``hash`` (keys sorted, no spaces); ``prev`` is
the previous entry's hash (64 zeros for the first); ``n`` counts entries from the log's start. Changing
an entry breaks its hash, deleting or reordering entries breaks ``prev`` and ``n``. Entries cut from the
end are caught by two witnesses of the last entry: the sidecar ``<file>.head`` (``{"n": .., "hash": ..}``,
rewritten atomically after each append) and the outbox, which records the head in the same SQLite
transaction as the read itself (``edge.outbox.ledger``), so deleting ``.head`` with the last lines is
caught too. Retention purges old entries by rewriting the file behind a ``checkpoint`` line that carries
the number and last hash of what was removed, so the rest still verifies. The head hash is what an
auditor notes down (or a central system records: it is in every health message) to pin the chain.

An entry is committed to the outbox database first, with its read, then appended here
(:class:`AuditLog` keeps entries that could not be written yet, e.g. on a full disk, and writes them
later; after a crash the outbox hands them back). So the log never records a read that did not leave.

Damage the node cannot undo (a damaged last line whose entry is gone, entries missing before a later
one) is kept aside in ``<file>.damaged-<time>`` and recorded in the chain as a ``break`` entry, chained
like a read, with the reason; where entries are missing before later ones it names where the chain
resumes (``resume_n``, ``resume_prev``). The node carries on; ``audit verify`` reports every break.

The plate text never enters this log: an auditor sees ids, field names and the policy version only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.clock import iso_ms
from edge.errors import StateError
from edge.files import canonical_json, open_nofollow, os_error_text, refuse_link, write_atomic

log = logging.getLogger(__name__)

GENESIS = "0" * 64
TAIL_CHUNK = 65536


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _sealed(entry: dict[str, Any]) -> dict[str, Any]:
    entry["hash"] = entry_hash(entry)
    return entry


@dataclass(frozen=True, slots=True)
class AuditDraft:
    """One chain entry, made but not yet in the file: its number, hash and the exact line to append."""

    n: int
    hash: str
    line: bytes

    @classmethod
    def of(cls, entry: dict[str, Any]) -> AuditDraft:
        return cls(int(entry["n"]), str(entry["hash"]), canonical_json(entry) + b"\n")

    def resumes_at(self) -> tuple[int, str]:
        """(n, hash) the chain continues from after this entry (a break may re-anchor it)."""
        return _continuation(json.loads(self.line))

    @property
    def is_break(self) -> bool:
        return b'"kind":"break"' in self.line


def _continuation(entry: dict[str, Any]) -> tuple[int, str]:
    """The (n, hash) an entry leaves the chain at: the next entry has n + 1 and prev = hash."""
    if entry.get("kind") == "checkpoint":
        return int(entry["next_n"]) - 1, str(entry["last_hash"])
    if entry.get("kind") == "break" and "resume_n" in entry:
        return int(entry["resume_n"]) - 1, str(entry["resume_prev"])
    return int(entry["n"]), str(entry["hash"])


@dataclass(slots=True)
class AuditFaults:
    """What the audit log survived, for health (since the node started)."""

    breaks: int = 0  # break entries recorded
    set_aside: list[str] = field(default_factory=list)  # files holding damaged tails
    write_failures: int = 0  # appends the disk refused (the entries waited in the outbox)


class AuditLog:
    """The chain at ``path`` (created 0600); also a retention store (``logs``).

    Opening it reads only the end of the file: a damaged last line (a write cut by a power cut or a full
    disk) is moved aside to ``<file>.damaged-<time>`` at once. :meth:`reconcile` then brings the file up to
    what the outbox committed and records a break for what cannot be recovered.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")
        self._lock = threading.Lock()
        self._unwritten: list[AuditDraft] = []
        self._damage: str | None = None  # what was set aside at open, until reconcile records it
        self._blocked = False  # a damaged tail could not be set aside yet: append nothing after it
        self.faults = AuditFaults()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            refuse_link(self.path)  # never rewrite (or chmod) a file elsewhere as the audit log
            refuse_link(self.head_path)
            self._n, self._last = self._open_tail()
        except OSError as exc:
            raise StateError(f"cannot open audit log {str(self.path)!r}: {exc.strerror or exc}") from exc
        self._written = self._n  # n of the last entry in the file

    # -- the chain ---------------------------------------------------------------------------------------

    @property
    def head(self) -> tuple[int, str]:
        """(n, hash) of the last committed entry (written or waiting to be); n is -1 for an empty log."""
        return self._n, self._last

    @property
    def written(self) -> int:
        """n of the last entry that is in the file."""
        return self._written

    @property
    def unwritten(self) -> int:
        return len(self._unwritten)

    def draft(self, *, read_id: str, fields: Sequence[str], image: bool, policy_version: str,
              time: datetime) -> AuditDraft:
        """The next entry for a read; nothing changes until :meth:`commit` (the caller's transaction succeeded)."""
        with self._lock:
            return AuditDraft.of(_sealed({
                "kind": "read",
                "n": self._n + 1,
                "time": iso_ms(time),
                "read_id": read_id,
                "fields": sorted(fields),
                "image": bool(image),
                "policy": policy_version,
                "prev": self._last,
            }))

    def commit(self, draft: AuditDraft) -> None:
        """The entry is durable elsewhere (the outbox); it is now the head, and is appended by :meth:`write`."""
        with self._lock:
            if draft.n != self._n + 1:
                raise ValueError(f"audit entry {draft.n} does not follow the head {self._n}")
            self._n, self._last = draft.resumes_at()
            self._unwritten.append(draft)

    def write(self) -> bool:
        """Append every committed entry not yet in the file; False when the disk refused (they wait for the next
        call; the outbox keeps them across a restart). Never raises for an I/O error."""
        with self._lock:
            if not self._unwritten:
                return True
            try:
                if self._blocked:
                    self._repair_locked()
                self._append_locked(self._unwritten)
            except OSError as exc:
                self.faults.write_failures += 1
                log.error("audit log %s: cannot append %d entr%s (%s); they wait in the outbox and are written when "
                          "the disk allows", self.path, len(self._unwritten),
                          "y" if len(self._unwritten) == 1 else "ies", os_error_text(exc))
                return False
            self._unwritten.clear()
            return True

    def append(self, *, read_id: str, fields: Sequence[str], image: bool, policy_version: str,
               time: datetime) -> str:
        """Draft, commit and write one entry (a log without an outbox beside it); raises OSError when the disk
        refuses."""
        draft = self.draft(read_id=read_id, fields=fields, image=image, policy_version=policy_version, time=time)
        self.commit(draft)
        if not self.write():
            raise OSError(f"audit log {self.path}: entry {draft.n} could not be written")
        return draft.hash

    def reconcile(self, pending: Sequence[bytes], witness: tuple[int, str] | None, now: datetime) -> list[AuditDraft]:
        """Bring the chain up to what the outbox committed; returns the break entries this made (to be committed).

        ``pending`` are committed entries (canonical lines) that may not be in the file yet, in order;
        ``witness`` is the head the outbox recorded. Entries the file lacks are appended; entries lost
        before later ones, entries cut from the end (the outbox or ``.head`` knew more) and a damaged tail
        that nothing replaced are each recorded as a break.
        """
        with self._lock:
            reasons: list[str] = []
            breaks: list[AuditDraft] = []
            applied = False
            for raw in pending:
                entry = json.loads(raw)
                n = int(entry["n"])
                if n <= self._n:
                    continue
                if n != self._n + 1 or entry.get("prev") != self._last:
                    reasons.append(f"{_span(self._n + 1, n - 1)} missing before entry {n}")
                    breaks.append(self._break_locked(reasons, now, resume=(n, str(entry["prev"]))))
                    reasons = []
                draft = AuditDraft.of(entry)
                self._n, self._last = draft.resumes_at()
                self._unwritten.append(draft)
                applied = True
            head = _read_head(self.head_path)
            witnesses = [w for w in (witness, _head_pair(head)) if w is not None]
            for n, digest in witnesses:
                if n > self._n:
                    reasons.append(f"{_span(self._n + 1, n)} cut from the end (recorded head: entry {n})")
                    break
                if n == self._n and digest != self._last:
                    reasons.append(f"entry {n} differs from the one recorded when it was written")
                    break
            if self._damage is not None and not applied:
                reasons.append(self._damage)
            elif self._damage is not None:
                log.warning("audit log %s: %s; the outbox still held the entry, rewritten", self.path, self._damage)
            self._damage = None
            if reasons:
                breaks.append(self._break_locked(reasons, now, resume=None))
            return breaks

    def _break_locked(self, reasons: list[str], now: datetime, resume: tuple[int, str] | None) -> AuditDraft:
        entry: dict[str, Any] = {"kind": "break", "n": self._n + 1, "prev": self._last, "time": iso_ms(now),
                                 "reason": "; ".join(reasons)}
        if self.faults.set_aside:
            entry["set_aside"] = self.faults.set_aside[-1].rsplit("/", 1)[-1]
        if resume is not None:
            entry["resume_n"], entry["resume_prev"] = resume
        draft = AuditDraft.of(_sealed(entry))
        self._n, self._last = draft.resumes_at()
        self._unwritten.append(draft)
        self.faults.breaks += 1
        log.error("audit log %s: chain break recorded at entry %d: %s (audit verify reports it)", self.path, draft.n,
                  entry["reason"])
        return draft

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
            if self._unwritten:
                return 0  # the file is behind the chain (a full disk): purge once it has caught up
            entries = list(_entries(self.path))
            keep_from = 0
            while keep_from < len(entries) and (
                entries[keep_from].get("kind") == "checkpoint"
                or _parse_time(str(entries[keep_from]["time"])) < cutoff
            ):
                keep_from += 1
            removed = entries[:keep_from]
            removed_reads = sum(1 for e in removed if e.get("kind") == "read")
            if not any(e.get("kind") != "checkpoint" for e in removed):
                return 0
            last_n, last_hash = _continuation(removed[-1])
            prior = int(removed[0]["purged"]) if removed[0].get("kind") == "checkpoint" else 0
            checkpoint = _sealed({
                "kind": "checkpoint",
                "purged": prior + removed_reads,
                "before": iso_ms(cutoff),
                "next_n": last_n + 1,
                "last_hash": last_hash,
            })
            lines = [canonical_json(checkpoint)] + [canonical_json(e) for e in entries[keep_from:]]
            write_atomic(self.path, b"".join(line + b"\n" for line in lines))
            return removed_reads

    # -- internals ----------------------------------------------------------------------------------

    def _append_locked(self, drafts: Sequence[AuditDraft]) -> None:
        fd = open_nofollow(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            os.fchmod(fd, 0o600)
            size = os.fstat(fd).st_size
            try:
                os.write(fd, b"".join(d.line for d in drafts))  # short writes raise ENOSPC on the next call
                os.fsync(fd)
            except OSError:
                _truncate(fd, size)  # never leave half a line behind
                raise
        finally:
            os.close(fd)
        last = drafts[-1]
        self._written = last.n
        try:
            write_atomic(self.head_path, canonical_json({"n": last.n, "hash": last.hash}) + b"\n")
        except OSError as exc:  # the outbox is the other witness; the next append rewrites it
            log.warning("audit log %s: cannot update %s: %s", self.path, self.head_path.name, exc.strerror or exc)

    def _open_tail(self) -> tuple[int, str]:
        """(n, hash) the file ends at, after moving a damaged tail aside."""
        if not self.path.exists():
            return -1, GENESIS
        good_end, last = last_good(self.path)
        size = self.path.stat().st_size
        if good_end < size:
            try:
                self._set_aside(good_end, size)
            except OSError as exc:  # a full disk: keep the file as it is, append nothing until it can be kept aside
                self._blocked = True
                log.error("audit log %s: its last %d bytes do not verify and cannot be kept aside now (%s); new "
                          "entries wait in the outbox", self.path, size - good_end, exc.strerror or exc)
        return _continuation(last) if last is not None else (-1, GENESIS)

    def _repair_locked(self) -> None:
        good_end, _ = last_good(self.path)
        size = self.path.stat().st_size
        if good_end < size:
            self._set_aside(good_end, size)
        self._blocked = False

    def _set_aside(self, good_end: int, size: int) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        with os.fdopen(open_nofollow(self.path, os.O_RDONLY), "rb") as f:
            f.seek(good_end)
            damaged = f.read()
        write_atomic(aside, damaged)  # an OSError here stops the open: nothing is cut before it is kept
        with os.fdopen(open_nofollow(self.path, os.O_RDWR), "r+b") as f:
            f.truncate(good_end)
            f.flush()
            os.fsync(f.fileno())
        self.faults.set_aside.append(str(aside))
        self._damage = f"a damaged tail of {size - good_end} bytes was set aside in {aside.name}"
        log.error("audit log %s: its last %d bytes do not verify; kept aside in %s", self.path, size - good_end,
                  aside)


@dataclass(frozen=True, slots=True)
class ChainBreak:
    line: int
    time: str
    reason: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What ``audit verify`` found: ``ok`` when every line verifies and links to the one before and no witness
    knows of more entries; ``breaks`` the recorded breaks (damage the node survived)."""

    ok: bool
    first_bad_line: int | None
    entries: int
    breaks: tuple[ChainBreak, ...] = ()
    detail: str = ""

    @property
    def clean(self) -> bool:
        return self.ok and not self.breaks


def check(path: str | Path, witness: tuple[int, str] | None = None) -> ChainReport:
    """Check the chain in ``path`` against its ``.head`` and, when given, the head the outbox recorded.

    A line cut from the end is reported as the line number where it should have been.
    """
    p = Path(path)
    expected_prev, expected_n = GENESIS, 0
    line_no, reads = 0, 0
    breaks: list[ChainBreak] = []
    with p.open("rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                entry = json.loads(raw)
                if not isinstance(entry, dict) or entry.get("hash") != entry_hash(entry):
                    return ChainReport(False, line_no, reads, tuple(breaks), "the line does not match its hash")
                kind = entry.get("kind")
                if kind == "checkpoint" and line_no == 1:
                    expected_n, expected_prev = int(entry["next_n"]), str(entry["last_hash"])
                    continue
                if kind not in ("read", "break") or entry.get("prev") != expected_prev or entry.get("n") != expected_n:
                    return ChainReport(False, line_no, reads, tuple(breaks),
                                       "the line does not follow the one before (deleted, reordered or inserted)")
                last_n, last_hash = _continuation(entry)
            except (ValueError, TypeError, KeyError) as exc:
                return ChainReport(False, line_no, reads, tuple(breaks), f"not an audit entry ({exc})")
            if kind == "break":
                breaks.append(ChainBreak(line_no, str(entry.get("time")), str(entry.get("reason"))))
            else:
                reads += 1
            expected_n, expected_prev = last_n + 1, last_hash
    problem = _witness_problem(p, witness, expected_n, expected_prev)
    if problem is not None:
        return ChainReport(False, line_no + 1 if "cut" in problem else max(1, line_no), reads, tuple(breaks), problem)
    return ChainReport(True, None, reads, tuple(breaks))


def _witness_problem(path: Path, witness: tuple[int, str] | None, expected_n: int, expected_prev: str) -> str | None:
    """What the ``.head`` file or the outbox knows that the log does not show; None when they agree."""
    head = _read_head(path.with_name(path.name + ".head"))
    if head == {}:
        return "its .head file is unreadable"
    for name, known in (("its .head file", _head_pair(head)), ("the outbox", witness)):
        if known is None:
            continue
        if known[0] >= expected_n:
            later = " or not yet written (a full disk: the node appends them later)" if name == "the outbox" else ""
            return f"{_span(expected_n, known[0])} cut from the end{later} ({name} records entry {known[0]})"
        if known[0] == expected_n - 1 and known[1] != expected_prev:
            return f"the last entry differs from the one {name} records"
    return None


def verify(path: str | Path) -> tuple[bool, int | None]:
    """Check the chain in ``path``: (True, None), or (False, number of the first bad line, 1-based)."""
    report = check(path)
    return report.ok, report.first_bad_line


# --- `edge-anpr audit verify FILE` ------------------------------------------------------------------


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, help="audit log to check (e.g. /var/lib/edge-anpr/audit.jsonl)")
    p.add_argument("--outbox", type=Path,
                   help="the node's outbox, whose recorded head catches entries cut from the end "
                        "(default: outbox.sqlite beside FILE, when there is one)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")


def main(args: argparse.Namespace) -> int:
    """0 when the chain is intact with no break, 1 when it is broken or records a break, 6 when it cannot be read."""
    from edge.outbox.store import recorded_audit_head

    outbox = args.outbox or args.file.with_name("outbox.sqlite")
    witness = None
    try:
        witness = recorded_audit_head(outbox) if outbox.exists() else None
    except StateError as exc:
        print(f"note: {exc}; checked without the head it records")
    try:
        report = check(args.file, witness)
    except (OSError, StateError) as exc:
        print(f"cannot read audit log {str(args.file)!r}: {getattr(exc, 'strerror', None) or exc}")
        return StateError.exit_code
    if args.json:
        print(json.dumps({"file": str(args.file), "ok": report.ok, "first_bad_line": report.first_bad_line,
                          "entries": report.entries, "detail": report.detail or None,
                          "breaks": [{"line": b.line, "time": b.time, "reason": b.reason} for b in report.breaks]}))
    elif not report.ok:
        print(f"{args.file}: chain BROKEN at line {report.first_bad_line}: {report.detail}")
    else:
        print(f"{args.file}: chain intact, {report.entries} entries"
              + (f", {len(report.breaks)} recorded break(s)" if report.breaks else ""))
    for b in report.breaks:
        print(f"  BREAK at line {b.line} ({b.time}): {b.reason}")
    return 0 if report.clean else 1


# --- helpers ----------------------------------------------------------------------------------------


def _span(first: int, last: int) -> str:
    return f"entry {first} is" if first == last else f"entries {first}..{last} are"


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
    except (ValueError, OSError):
        return {}
    return head if isinstance(head, dict) else {}


def _head_pair(head: dict[str, Any] | None) -> tuple[int, str] | None:
    if not head or not isinstance(head.get("n"), int) or not isinstance(head.get("hash"), str):
        return None
    return int(head["n"]), str(head["hash"])


def _good_entry(raw: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(entry, dict) or entry.get("hash") != entry_hash(entry):
        return None
    try:
        _continuation(entry)
    except (KeyError, TypeError, ValueError):
        return None
    return entry


def last_good(path: Path) -> tuple[int, dict[str, Any] | None]:
    """(offset just after the last line that verifies, that entry); reads back from the end in growing chunks."""
    with path.open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        chunk = TAIL_CHUNK
        while True:
            start = max(0, size - chunk)
            f.seek(start)
            data = f.read()
            # complete lines only: the part before the first newline may be the end of a line before the chunk
            end = len(data)
            while end > 0:
                cut = data.rfind(b"\n", 0, end - 1) if end > 1 else -1
                line_start = cut + 1
                if line_start == 0 and start > 0:
                    break  # this line may begin before the chunk: read a bigger one
                body = data[line_start:end]
                if body.endswith(b"\n") and (entry := _good_entry(body)) is not None:
                    return start + end, entry
                end = line_start
            if start == 0:
                return 0, None
            chunk *= 4


def _truncate(fd: int, size: int) -> None:
    try:
        os.ftruncate(fd, size)
    except OSError as exc:
        log.error("audit log: cannot cut a partial append back (%s); it is set aside at the next start",
                  exc.strerror or exc)
