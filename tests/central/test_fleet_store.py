"""The fleet tables on SQLite and PostgreSQL: listen keeps what each node reports of the centre's pushes, and
fleet status joins it with the pushes (applied, pending, refused)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from edge.central.intake import Intake
from edge.central.records import Record
from edge.central.store.fleet import fleet_status, last_version, record_push
from edge.central.store.sql import SqlStore

T = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


class _Clock:
    def now(self) -> datetime:
        return T


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _health(camera: str, at: datetime, fleet: dict[str, object]) -> Record:
    body = {"schema": "anpr.health/1", "site": "site1", "camera": camera, "time": _iso(at), "fleet": fleet}
    return Intake(_Clock()).judge(f"anpr/site1/{camera}/health", json.dumps(body).encode())


def _push(store: SqlStore, target: str, version: int) -> None:
    record_push(store.db, kind="hotlist", target=target, version=version, sha256="a" * 64, size=10, chunks=1,
                entries=3, bytes_sent=500, pushed_at=T, expires=T + timedelta(days=7))


def test_fleet_status_shows_applied_pending_and_refused_per_node(store: SqlStore) -> None:
    _push(store, "group/west", 1)
    _push(store, "group/west", 2)
    _push(store, "site1/cam2", 1)
    assert last_version(store.db, "hotlist", "group/west") == 2
    refusal = {"reason": "rollback", "detail": "version 1 is older than the applied 2", "time": _iso(T),
               "target": "group/west", "kind": "hotlist", "version": 1}
    cam1 = {"groups": ["west"], "hotlists": [{"target": "group/west", "version": 2, "entries": 3}],
            "versions": {"hotlist:group/west": 2}, "refusals": 1, "refused": [refusal]}
    cam2 = {"groups": [], "hotlists": [], "versions": {}, "refusals": 0}
    old_cam1 = {**cam1, "versions": {"hotlist:group/west": 1}, "refused": [refusal]}
    assert store.write([_health("cam1", T, cam1), _health("cam2", T, cam2)]) == ["stored", "stored"]
    assert store.write([_health("cam1", T - timedelta(minutes=1), old_cam1)]) == ["stored"]  # late: not newer
    assert store.write([_health("cam1", T, cam1)]) == ["duplicate"]
    rows = {n.name: n for n in fleet_status(store.db)}
    store.db.rollback()
    assert rows["site1/cam1"].applied == {"hotlist:group/west": (2, 3)}
    assert rows["site1/cam1"].pending == []
    assert [(r["reason"], r["version"]) for r in rows["site1/cam1"].refused] == [("rollback", 1)], "kept once"
    assert rows["site1/cam1"].refusals == 1 and rows["site1/cam1"].groups == ["west"]
    assert rows["site1/cam2"].pending == ["hotlist:site1/cam2 v1"]


def test_fleet_status_shows_the_release_each_node_runs_and_its_failed_update(store: SqlStore) -> None:
    failed = {"version": "0.3.0", "reason": "selftest_failed", "detail": "selftest exit 1: camera", "time": _iso(T)}
    updates = {"cam1": {"running": "0.2.0", "confirmed": "0.2.0", "failed": failed},
               "cam2": {"running": "0.3.0", "confirmed": "0.2.0",
                        "pending": {"step": "confirming", "version": "0.3.0", "since": _iso(T)}}}
    records = []
    for camera, update in updates.items():
        body = {"schema": "anpr.health/1", "site": "site1", "camera": camera, "time": _iso(T), "update": update}
        records.append(Intake(_Clock()).judge(f"anpr/site1/{camera}/health", json.dumps(body).encode()))
    assert store.write(records) == ["stored", "stored"]
    rows = {n.name: n for n in fleet_status(store.db)}
    store.db.rollback()
    assert rows["site1/cam1"].update == updates["cam1"]
    assert rows["site1/cam1"].software == "0.2.0 FAILED 0.3.0: selftest_failed"
    assert rows["site1/cam2"].software == "0.3.0 unconfirmed -> 0.3.0 confirming"
    assert rows["site1/cam2"].as_dict()["update"]["pending"]["step"] == "confirming"
