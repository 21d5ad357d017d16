"""Retention at the centre, with the node's classes, on SQLite and PostgreSQL, driven by a fake clock."""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.broker import MosquittoBroker
from support.reads import SettableClock, make_read, node_config, read_id

from edge.central.intake import Intake
from edge.central.listen import ListenOptions, run_listen
from edge.central.records import Record
from edge.central.retention import central_retention, load_retention, start_purging
from edge.central.store import open_store, parse_store
from edge.central.store.sql import SqlStore
from edge.cli import main as cli_main
from edge.clock import iso_ms
from edge.config.model import RetentionConfig
from edge.errors import ConfigError

NOW = datetime(2026, 3, 14, 12, 0, 0, tzinfo=UTC)
NODE = node_config("site1", "cam1")
DAY = timedelta(days=1)


def _read(seq: int, at: datetime, *, hit: bool = False, image: bool = False) -> Record:
    extra: dict[str, object] = {"hotlist_hit": True} if hit else {}
    if image:
        extra["image"] = {"kind": "plate_patch", "content_type": "image/jpeg", "width": 10, "height": 4,
                          "data": base64.b64encode(b"\xff\xd8jpeg\xff\xd9").decode(),
                          "redaction": {"detector": "d", "model_sha256": "0" * 64, "threshold": 0.3, "regions": 0,
                                        "second_pass_faces": 0}}
    return Intake(SettableClock(at)).judge("anpr/site1/cam1/reads", make_read(NODE, seq, at=at, extra=extra).payload)


def _status(at: datetime) -> Record:
    body = {"schema": "anpr.status/1", "site": "site1", "camera": "cam1", "state": "online",
            "time": iso_ms(at), "software": "0.1.0"}
    return Intake(SettableClock(at)).judge("anpr/site1/cam1/status", json.dumps(body).encode())


def _dead(at: datetime) -> Record:
    return Intake(SettableClock(at)).judge("anpr/site1/cam1/reads", b"not json")


def _ids(store: SqlStore, sql: str) -> list[Any]:
    rows = store.db.rows(sql)
    store.db.rollback()
    return [r[0] for r in rows]


def test_each_class_is_purged_at_its_own_age_and_images_go_with_their_files(store: SqlStore) -> None:
    store.write([
        _read(0, NOW - 2 * DAY, image=True),            # non-hit, too old: read and image go
        _read(1, NOW - timedelta(hours=1), image=True),  # non-hit, recent: kept
        _read(2, NOW - 40 * DAY, hit=True),             # hit past 31 days: goes
        _read(3, NOW - 10 * DAY, hit=True, image=True),  # hit kept, its image (older than 1 day) goes
        _status(NOW - 40 * DAY), _status(NOW - timedelta(hours=1)), _dead(NOW - 40 * DAY), _dead(NOW - DAY / 2),
    ])
    files = sorted(p.name for p in store.images.root.rglob("*.jpg"))
    assert files == sorted(f"{read_id(NODE, s)}.jpg" for s in (0, 1, 3))
    orphan = store.images.root / "2026/01/02/orphan.jpg"  # a file whose row never committed
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x")

    removed = central_retention(store, RetentionConfig()).purge(NOW)

    assert removed == {"non_hit_reads": 1, "hit_reads": 1, "images": 1, "logs": 2}
    assert sorted(_ids(store, "SELECT seq FROM reads")) == [1, 3]
    assert _ids(store, "SELECT read_id FROM images") == [read_id(NODE, 1)]
    assert [p.name for p in store.images.root.rglob("*.jpg")] == [f"{read_id(NODE, 1)}.jpg"]
    assert len(_ids(store, "SELECT id FROM status_history")) == 1
    assert len(_ids(store, "SELECT id FROM dead_letters")) == 1


def test_oldest_per_class_is_reported_in_seconds(store: SqlStore) -> None:
    store.write([_read(0, NOW - timedelta(hours=2)), _read(1, NOW - 3 * DAY, hit=True)])
    ages = central_retention(store, RetentionConfig()).oldest(NOW)
    assert ages == {"non_hit_reads": 7200.0, "hit_reads": 3 * 86_400.0}


def test_a_shorter_policy_purges_more(store: SqlStore) -> None:
    store.write([_read(0, NOW - timedelta(hours=2)), _read(1, NOW - timedelta(minutes=5))])
    removed = central_retention(store, RetentionConfig(non_hit_reads_s=3600)).purge(NOW)
    assert removed["non_hit_reads"] == 1
    assert _ids(store, "SELECT seq FROM reads") == [1]


@pytest.mark.integration
def test_listen_purges_at_start_by_its_clock(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    seeded = open_store(parse_store(str(path)))
    seeded.write([_read(0, NOW - 2 * DAY), _read(1, NOW - timedelta(hours=1))])
    seeded.close()
    options = ListenOptions(mosquitto.host, mosquitto.port, parse_store(str(path)), timeout_s=1.0,
                            retention=RetentionConfig(purge_interval_s=60))
    thread = threading.Thread(target=run_listen, args=(options,), kwargs={"clock": SettableClock(NOW)})
    thread.start()
    thread.join(20)
    with sqlite3.connect(path) as db:
        assert [r[0] for r in db.execute("SELECT seq FROM reads")] == [1]


def test_listen_logs_what_a_purge_removed_per_class(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = open_store(parse_store(str(tmp_path / "c.sqlite")))
    assert isinstance(store, SqlStore)
    store.write([_read(0, NOW - 2 * DAY), _read(1, NOW - 40 * DAY, hit=True), _read(2, NOW - timedelta(hours=1))])
    stop = threading.Event()
    with caplog.at_level(logging.WARNING):  # the default level of the command line; the purge said nothing there
        thread = start_purging(store, RetentionConfig(), SettableClock(NOW), stop)
        for _ in range(100):
            if "retention removed" in caplog.text:
                break
            time.sleep(0.1)
        stop.set()
        thread.join(10)
    assert "listen: retention removed 1 non_hit_reads, 1 hit_reads, 0 images, 0 logs" in caplog.text


def test_central_purge_command_reports_what_it_removed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.sqlite"
    seeded = open_store(parse_store(str(path)))
    old = datetime.now(UTC) - 3 * DAY
    seeded.write([_read(0, old), _read(1, datetime.now(UTC))])
    seeded.close()
    policy = tmp_path / "retention.yaml"
    policy.write_text("privacy:\n  retention:\n    non_hit_reads_s: 86400\n")  # a node's config works as it is
    assert cli_main(["central", "purge", "--store", str(path), "--retention", str(policy), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["removed"]["non_hit_reads"] == 1 and out["failures"] == 0


def test_a_retention_file_with_an_unknown_key_is_refused_naming_it(tmp_path: Path) -> None:
    policy = tmp_path / "retention.yaml"
    policy.write_text("retention:\n  non_hit_reads_days: 1\n")
    with pytest.raises(ConfigError, match="non_hit_reads_days"):
        load_retention(policy)


def test_a_retention_file_that_repeats_a_key_is_refused_like_a_node_config(tmp_path: Path) -> None:
    policy = tmp_path / "retention.yaml"
    policy.write_text("retention:\n  non_hit_reads_s: 86400\n  non_hit_reads_s: 60\n")
    with pytest.raises(ConfigError, match=r"non_hit_reads_s.*appears twice"):
        load_retention(policy)
