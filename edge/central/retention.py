"""Retention at the centre, with the node's classes and rule (:class:`edge.privacy.retention.Retention`).

- ``non_hit_reads``: reads that hit no hotlist (and their images), by the read's time;
- ``hit_reads``: hotlist hits (and their images), by the read's time;
- ``images``: image files and rows, by the read's time (a read may outlive its image); whole day folders
  older than the cut-off go too, so a file whose row never committed is not kept;
- ``logs``: status and health (history and latest), by the message's time, and dead letters, by arrival.

``edge-anpr listen`` purges at start and every ``purge_interval_s`` (``--retention FILE`` with the keys of the
node's ``privacy.retention``; the node's defaults otherwise); ``edge-anpr central purge`` does it once, for cron.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edge.central.store.sql import SqlStore
from edge.clock import Clock, SystemClock
from edge.config.model import RetentionConfig
from edge.config.safe_yaml import read_yaml
from edge.errors import ConfigError
from edge.privacy.retention import DataClass, Retention, RetentionStore

log = logging.getLogger(__name__)

_BATCH = 1000


def load_retention(path: Path) -> RetentionConfig:
    """A YAML file with the keys of ``privacy.retention`` (top level, under ``retention:``, or a whole node config)."""
    data: Any = read_yaml(path, "retention file")  # bounded: size, UTF-8, depth, aliases, repeated keys
    if isinstance(data, dict) and isinstance(data.get("privacy"), dict):
        data = data["privacy"].get("retention", {})
    elif isinstance(data, dict) and "retention" in data:
        data = data["retention"]
    if not isinstance(data, dict):
        raise ConfigError(f"retention file {path}: expected a mapping of {sorted(RetentionConfig.model_fields)}")
    try:
        return RetentionConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"retention file {path}: {problems} (keys: {sorted(RetentionConfig.model_fields)})") from exc


def describe(config: RetentionConfig) -> str:
    def days(s: float) -> str:
        return f"{s / 86_400:g} d" if s >= 86_400 else f"{s / 3600:g} h"

    return (f"non-hit reads {days(config.non_hit_reads_s)}, hits {days(config.hit_reads_s)}, images "
            f"{days(config.images_s)}, logs {days(config.logs_s)}; purged every {config.purge_interval_s:g} s")


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class _SqlClass:
    """Common transaction handling: a database error is reported as OSError, which Retention counts."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    def _guard(self, work: Callable[[], Any]) -> Any:
        db = self.store.db
        try:
            db.begin()
            result = work()
            db.commit()
            return result
        except (*db.unavailable_errors, *db.data_errors) as exc:
            db.rollback()
            raise OSError(f"{type(exc).__name__}: {exc}") from exc


class ReadsClass(_SqlClass):
    def __init__(self, store: SqlStore, *, hits: bool) -> None:
        super().__init__(store)
        self.hits = hits

    def oldest(self) -> datetime | None:
        db = self.store.db
        rows = self._guard(lambda: db.rows("SELECT min(time) FROM reads WHERE hotlist_hit = ?", (self.hits,)))
        return db.from_ts(rows[0][0])

    def purge_before(self, cutoff: datetime) -> int:
        db = self.store.db
        removed = 0
        while True:
            ids = [str(r[0]) for r in self._guard(lambda: db.rows(
                "SELECT id FROM reads WHERE hotlist_hit = ? AND time < ? ORDER BY time LIMIT ?",
                (self.hits, db.ts(cutoff), _BATCH)))]
            if not ids:
                return removed

            def delete(ids: list[str] = ids) -> int:
                for path in db.rows(f"SELECT path FROM images WHERE read_id IN ({_marks(len(ids))})", ids):  # noqa: S608
                    self.store.images.remove(str(path[0]))  # the file first: a row never outlives its image
                db.run(f"DELETE FROM images WHERE read_id IN ({_marks(len(ids))})", ids)  # noqa: S608
                return db.run(f"DELETE FROM reads WHERE id IN ({_marks(len(ids))})", ids)  # noqa: S608

            removed += int(self._guard(delete))


class ImagesClass(_SqlClass):
    def oldest(self) -> datetime | None:
        db = self.store.db
        return db.from_ts(self._guard(lambda: db.rows("SELECT min(time) FROM images"))[0][0])

    def purge_before(self, cutoff: datetime) -> int:
        db = self.store.db
        removed = 0
        while True:
            rows = self._guard(lambda: db.rows("SELECT read_id, path FROM images WHERE time < ? ORDER BY time LIMIT ?",
                                               (db.ts(cutoff), _BATCH)))
            if not rows:
                break
            for _, path in rows:
                self.store.images.remove(str(path))
            ids = [str(r[0]) for r in rows]

            def delete(ids: list[str] = ids) -> int:
                return db.run(f"DELETE FROM images WHERE read_id IN ({_marks(len(ids))})", ids)  # noqa: S608

            removed += int(self._guard(delete))
        self.store.images.remove_days_before(cutoff)
        return removed


_LOG_TABLES = (("status_history", "time"), ("health_history", "time"), ("node_status", "time"),
               ("node_health", "time"), ("dead_letters", "received_at"))


class LogsClass(_SqlClass):
    def oldest(self) -> datetime | None:
        db = self.store.db

        def oldest_of(table: str, column: str) -> datetime | None:
            rows = self._guard(lambda: db.rows(f"SELECT min({column}) FROM {table}"))  # noqa: S608
            return db.from_ts(rows[0][0])

        times = [t for t in (oldest_of(table, column) for table, column in _LOG_TABLES) if t is not None]
        return min(times) if times else None

    def purge_before(self, cutoff: datetime) -> int:
        db = self.store.db
        return int(self._guard(lambda: sum(
            db.run(f"DELETE FROM {t} WHERE {c} < ?", (db.ts(cutoff),)) for t, c in _LOG_TABLES)))  # noqa: S608


def central_retention(store: SqlStore, config: RetentionConfig) -> Retention:
    stores: dict[DataClass, RetentionStore] = {
        "non_hit_reads": ReadsClass(store, hits=False), "hit_reads": ReadsClass(store, hits=True),
        "images": ImagesClass(store), "logs": LogsClass(store),
    }
    return Retention(config, stores)


def start_purging(store: SqlStore, config: RetentionConfig, clock: Clock, stop: threading.Event) -> threading.Thread:
    """Purge now and every ``purge_interval_s`` in a thread of its own, on ``store`` (its own connection)."""
    retention = central_retention(store, config)

    def report(removed: dict[DataClass, int]) -> None:
        if any(removed.values()):  # stored data went: say so at the default log level, counts per class
            log.warning("listen: retention removed %s (%s)", ", ".join(f"{n} {k}" for k, n in removed.items()),
                        describe(config))

    def run() -> None:
        try:
            retention.run(clock, stop, on_purge=report)
        finally:
            store.close()

    thread = threading.Thread(target=run, name="central-retention", daemon=True)
    thread.start()
    return thread


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", required=True, metavar="URL_OR_FILE", help="postgresql://..., or a SQLite file.")
    p.add_argument("--images", type=Path, help="The image folder listen writes (default for SQLite: beside it).")
    p.add_argument("--retention", type=Path, metavar="FILE",
                   help="YAML with the keys of privacy.retention (default: the node's defaults).")
    p.add_argument("--json", action="store_true", help="Print one JSON object.")


def main(args: argparse.Namespace) -> int:
    from edge.central.store import open_store, parse_store

    spec = parse_store(args.store, fmt=None, images=args.images)
    if spec.kind == "jsonl":
        raise ConfigError("central purge works on a PostgreSQL or SQLite store, not JSON lines")
    config = load_retention(args.retention) if args.retention else RetentionConfig()
    store = open_store(spec)
    assert isinstance(store, SqlStore)
    try:
        retention = central_retention(store, config)
        now = SystemClock().now()
        removed = retention.purge(now)
        oldest = retention.oldest(now)
    finally:
        store.close()
    if args.json:
        print(json.dumps({"removed": removed, "oldest_s": {k: round(v, 1) for k, v in oldest.items()},
                          "failures": retention.failures}))
    else:
        print(f"retention: {describe(config)}")
        for data_class in removed:
            age = oldest.get(data_class)
            left = "nothing left" if age is None else f"oldest left {age / 3600:.1f} h"
            print(f"  {data_class:<14} removed {removed[data_class]:>8}  ({left})")
    return 0 if retention.failures == 0 else 6
