"""The durable outbox: every message is committed to disk before MQTT sees it.

One SQLite file (``<state_dir>/outbox.sqlite``) in WAL mode. ``put`` commits with
``synchronous=FULL`` (the write-ahead log is fsynced before ``put`` returns, so a read survives
a power cut); acknowledgements commit with ``synchronous=NORMAL``: an ack lost to a power cut
only means the read is sent again, which receivers drop by id (at-least-once).

The outbox is bounded by bytes (payload + topic + id) and by age, both from
:class:`edge.config.model.OutboxConfig`. When a bound is hit the oldest messages (capture order)
go first; every drop is counted (persisted across restarts) and logged.

``put`` is also the node's one commit point for a read (see ``edge.outbox.ledger``): in the same
transaction as the message it records the next sequence number and the read's audit entry (the
``journal``), so a crash can never leave a read without its audit entry, an audit entry without its
read, or a sequence number that is used again.

A damaged file (not an SQLite database, one SQLite cannot open, or one ``PRAGMA quick_check`` faults; see
``edge.outbox.salvage``) is moved aside to ``outbox.sqlite.damaged-<time>`` and a new outbox is started with every
row SQLite could still read from it (unsent messages, their audit entries, the next sequence number, the
counters), loudly: an error in the log, and ``outbox_set_aside`` in health for as long as the damaged file is kept.
The new outbox is written in full under ``outbox.sqlite.salvaged`` before the damaged file is moved, so a crash in
between finds it at the next start. A new outbox is made under a temporary name and renamed into place, so a crash
while creating it cannot leave an empty file behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Literal

from edge.clock import Clock
from edge.config.model import OutboxConfig
from edge.domain import OutgoingMessage
from edge.errors import StateError
from edge.files import fsync_dir, refuse_link
from edge.outbox.salvage import Salvaged, damaged_reason, is_corruption, salvage

log = logging.getLogger(__name__)

FILENAME = "outbox.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    captured_us INTEGER NOT NULL,
    kind TEXT NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_capture_order ON messages (captured_us, seq);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS journal (n INTEGER PRIMARY KEY, line BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_COUNTERS = ("dropped_age", "dropped_bytes", "rejected", "audit_breaks")


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """An audit entry committed with its read: its number, the exact line the audit log appends, and where the
    chain stands after it (``head``: a break entry may re-anchor the chain)."""

    n: int
    line: bytes
    head: tuple[int, str]
    is_break: bool = False


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the outbox committed besides messages: the next sequence number and the audit chain's head."""

    next_seq: int = 0
    audit_head: tuple[int, str] | None = None
    audit_breaks: int = 0


OutboxDataClass = Literal["non_hit_reads", "hit_reads", "images"]  # the retention classes the outbox holds

# Per retention class: (oldest, count and bytes before a cut-off, delete before a cut-off). Spelled out in
# full so no SQL is built from strings; the payload is the read's JSON (validated before it was stored).
_CLASS_SQL: dict[OutboxDataClass, tuple[str, str, str]] = {
    "non_hit_reads": (
        "SELECT MIN(captured_us) FROM messages WHERE kind = 'read'"
        " AND COALESCE(json_extract(CAST(payload AS TEXT), '$.hotlist_hit'), 0) != 1",
        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages WHERE captured_us < ? AND kind = 'read'"
        " AND COALESCE(json_extract(CAST(payload AS TEXT), '$.hotlist_hit'), 0) != 1",
        "DELETE FROM messages WHERE captured_us < ? AND kind = 'read'"
        " AND COALESCE(json_extract(CAST(payload AS TEXT), '$.hotlist_hit'), 0) != 1",
    ),
    "hit_reads": (
        "SELECT MIN(captured_us) FROM messages WHERE kind = 'read'"
        " AND json_extract(CAST(payload AS TEXT), '$.hotlist_hit') = 1",
        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages WHERE captured_us < ? AND kind = 'read'"
        " AND json_extract(CAST(payload AS TEXT), '$.hotlist_hit') = 1",
        "DELETE FROM messages WHERE captured_us < ? AND kind = 'read'"
        " AND json_extract(CAST(payload AS TEXT), '$.hotlist_hit') = 1",
    ),
    "images": (
        "SELECT MIN(captured_us) FROM messages WHERE json_extract(CAST(payload AS TEXT), '$.image') IS NOT NULL",
        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages WHERE captured_us < ?"
        " AND json_extract(CAST(payload AS TEXT), '$.image') IS NOT NULL",
        "DELETE FROM messages WHERE captured_us < ? AND json_extract(CAST(payload AS TEXT), '$.image') IS NOT NULL",
    ),
}


@dataclass(frozen=True, slots=True)
class DropCounts:
    """Messages removed without reaching the broker, since the outbox file was created."""

    by_age: int = 0  # older than OutboxConfig.max_age_s, or than its retention class allows
    by_bytes: int = 0  # pushed out by OutboxConfig.max_bytes
    rejected: int = 0  # failed schema validation, never published

    @property
    def total(self) -> int:
        return self.by_age + self.by_bytes + self.rejected


def _to_us(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise ValueError(f"captured_at {dt.isoformat()} has no time zone: the outbox needs UTC datetimes")
    delta = dt.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def _size(msg: OutgoingMessage) -> int:
    return len(msg.payload) + len(msg.topic.encode()) + len(msg.message_id.encode())


class Outbox:
    """Durable FIFO (capture order) of :class:`OutgoingMessage`; thread-safe.

    Use as a context manager. Safe for one producer thread (``put``) and one dispatcher thread
    (``pending``/``ack``/``reject``) at once: all access goes through one lock.
    """

    def __init__(self, path: str | os.PathLike[str], config: OutboxConfig, clock: Clock) -> None:
        self._path = Path(path)
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._bytes = 0

    @classmethod
    def in_state_dir(cls, state_dir: str | os.PathLike[str], config: OutboxConfig, clock: Clock) -> Outbox:
        return cls(Path(state_dir) / FILENAME, config, clock)

    @property
    def config(self) -> OutboxConfig:
        return self._config

    # -- lifecycle -------------------------------------------------------------------------

    def open(self) -> Outbox:
        directory = self._path.parent
        if not directory.is_dir():
            raise StateError(f"state directory {directory} does not exist: create it (systemd StateDirectory=)")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise StateError(f"state directory {directory} is not writable by this user: the outbox needs it")
        for path in (self._path, *_sidecars(self._path), self._salvaged_path()):
            refuse_link(path)  # SQLite would write (and chmod) the file a link points to
        self._finish_salvage()
        damage = damaged_reason(self._path)
        if damage is not None:
            self._replace_damaged(damage)
        if not self._path.exists():
            self._create()
        try:
            db = _connect(self._path)
            self._bytes = int(db.execute("SELECT COALESCE(SUM(size), 0) FROM messages").fetchone()[0])
        except sqlite3.Error as exc:
            hint = " (damaged after the check at start: restart the node to set it aside)" if is_corruption(exc) else ""
            raise StateError(f"outbox {self._path} cannot be opened: {exc}{hint}") from exc
        self._db = db
        depth = self.depth()
        if depth:
            log.info("outbox %s: %d message(s) pending from before, replaying in capture order", self._path, depth)
        return self

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _create(self) -> None:
        """A new, empty outbox, made under a temporary name and renamed into place (never a half-made file)."""
        tmp = self._path.with_name(self._path.name + ".new")
        for leftover in (tmp, *_sidecars(tmp)):
            leftover.unlink(missing_ok=True)
        try:
            _connect(tmp).close()  # a clean close folds the WAL back: one self-contained file
            os.replace(tmp, self._path)
            fsync_dir(self._path.parent)
        except (sqlite3.Error, OSError) as exc:
            raise StateError(f"outbox {self._path} cannot be created: {exc}") from exc

    def _replace_damaged(self, reason: str) -> None:
        """Write what SQLite can still read from the damaged outbox into ``<name>.salvaged``, move the damaged file
        aside, then put the salvaged one in its place (a crash in between: :meth:`_finish_salvage`)."""
        salvaged = salvage(self._path)
        keep = self._salvaged_path()
        _remove_with_sidecars(keep)
        try:
            db = _connect(keep)
            try:
                _write_salvaged(db, salvaged)
            finally:
                db.close()  # a clean close folds the WAL back: one self-contained file
            _fsync_file(keep)
        except (sqlite3.Error, OSError) as exc:
            raise StateError(f"outbox {self._path} is damaged ({reason}) and what it holds cannot be copied to "
                             f"{keep.name}: {exc}") from exc
        aside = self._set_aside(reason)
        self._finish_salvage()
        log.error("outbox %s is damaged (%s): moved aside to %s and a new outbox started with what SQLite could "
                  "still read from it: %s (health shows outbox_set_aside while that file is kept)", self._path,
                  reason, aside, salvaged.summary())

    def _salvaged_path(self) -> Path:
        return self._path.with_name(self._path.name + ".salvaged")

    def _finish_salvage(self) -> None:
        """A salvaged outbox is put in place once the damaged one is aside; beside a damaged one it is stale."""
        keep = self._salvaged_path()
        if not keep.exists():
            return
        try:
            if self._path.exists():  # the damaged file was not moved yet: salvaged again from it
                _remove_with_sidecars(keep)
                return
            os.replace(keep, self._path)
            fsync_dir(self._path.parent)
        except OSError as exc:
            raise StateError(f"outbox {self._path}: cannot put {keep.name} in place: {exc.strerror or exc}") from exc

    def _set_aside(self, reason: str) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        aside = self._path.with_name(f"{self._path.name}.damaged-{stamp}")
        try:  # the write-ahead log first: a log left beside a new outbox would be replayed into it
            for src in (*_sidecars(self._path), self._path):
                if src.exists():
                    os.replace(src, aside.with_name(aside.name + src.name[len(self._path.name):]))
            fsync_dir(self._path.parent)
        except OSError as exc:
            raise StateError(f"outbox {self._path} is damaged ({reason}) and cannot be moved aside: {exc}") from exc
        return aside.name

    def set_aside_files(self) -> list[str]:
        """Damaged outboxes moved aside and still kept beside this one (names), for health."""
        return sorted(p.name for p in self._path.parent.glob(self._path.name + ".damaged-*")
                      if not p.name.endswith(("-wal", "-shm")))

    def __enter__(self) -> Outbox:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StateError(f"outbox {self._path} is not open (use it as a context manager)")
        return self._db

    # -- producer --------------------------------------------------------------------------

    def put(
        self, msg: OutgoingMessage, *, seq: int | None = None, journal: Sequence[JournalEntry] = (),
        forget_journal_upto: int | None = None,
    ) -> bool:
        """Store ``msg`` durably (fsynced before returning), and in the same transaction record ``seq + 1`` as the
        next sequence number and the ``journal`` (the read's audit entry). False (nothing changed) when the
        message_id is already stored. ``forget_journal_upto`` drops journal entries the audit log now holds."""
        size = _size(msg)
        captured = _to_us(msg.captured_at)
        with self._lock:
            db = self._conn()
            try:
                db.execute("BEGIN IMMEDIATE")
                cur = db.execute(
                    "INSERT OR IGNORE INTO messages (message_id, topic, payload, captured_us, kind, size)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (msg.message_id, msg.topic, msg.payload, captured, msg.kind, size),
                )
                if cur.rowcount == 0:
                    db.execute("ROLLBACK")
                    log.debug("outbox: message %s is already stored, not added twice", msg.message_id)
                    return False
                if seq is not None:
                    db.execute("INSERT INTO meta (name, value) VALUES ('next_seq', ?) ON CONFLICT(name) DO UPDATE"
                               " SET value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
                               (str(seq + 1),))
                self._journal_locked(db, journal, forget_journal_upto)
                self._bytes += size
                dropped = self._evict_locked(db)
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback(db)
                self._recount(db)
                raise StateError(f"outbox {self._path}: cannot store message {msg.message_id}: {_why(exc)}") from exc
        self._log_drops(dropped)
        return True

    def commit_journal(self, journal: Sequence[JournalEntry], forget_upto: int | None = None) -> None:
        """Record audit entries that come without a read (breaks), or forget those the audit log now holds."""
        with self._lock:
            db = self._conn()
            try:
                db.execute("BEGIN IMMEDIATE")
                self._journal_locked(db, journal, forget_upto)
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback(db)
                raise StateError(f"outbox {self._path}: cannot record audit entries: {_why(exc)}") from exc

    def journal(self) -> list[bytes]:
        """Committed audit entries (lines, in order) that the audit log may not hold yet."""
        with self._lock:
            return [bytes(r[0]) for r in self._conn().execute("SELECT line FROM journal ORDER BY n")]

    def recorded(self) -> Recorded:
        with self._lock:
            return _recorded(self._conn())

    def _journal_locked(self, db: sqlite3.Connection, journal: Sequence[JournalEntry], forget: int | None) -> None:
        if forget is not None:
            db.execute("DELETE FROM journal WHERE n <= ?", (forget,))
        for entry in journal:
            db.execute("INSERT OR REPLACE INTO journal (n, line) VALUES (?, ?)", (entry.n, entry.line))
        if journal:
            head = journal[-1].head
            db.executemany("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)",
                           [("audit_n", str(head[0])), ("audit_hash", head[1])])
            breaks = sum(1 for e in journal if e.is_break)
            if breaks:
                self._bump_locked(db, "audit_breaks", breaks)

    def _recount(self, db: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):  # else keep the running figure; the next open recounts
            self._bytes = int(db.execute("SELECT COALESCE(SUM(size), 0) FROM messages").fetchone()[0])

    # -- dispatcher ------------------------------------------------------------------------

    def pending(self, limit: int, exclude: Collection[str] = ()) -> list[OutgoingMessage]:
        """Up to ``limit`` stored messages not in ``exclude`` (those in flight), oldest capture first
        (messages past max age are dropped)."""
        if limit <= 0:
            return []
        with self._lock:
            db = self._conn()
            try:
                dropped = self._expire_locked(db)
            except sqlite3.Error as exc:  # a full disk refuses the delete: send what is there all the same
                self._rollback(db)
                log.debug("outbox: expiring old messages failed (%s); retried on the next call", exc)
                dropped = (0, 0)
            try:
                rows = db.execute(
                    "SELECT message_id, topic, payload, captured_us, kind FROM messages"
                    " WHERE message_id NOT IN (SELECT value FROM json_each(?)) ORDER BY captured_us, seq LIMIT ?",
                    (json.dumps(sorted(exclude)), limit),
                ).fetchall()
            except sqlite3.Error as exc:
                raise StateError(f"outbox {self._path}: cannot read pending messages: {_why(exc)}") from exc
        self._log_drops(dropped)
        return [OutgoingMessage(r[0], r[1], bytes(r[2]), _from_us(r[3]), r[4]) for r in rows]

    def ack(self, message_id: str) -> None:
        """The broker acknowledged ``message_id``: delete it."""
        self.ack_many([message_id])

    def ack_many(self, message_ids: list[str]) -> None:
        """Delete several acknowledged messages in one transaction."""
        if not message_ids:
            return
        with self._lock:
            db = self._conn()
            try:
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("BEGIN IMMEDIATE")
                self._delete_locked(db, message_ids)
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback(db)
                self._recount(db)
                raise StateError(f"outbox {self._path}: cannot delete acknowledged messages: {_why(exc)}") from exc
            finally:
                db.execute("PRAGMA synchronous=FULL")

    def reject(self, message_id: str, reason: str) -> None:
        """Remove a message that must never be published (e.g. it fails its schema); counted."""
        with self._lock:
            db = self._conn()
            try:
                db.execute("BEGIN IMMEDIATE")
                removed = self._delete_locked(db, [message_id])
                if removed:
                    self._bump_locked(db, "rejected", removed)
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback(db)
                raise StateError(f"outbox {self._path}: cannot reject message {message_id}: {_why(exc)}") from exc
        if removed:
            log.error("outbox: message %s rejected and removed, never published: %s", message_id, reason)

    # -- reporting -------------------------------------------------------------------------

    def depth(self) -> int:
        with self._lock:
            return int(self._conn().execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    def size_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def oldest_age_s(self) -> float | None:
        """Age of the oldest stored message (by capture time), None when empty."""
        with self._lock:
            row = self._conn().execute("SELECT MIN(captured_us) FROM messages").fetchone()
        if row[0] is None:
            return None
        return max(0.0, (_to_us(self._clock.now()) - int(row[0])) / 1e6)

    @property
    def dropped(self) -> DropCounts:
        with self._lock:
            rows = dict(self._conn().execute("SELECT name, value FROM counters").fetchall())
        return DropCounts(
            by_age=int(rows.get("dropped_age", 0)),
            by_bytes=int(rows.get("dropped_bytes", 0)),
            rejected=int(rows.get("rejected", 0)),
        )

    def retention_stores(self) -> dict[OutboxDataClass, OutboxClass]:
        """The outbox's messages as retention classes (``edge.privacy.retention``): reads that hit no hotlist,
        hotlist hits, and reads that carry an image; a read with an image goes at the shorter of its limits."""
        return {name: OutboxClass(self, name) for name in _CLASS_SQL}

    def _oldest_of(self, data_class: OutboxDataClass) -> datetime | None:
        with self._lock:
            row = self._conn().execute(_CLASS_SQL[data_class][0]).fetchone()
        return None if row[0] is None else _from_us(int(row[0]))

    def _purge_of(self, data_class: OutboxDataClass, cutoff: datetime) -> int:
        """Remove the class's messages captured before ``cutoff``, counted as dropped by age."""
        with self._lock:
            db = self._conn()
            try:
                db.execute("BEGIN IMMEDIATE")
                row = db.execute(_CLASS_SQL[data_class][1], (_to_us(cutoff),)).fetchone()
                count, size = int(row[0]), int(row[1])
                if count:
                    db.execute(_CLASS_SQL[data_class][2], (_to_us(cutoff),))
                    self._bump_locked(db, "dropped_age", count)
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback(db)
                raise StateError(f"outbox {self._path}: retention purge of {data_class} failed: {_why(exc)}") from exc
            self._bytes -= size
        if count:
            log.warning("outbox: retention removed %d unpublished %s message(s) captured before %s "
                        "(counted in health)", count, data_class, cutoff.isoformat())
        return count

    # -- internals (caller holds the lock) -------------------------------------------------

    def _delete_locked(self, db: sqlite3.Connection, message_ids: list[str]) -> int:
        removed = 0
        for i in range(0, len(message_ids), 500):
            chunk = message_ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            size = db.execute(
                f"SELECT COALESCE(SUM(size), 0), COUNT(*) FROM messages WHERE message_id IN ({marks})",  # noqa: S608
                chunk,
            ).fetchone()
            db.execute(f"DELETE FROM messages WHERE message_id IN ({marks})", chunk)  # noqa: S608
            self._bytes -= int(size[0])
            removed += int(size[1])
        return removed

    def _evict_locked(self, db: sqlite3.Connection) -> tuple[int, int]:
        """Enforce both bounds; returns (dropped by age, dropped by bytes)."""
        by_age = self._expire_locked(db, in_transaction=True)[0]
        by_bytes = 0
        while self._bytes > self._config.max_bytes:
            excess = self._bytes - self._config.max_bytes
            rows = db.execute(
                "SELECT seq, size FROM messages ORDER BY captured_us, seq LIMIT 256"
            ).fetchall()
            if not rows:
                break
            doomed: list[int] = []
            freed = 0
            for seq, size in rows:
                doomed.append(int(seq))
                freed += int(size)
                if freed >= excess:
                    break
            marks = ",".join("?" * len(doomed))
            db.execute(f"DELETE FROM messages WHERE seq IN ({marks})", doomed)  # noqa: S608
            self._bytes -= freed
            by_bytes += len(doomed)
        if by_bytes:
            self._bump_locked(db, "dropped_bytes", by_bytes)
        return (by_age, by_bytes)

    def _expire_locked(self, db: sqlite3.Connection, *, in_transaction: bool = False) -> tuple[int, int]:
        cutoff = _to_us(self._clock.now()) - int(self._config.max_age_s * 1_000_000)
        row = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages WHERE captured_us < ?", (cutoff,)
        ).fetchone()
        count = int(row[0])
        if not count:
            return (0, 0)
        if not in_transaction:
            db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM messages WHERE captured_us < ?", (cutoff,))
            self._bump_locked(db, "dropped_age", count)
            if not in_transaction:
                db.execute("COMMIT")
        except sqlite3.Error:
            if not in_transaction:
                self._rollback(db)
            raise
        self._bytes -= int(row[1])
        return (count, 0)

    @staticmethod
    def _bump_locked(db: sqlite3.Connection, name: str, n: int) -> None:
        if name not in _COUNTERS:
            raise ValueError(f"unknown outbox counter {name!r}; known: {_COUNTERS}")
        db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, n),
        )

    @staticmethod
    def _rollback(db: sqlite3.Connection) -> None:
        if db.in_transaction:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error as exc:  # SQLite may have rolled back by itself (a full disk)
                log.debug("outbox: rollback: %s", exc)

    def _log_drops(self, dropped: tuple[int, int]) -> None:
        by_age, by_bytes = dropped
        if by_age:
            log.warning(
                "outbox: dropped %d message(s) older than max_age_s=%.0f (never published; counted in health)",
                by_age, self._config.max_age_s,
            )
        if by_bytes:
            log.warning(
                "outbox: dropped %d oldest message(s) to stay under max_bytes=%d (never published; counted)",
                by_bytes, self._config.max_bytes,
            )


def _why(exc: sqlite3.Error) -> str:
    """An SQLite error for a person: a full disk named as such."""
    text = str(exc)
    if "full" in text.lower():
        return f"{text} (the disk holding the state directory is full)"
    return text


def _sidecars(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")



def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    try:
        os.chmod(path, 0o600)  # plate text: for this user only, whatever the umask
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StateError(f"outbox {path}: SQLite refused WAL mode (got {mode!r})")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        for side in _sidecars(path):
            if side.exists():
                os.chmod(side, 0o600)
    except BaseException:
        db.close()
        raise
    return db


def _remove_with_sidecars(path: Path) -> None:
    for leftover in (path, *_sidecars(path)):
        leftover.unlink(missing_ok=True)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_salvaged(db: sqlite3.Connection, salvaged: Salvaged) -> None:
    """The rows salvaged from a damaged outbox, in one transaction; the next sequence number covers every read."""
    db.execute("BEGIN IMMEDIATE")
    db.executemany(
        "INSERT OR IGNORE INTO messages (message_id, topic, payload, captured_us, kind, size)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [(m.message_id, m.topic, m.payload, m.captured_us, m.kind,
          len(m.payload) + len(m.topic.encode()) + len(m.message_id.encode())) for m in salvaged.messages],
    )
    db.executemany("INSERT OR REPLACE INTO journal (n, line) VALUES (?, ?)", salvaged.journal)
    db.executemany("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", salvaged.meta)
    db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('next_seq', ?)", (str(salvaged.next_seq),))
    db.executemany("INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)",
                   [(n, v) for n, v in salvaged.counters if n in _COUNTERS])
    db.execute("COMMIT")


def _recorded(db: sqlite3.Connection) -> Recorded:
    meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
    breaks = db.execute("SELECT value FROM counters WHERE name = 'audit_breaks'").fetchone()
    head = (int(meta["audit_n"]), str(meta["audit_hash"])) if "audit_n" in meta and "audit_hash" in meta else None
    return Recorded(int(meta.get("next_seq", 0)), head, int(breaks[0]) if breaks else 0)


def recorded_audit_head(path: str | os.PathLike[str]) -> tuple[int, str] | None:
    """The audit head the outbox at ``path`` committed (read-only), for ``audit verify``: the log must reach it."""
    if damaged_reason(Path(path)) is not None:
        return None
    try:
        db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
        try:
            return _recorded(db).audit_head
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise StateError(f"outbox {path} cannot be read: {exc}") from exc


class OutboxClass:
    """One retention class of the outbox's messages (a ``RetentionStore``): its oldest, and its purge."""

    def __init__(self, outbox: Outbox, data_class: OutboxDataClass) -> None:
        self._outbox = outbox
        self.data_class = data_class

    def oldest(self) -> datetime | None:
        return self._outbox._oldest_of(self.data_class)

    def purge_before(self, cutoff: datetime) -> int:
        return self._outbox._purge_of(self.data_class, cutoff)
