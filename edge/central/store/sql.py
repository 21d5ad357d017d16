"""The typed central store on SQLite or PostgreSQL: a batch of records in one transaction.

Reads go into ``reads`` (``INSERT ... ON CONFLICT (id) DO NOTHING``: a redelivered read is a duplicate),
their images into files (:class:`~edge.central.images.ImageFiles`) and ``images``; status and health into
their history tables (a retained message delivered again is a duplicate) and the latest-per-node tables;
rejected messages into ``dead_letters``. The whole batch commits at once, and the caller acknowledges the
messages only after :meth:`SqlStore.write` returned. When the database refuses a row (a value it cannot
hold), the batch is written again one record at a time and the refused record becomes a dead letter with
the database's reason; when the database is unreachable, :class:`StoreUnavailableError` is raised and nothing
is acknowledged.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence

from edge.central.images import ImageFiles
from edge.central.records import HealthRecord, Outcome, ReadRecord, Record, Rejected, StatusRecord
from edge.central.store.db import Db, migrate
from edge.central.store.fleet import record_health as record_fleet
from edge.errors import StateError

log = logging.getLogger(__name__)

DEAD_LETTER_KEEP = 65_536  # bytes of a rejected payload kept (with its full size and sha256)

_READ_COLUMNS = ("id", "site", "camera", "seq", "time", "plate", "plate_hash", "key_id", "confidence", "format",
                 "direction", "zone", "first_seen", "last_seen", "sightings", "hotlist_hit", "clock_unsynced", "topic",
                 "received_at")


class StoreUnavailableError(StateError):
    """The store cannot be written now (database down, disk full); nothing of the batch was kept."""


class SqlStore:
    """Implements the central store protocol over a :class:`Db`; reconnects after the database went away."""

    def __init__(self, connect: Callable[[], Db], images: ImageFiles) -> None:
        self._connect = connect
        self._db: Db | None = None
        self.images = images

    @property
    def db(self) -> Db:
        if self._db is None:
            db = self._connect()
            migrate(db)
            self._db = db
        return self._db

    def write(self, records: Sequence[Record]) -> list[Outcome]:
        try:
            db = self.db
        except Exception as exc:
            raise StoreUnavailableError(f"central store: cannot open the database: {exc}") from exc
        try:
            return self._write(db, records)
        except db.data_errors as exc:
            db.rollback()
            if len(records) > 1:
                return [self.write([r])[0] for r in records]
            if isinstance(records[0], Rejected):
                raise  # a dead letter is bytes and plain text: a refusal here is a bug, not bad input
            log.error("central store: refused a message on %s: %s", records[0].topic, exc)
            return self.write([_refused(records[0], exc)])
        except (*db.unavailable_errors, OSError) as exc:  # type: ignore[misc]  # a tuple of exception classes
            self._drop(db)
            raise StoreUnavailableError(f"central store: cannot write now: {exc}") from exc

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _drop(self, db: Db) -> None:
        try:
            db.rollback()
            db.close()
        except Exception as exc:  # noqa: BLE001 - the connection is being thrown away whatever state it is in
            log.debug("central store: closing a broken connection: %s", exc)
        self._db = None

    def _write(self, db: Db, records: Sequence[Record]) -> list[Outcome]:
        outcomes: list[Outcome] = ["duplicate"] * len(records)
        db.begin()
        first: dict[str, int] = {}
        for i, r in enumerate(records):
            if isinstance(r, ReadRecord):
                first.setdefault(r.id, i)
        inserted = self._insert_reads(db, [r for i, r in enumerate(records) if first.get(_rid(r), -1) == i])
        for i, r in enumerate(records):
            if isinstance(r, ReadRecord):
                if first[r.id] == i and r.id in inserted:
                    outcomes[i] = "stored"
                    if r.image is not None:
                        self._insert_image(db, r)
            elif isinstance(r, StatusRecord):
                outcomes[i] = self._status(db, r)
            elif isinstance(r, HealthRecord):
                outcomes[i] = self._health(db, r)
            else:
                self._dead_letter(db, r)
                outcomes[i] = "rejected"
        db.commit()
        return outcomes

    def _insert_reads(self, db: Db, reads: Sequence[Record]) -> set[str]:
        rows = [(r.id, r.site, r.camera, r.seq, db.ts(r.time), r.plate, r.plate_hash, r.key_id, r.confidence,
                 r.format, r.direction, r.zone, db.ts(r.first_seen), db.ts(r.last_seen), r.sightings, r.hotlist_hit,
                 r.clock_unsynced, r.topic, db.ts(r.received_at)) for r in reads if isinstance(r, ReadRecord)]
        return db.insert_new("reads", _READ_COLUMNS, rows) if rows else set()

    def _insert_image(self, db: Db, r: ReadRecord) -> None:
        image = r.image
        assert image is not None
        path = self.images.save(r)
        db.run(
            "INSERT INTO images (read_id, time, kind, content_type, width, height, bytes, sha256, path, detector,"
            " model_sha256, threshold, regions, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (read_id) DO NOTHING",
            (r.id, db.ts(r.time), image.kind, image.content_type, image.width, image.height, len(image.data),
             image.sha256, path, image.detector, image.model_sha256, image.threshold, image.regions,
             db.ts(r.received_at)),
        )

    def _status(self, db: Db, s: StatusRecord) -> Outcome:
        values = (s.site, s.camera, s.state, db.ts(s.time), s.software, db.ts(s.received_at))
        new = db.rows(
            "INSERT INTO status_history (site, camera, state, time, software, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (site, camera, time, state) DO NOTHING RETURNING id", values)
        db.run(
            "INSERT INTO node_status (site, camera, state, time, software, received_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (site, camera) DO UPDATE SET state = excluded.state, time = excluded.time,"
            " software = excluded.software, received_at = excluded.received_at"
            " WHERE node_status.time <= excluded.time", values)
        return "stored" if new else "duplicate"

    def _health(self, db: Db, h: HealthRecord) -> Outcome:
        values = (h.site, h.camera, db.ts(h.time), h.outbox_depth, h.clock_synced, h.disk_free_mb,
                  db.doc(h.document), db.ts(h.received_at))
        new = db.rows(
            "INSERT INTO health_history (site, camera, time, outbox_depth, clock_synced, disk_free_mb, document,"
            " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, camera, time) DO NOTHING RETURNING id",
            values)
        db.run(
            "INSERT INTO node_health (site, camera, time, outbox_depth, clock_synced, disk_free_mb, document,"
            " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, camera) DO UPDATE SET"
            " time = excluded.time, outbox_depth = excluded.outbox_depth, clock_synced = excluded.clock_synced,"
            " disk_free_mb = excluded.disk_free_mb, document = excluded.document, received_at = excluded.received_at"
            " WHERE node_health.time <= excluded.time", values)
        if new:
            record_fleet(db, h)  # what it applied and refused of the centre's pushes (fleet status)
        return "stored" if new else "duplicate"

    def _dead_letter(self, db: Db, r: Rejected) -> None:
        db.run(
            "INSERT INTO dead_letters (received_at, topic, reason, payload, payload_bytes, payload_sha256)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (db.ts(r.received_at), _text(r.topic), _text(r.reason), r.payload[:DEAD_LETTER_KEEP], len(r.payload),
             hashlib.sha256(r.payload).hexdigest()),
        )


def _rid(r: Record) -> str:
    return r.id if isinstance(r, ReadRecord) else ""


def _text(value: str) -> str:
    """Text every database can hold: no NUL, no lone surrogate."""
    return value.replace("\x00", "\\0").encode("utf-8", "backslashreplace").decode("utf-8")


def _refused(record: Record, exc: Exception) -> Rejected:
    reason = f"the database refused it: {type(exc).__name__}: {str(exc).strip()[:300]}"
    return Rejected(record.topic, reason, record.payload, record.received_at)
