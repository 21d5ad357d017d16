"""The typed central store, on SQLite and on a real PostgreSQL: rows, images as files, duplicates, dead letters."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.reads import make_read, node_config, read_id

from edge.central.intake import Intake
from edge.central.records import ReadRecord, Record
from edge.central.store import CentralStore, open_store, parse_store
from edge.central.store.sql import SqlStore

T = datetime(2026, 3, 14, 8, 0, 0, tzinfo=UTC)
NODE = node_config("site1", "cam1")
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"\xff\xd9"


class FixedClock:
    def __init__(self, t: datetime = T) -> None:
        self.t = t

    def now(self) -> datetime:
        return self.t


def _judge(payload: bytes, topic: str = "anpr/site1/cam1/reads") -> Record:
    return Intake(FixedClock()).judge(topic, payload)


def _read(seq: int, **extra: object) -> Record:
    return _judge(make_read(NODE, seq, at=T + timedelta(seconds=seq), extra=dict(extra)).payload)


def _with_image(seq: int) -> Record:
    image = {"kind": "plate_patch", "content_type": "image/jpeg", "width": 240, "height": 52,
             "data": base64.b64encode(JPEG).decode(),
             "redaction": {"detector": "blazeface", "model_sha256": "a" * 64, "threshold": 0.3, "regions": 1,
                           "second_pass_faces": 0}}
    return _read(seq, image=image)


def _status(state: str, at: datetime) -> Record:
    body = {"schema": "anpr.status/1", "site": "site1", "camera": "cam1", "state": state,
            "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"), "software": "0.1.0"}
    return _judge(json.dumps(body).encode(), "anpr/site1/cam1/status")


def _health(at: datetime, depth: int) -> Record:
    body = {"schema": "anpr.health/1", "site": "site1", "camera": "cam1", "outbox_depth": depth,
            "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"), "clock_synced": True}
    return _judge(json.dumps(body).encode(), "anpr/site1/cam1/health")


def _rows(store: SqlStore, sql: str) -> list[tuple[Any, ...]]:
    db = store.db
    rows = db.rows(sql)
    db.rollback()
    return rows


def test_each_read_is_one_typed_row_and_a_redelivered_read_is_a_duplicate(store: SqlStore) -> None:
    assert store.write([_read(0), _read(1), _read(0)]) == ["stored", "stored", "duplicate"]
    assert store.write([_read(1), _read(2)]) == ["duplicate", "stored"]
    rows = _rows(store, "SELECT id, site, camera, seq, plate, confidence, hotlist_hit FROM reads ORDER BY seq")
    assert [r[0] for r in rows] == [read_id(NODE, s) for s in range(3)]
    assert [tuple(r[1:5]) for r in rows] == [("site1", "cam1", s, f"AB{s:02d}CDE") for s in range(3)]
    assert {round(r[5], 3) for r in rows} == {0.9}
    assert {bool(r[6]) for r in rows} == {False}


def test_an_image_is_stored_once_as_a_file_the_row_refers_to(store: SqlStore) -> None:
    assert store.write([_with_image(5), _with_image(5)]) == ["stored", "duplicate"]
    ((path, size, kind, regions),) = _rows(store, "SELECT path, bytes, kind, regions FROM images")
    assert path == f"2026/03/14/{read_id(NODE, 5)}.jpg"
    assert (store.images.root / path).read_bytes() == JPEG
    assert (size, kind, regions) == (len(JPEG), "plate_patch", 1)
    assert len(list(store.images.root.rglob("*.jpg"))) == 1


def test_status_keeps_the_latest_per_node_and_every_change_once(store: SqlStore) -> None:
    online, offline = _status("online", T), _status("offline", T + timedelta(minutes=5))
    assert store.write([online, offline]) == ["stored", "stored"]
    assert store.write([online]) == ["duplicate"]  # the retained message again, after a reconnect
    assert [r[0] for r in _rows(store, "SELECT state FROM node_status")] == ["offline"]
    assert [r[0] for r in _rows(store, "SELECT state FROM status_history ORDER BY time")] == ["online", "offline"]


def test_health_keeps_the_latest_per_node_and_its_history(store: SqlStore) -> None:
    assert store.write([_health(T + timedelta(minutes=1), 7), _health(T, 3)]) == ["stored", "stored"]
    assert _rows(store, "SELECT outbox_depth FROM node_health") == [(7,)]  # an older message does not win
    assert [r[0] for r in _rows(store, "SELECT outbox_depth FROM health_history ORDER BY time")] == [3, 7]


def test_a_rejected_message_is_a_dead_letter_with_its_reason(store: SqlStore) -> None:
    bad = _judge(b'{"seq": NaN}')
    assert store.write([bad, _read(1)]) == ["rejected", "stored"]
    ((topic, reason, payload, size),) = _rows(store, "SELECT topic, reason, payload, payload_bytes FROM dead_letters")
    assert (topic, bytes(payload), size) == ("anpr/site1/cam1/reads", b'{"seq": NaN}', 12)
    assert "NaN" in reason


def test_a_row_the_database_refuses_becomes_a_dead_letter_and_the_rest_of_the_batch_is_stored(
    store: SqlStore,
) -> None:
    good = _read(1)
    assert isinstance(good, ReadRecord)
    from dataclasses import replace

    too_big = replace(good, id="site1.cam1.9.00000000", seq=2**64)  # past what intake allows: defence in depth
    assert store.write([_read(0), too_big, _read(2)]) == ["stored", "rejected", "stored"]
    assert [r[0] for r in _rows(store, "SELECT seq FROM reads ORDER BY seq")] == [0, 2]
    ((reason,),) = _rows(store, "SELECT reason FROM dead_letters")
    assert reason.startswith("the database refused it")


def test_migrations_are_recorded_and_applied_once(store: SqlStore, tmp_path: Path) -> None:
    assert _rows(store, "SELECT version, name FROM schema_migrations ORDER BY version") == [
        (1, "initial"), (2, "fleet")]
    from edge.central.store.db import migrate

    assert migrate(store.db) == []


def test_the_old_single_table_sqlite_file_is_moved_into_the_typed_tables(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    payload = json.loads(make_read(NODE, 4).payload)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE reads (id TEXT PRIMARY KEY, site TEXT NOT NULL, camera TEXT NOT NULL,"
                   " seq INTEGER NOT NULL, time TEXT NOT NULL, topic TEXT NOT NULL, received_at TEXT NOT NULL,"
                   " payload TEXT NOT NULL)")
        db.execute("INSERT INTO reads VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (payload["id"], "site1", "cam1", 4, payload["time"], "anpr/site1/cam1/reads",
                    "2026-03-14T08:00:00.000+00:00", json.dumps(payload)))
    store: CentralStore = open_store(parse_store(str(path)))
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT id, plate, received_at FROM reads").fetchall() == [
            (payload["id"], "AB04CDE", "2026-03-14T08:00:00.000Z")]
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'reads_v0'").fetchall() == []


def test_concurrent_listeners_migrate_a_fresh_postgresql_database_once(new_postgres_url: Callable[[], str],
                                                                       tmp_path: Path) -> None:
    import threading

    url = new_postgres_url()
    errors: list[Exception] = []

    def open_one() -> None:
        try:
            open_store(parse_store(url, images=tmp_path)).close()
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []


def test_a_lost_postgresql_connection_is_unavailable_once_then_reconnected(postgres_url: str, tmp_path: Path) -> None:
    import psycopg

    from edge.central.store import StoreUnavailableError

    store = open_store(parse_store(postgres_url, images=tmp_path / "images"))
    assert isinstance(store, SqlStore)
    assert store.write([_read(0)]) == ["stored"]
    (pid,) = store.db.rows("SELECT pg_backend_pid()")[0]
    store.db.commit()
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(StoreUnavailableError):
        store.write([_read(1)])  # nothing kept, nothing acknowledged: the writer tries again
    assert store.write([_read(1), _read(0)]) == ["stored", "duplicate"]
    store.close()
