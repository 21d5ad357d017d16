"""A damaged outbox: the check that finds the damage, and the rows SQLite can still read from it.

An outbox file is damaged when it is not an SQLite database (empty, overwritten), when SQLite cannot open it
(cut short: "database disk image is malformed"), or when ``PRAGMA quick_check`` finds a fault (bytes overwritten
on the card). Any other refusal (permission, a lock, an I/O error) is not damage: the file may be sound, so it is
never set aside for that (:class:`edge.errors.StateError`, exit 6).

:func:`salvage` reads every row SQLite can still read from a damaged file, table by table in rowid order, stepping
over what it cannot read (a damaged page costs the rows on it, not those after it). It only reads (``mode=ro``).
The outbox (``edge.outbox.store``) writes what it returns into the outbox that replaces the damaged one: unsent
messages keep their ids (receivers drop a repeat by id) and their sequence numbers, and the audit entries they
were committed with go on to the audit log, so nothing is numbered twice and nothing leaves unaudited.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from edge.errors import StateError

_HEADER = b"SQLite format 3\x00"
_CORRUPT = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB (primary result codes)
_MAX_ROWID = 2**63 - 1
_MAX_TRIES = 100_000  # scan restarts per table; each reads a row or doubles the step over damage
_META = ("next_seq", "audit_n", "audit_hash")


@dataclass(frozen=True, slots=True)
class SalvagedMessage:
    message_id: str
    topic: str
    payload: bytes
    captured_us: int
    kind: str
    seq: int | None  # the read's sequence number (its payload's ``seq``), None for other messages


@dataclass(frozen=True, slots=True)
class Salvaged:
    """The rows read from a damaged outbox; ``unreadable`` names the tables some of whose rows were lost."""

    messages: tuple[SalvagedMessage, ...] = ()
    journal: tuple[tuple[int, bytes], ...] = ()  # (n, audit line) committed with reads
    meta: tuple[tuple[str, str], ...] = ()
    counters: tuple[tuple[str, int], ...] = ()
    unreadable: tuple[str, ...] = ()

    @property
    def next_seq(self) -> int:
        """The next sequence number these rows allow: the recorded one, or past every salvaged read's."""
        recorded = int(dict(self.meta).get("next_seq", "0"))
        seqs = [m.seq + 1 for m in self.messages if m.seq is not None]
        return max([recorded, *seqs])

    def summary(self) -> str:
        lost = f"; rows of {', '.join(self.unreadable)} could not be read" if self.unreadable else ""
        return f"{len(self.messages)} unsent message(s) and {len(self.journal)} audit entries recovered{lost}"


def is_corruption(exc: sqlite3.Error) -> bool:
    """True when SQLite refused because the file is damaged (not for a lock, a permission or an I/O error)."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF in _CORRUPT


def _open_ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)


def damaged_reason(path: Path) -> str | None:
    """Why the outbox file at ``path`` is damaged (None when it is a sound SQLite database, or absent). Reads only.

    Raises :class:`StateError` when the file cannot be read for another reason than damage."""
    try:
        with path.open("rb") as f:
            header = f.read(len(_HEADER))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"outbox {path} cannot be read: {exc.strerror or exc}") from exc
    if not header:
        return "it is empty (0 bytes)"
    if header != _HEADER:
        return "it is not an SQLite database"
    try:
        db = _open_ro(path)
        try:
            rows = db.execute("PRAGMA quick_check(3)").fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        if is_corruption(exc):
            return f"SQLite cannot read it: {exc}"
        raise StateError(f"outbox {path} cannot be read: {exc}") from exc
    faults = [str(r[0]).replace("\n", " ") for r in rows if r[0] != "ok"]
    if faults:
        return f"PRAGMA quick_check finds {'; '.join(faults)[:160]}"
    return None


def salvage(path: Path) -> Salvaged:
    """Every row of the damaged outbox at ``path`` that SQLite can still read and that is well formed."""
    try:
        db = _open_ro(path)
        db.execute("PRAGMA writable_schema=ON")  # reads a file cut shorter than its header says (nothing is written)
    except sqlite3.Error:
        return Salvaged(unreadable=("every table",))
    try:
        unreadable: list[str] = []
        raw_messages = _rows(db, "messages", "message_id, topic, payload, captured_us, kind", unreadable)
        raw_journal = _rows(db, "journal", "n, line", unreadable)
        raw_meta = _rows(db, "meta", "name, value", unreadable)
        raw_counters = _rows(db, "counters", "name, value", unreadable)
    finally:
        db.close()
    messages = tuple(m for m in map(_message, raw_messages) if m is not None)
    journal = tuple(j for j in map(_journal, raw_journal) if j is not None)
    meta = tuple((str(n), str(v)) for n, v in raw_meta if isinstance(n, str) and _meta_ok(n, v))
    counters = tuple((n, v) for n, v in raw_counters if isinstance(n, str) and isinstance(v, int) and v >= 0)
    for table, raw, kept in (("messages", raw_messages, messages), ("journal", raw_journal, journal),
                             ("meta", raw_meta, meta), ("counters", raw_counters, counters)):
        if len(kept) < len(raw) and table not in unreadable:
            unreadable.append(table)
    return Salvaged(messages, journal, meta, counters, tuple(unreadable))


def _rows(db: sqlite3.Connection, table: str, columns: str, unreadable: list[str]) -> list[tuple[object, ...]]:
    """The rows of ``table`` SQLite can read, in rowid order, stepping over damage (the step doubles while a
    restart reads nothing). ``table`` and ``columns`` are this module's constants, never outside text."""
    sql = f"SELECT rowid, {columns} FROM {table} WHERE rowid > ? ORDER BY rowid"  # noqa: S608
    rows: list[tuple[object, ...]] = []
    after, step = -1, 0
    for _ in range(_MAX_TRIES):
        start = min(after + step, _MAX_ROWID)
        read = False
        try:
            for row in db.execute(sql, (start,)):
                rows.append(tuple(row[1:]))
                after, read = int(row[0]), True
            return rows
        except sqlite3.Error:
            if table not in unreadable:
                unreadable.append(table)
            if start >= _MAX_ROWID:
                return rows
            step = 0 if read else max(1, step * 2)
    return rows


def _message(row: tuple[object, ...]) -> SalvagedMessage | None:
    message_id, topic, payload, captured_us, kind = row
    if not (isinstance(message_id, str) and isinstance(topic, str) and isinstance(payload, bytes | str)
            and isinstance(captured_us, int) and isinstance(kind, str)):
        return None
    body = payload.encode() if isinstance(payload, str) else payload
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("id", message_id) != message_id:
        return None
    seq = data.get("seq")
    return SalvagedMessage(message_id, topic, body, captured_us, kind,
                           seq if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0 else None)


def _journal(row: tuple[object, ...]) -> tuple[int, bytes] | None:
    n, line = row
    if not isinstance(n, int) or not isinstance(line, bytes | str):
        return None
    body = line.encode() if isinstance(line, str) else line
    try:
        entry = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return (n, body) if isinstance(entry, dict) and entry.get("n") == n else None


def _meta_ok(name: str, value: object) -> bool:
    if name not in _META or not isinstance(value, str):
        return False
    if name == "audit_hash":
        return len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    digits = value.removeprefix("-") if name == "audit_n" else value
    return digits.isascii() and digits.isdigit() and len(digits) < 19
