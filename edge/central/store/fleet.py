"""The fleet tables of the central store: pushes the centre made, and what each node applied and refused.

``listen`` feeds ``fleet_nodes``, ``fleet_applied`` and ``fleet_refusals`` from the ``fleet`` member of every health
message it stores (:func:`record_health`, in the same transaction); ``fleet hotlist push`` records each push
(:func:`record_push`); ``fleet status`` joins them with the nodes' status and health (:func:`fleet_status`), whose
``update`` member (the release a node runs, an update in flight, the last one that failed or was refused) it reads
from the health document ``node_health`` keeps whole.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.central.records import HealthRecord
from edge.central.store.db import Db, SqliteDb, migrate
from edge.errors import ConfigError


def open_db(text: str) -> Db:
    """A migrated connection to ``postgresql://...``, ``sqlite:PATH`` or an SQLite file path."""
    if text.startswith(("postgresql://", "postgres://")):
        try:
            from edge.central.store.db import PostgresDb

            db: Db = PostgresDb(text)
        except ModuleNotFoundError as exc:
            raise ConfigError("a PostgreSQL store needs psycopg: pip install 'edge-anpr[central]'") from exc
    else:
        path = Path(text.removeprefix("sqlite:").removeprefix("//"))
        if not path.parent.is_dir():
            raise ConfigError(f"--store {text}: directory {path.parent} does not exist")
        db = SqliteDb(path)
    migrate(db)
    return db


def _time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def record_health(db: Db, h: HealthRecord) -> None:
    """The ``fleet`` member of one stored health message into the fleet tables (inside the caller's transaction)."""
    site, camera, time, received_at = h.site, h.camera, h.time, h.received_at
    fleet = h.document.get("fleet")
    if not isinstance(fleet, Mapping):
        return
    db.run("INSERT INTO fleet_nodes (site, camera, groups, refusals, reported_at) VALUES (?, ?, ?, ?, ?)"
           " ON CONFLICT (site, camera) DO UPDATE SET groups = excluded.groups, refusals = excluded.refusals,"
           " reported_at = excluded.reported_at WHERE fleet_nodes.reported_at <= excluded.reported_at",
           (site, camera, json.dumps(list(fleet.get("groups", []))), int(fleet.get("refusals", 0)), db.ts(time)))
    entries = {h.get("target"): h.get("entries") for h in fleet.get("hotlists", []) if isinstance(h, Mapping)}
    for key, version in dict(fleet.get("versions", {})).items():
        kind, _, target = str(key).partition(":")
        db.run("INSERT INTO fleet_applied (site, camera, kind, target, version, entries, reported_at)"
               " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, camera, kind, target) DO UPDATE SET"
               " version = excluded.version, entries = excluded.entries, reported_at = excluded.reported_at"
               " WHERE fleet_applied.reported_at <= excluded.reported_at",
               (site, camera, kind, target, int(version), entries.get(target) if kind == "hotlist" else None,
                db.ts(time)))
    for r in fleet.get("refused", []):
        if not isinstance(r, Mapping):
            continue
        db.run("INSERT INTO fleet_refusals (site, camera, kind, target, version, reason, detail, time, received_at)"
               " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, camera, time, reason, target) DO NOTHING",
               (site, camera, str(r.get("kind", "")), str(r.get("target", "")), r.get("version"), str(r["reason"]),
                str(r.get("detail", "")), db.ts(_time(r.get("time")) or time), db.ts(received_at)))


def last_version(db: Db, kind: str, target: str) -> int:
    rows = db.rows("SELECT max(version) FROM fleet_pushes WHERE kind = ? AND target = ?", (kind, target))
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def record_push(db: Db, *, kind: str, target: str, version: int, sha256: str, size: int, chunks: int,
                entries: int | None, bytes_sent: int, pushed_at: datetime, expires: datetime) -> None:
    db.begin()
    try:
        db.run("INSERT INTO fleet_pushes (kind, target, version, sha256, size, chunks, entries, bytes_sent, pushed_at,"
               " expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (kind, target, version, sha256, size, chunks, entries, bytes_sent, db.ts(pushed_at), db.ts(expires)))
        db.commit()
    except BaseException:
        db.rollback()
        raise


@dataclass
class NodeFleet:
    """One node as ``fleet status`` shows it."""

    site: str
    camera: str
    state: str | None = None
    health_at: datetime | None = None
    groups: list[str] = field(default_factory=list)
    applied: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # "kind:target" -> (version, entries)
    pending: list[str] = field(default_factory=list)  # "kind:target vN" pushed but not applied
    refusals: int = 0
    refused: list[dict[str, Any]] = field(default_factory=list)  # the latest, newest first
    update: dict[str, Any] = field(default_factory=dict)  # health's update member: running, pending, failed...
    config: dict[str, Any] = field(default_factory=dict)  # health's fleet.config: source, target, version, rollbacks

    @property
    def name(self) -> str:
        return f"{self.site}/{self.camera}"

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.name, "state": self.state,
                "health_at": self.health_at.isoformat() if self.health_at else None, "groups": self.groups,
                "applied": {k: {"version": v, "entries": e} for k, (v, e) in sorted(self.applied.items())},
                "pending": self.pending, "refusals": self.refusals, "refused": self.refused, "update": self.update,
                "config": self.config}

    @property
    def config_line(self) -> str:
        """One line for ``fleet status``: the local config or the pushed one (on trial?), and the last rollback."""
        c = self.config
        text = str(c.get("source", "-"))
        if c.get("source") == "pushed":
            text = f"{c.get('target')} v{c.get('version')}" + (" trial" if c.get("state") == "trial" else "")
        rolled = c.get("rolled_back")
        if isinstance(rolled, Mapping):
            text += f" ROLLED BACK v{rolled.get('version', '?')}: {rolled.get('reason', '?')}"
        return text

    @property
    def software(self) -> str:
        """One line for ``fleet status``: the release running, an update in flight, the last failure or refusal."""
        u = self.update
        parts = [str(u.get("running", "-"))]
        if "confirmed" in u and u["confirmed"] != u.get("running"):
            parts.append("unconfirmed")
        if "pending" in u:
            parts.append(f"-> {u['pending'].get('version', '?')} {u['pending'].get('step', '')}".rstrip())
        for key in ("failed", "refused"):
            if key in u:
                parts.append(f"{key.upper()} {u[key].get('version', '?')}: {u[key].get('reason', '?')}")
        return " ".join(parts)


def fleet_status(db: Db, *, refused_kept: int = 5) -> list[NodeFleet]:
    nodes: dict[tuple[str, str], NodeFleet] = {}

    def node(site: str, camera: str) -> NodeFleet:
        return nodes.setdefault((site, camera), NodeFleet(site, camera))

    for site, camera, state in db.rows("SELECT site, camera, state FROM node_status"):
        node(site, camera).state = state
    for site, camera, time, document in db.rows("SELECT site, camera, time, document FROM node_health"):
        n = node(site, camera)
        n.health_at = db.from_ts(time)
        doc = json.loads(document) if isinstance(document, str | bytes) else document  # SQLite text, PostgreSQL jsonb
        update = doc.get("update") if isinstance(doc, Mapping) else None
        n.update = dict(update) if isinstance(update, Mapping) else {}
        fleet = doc.get("fleet") if isinstance(doc, Mapping) else None
        config = fleet.get("config") if isinstance(fleet, Mapping) else None
        n.config = dict(config) if isinstance(config, Mapping) else {}
    for site, camera, groups, refusals in db.rows("SELECT site, camera, groups, refusals FROM fleet_nodes"):
        n = node(site, camera)
        n.groups, n.refusals = list(json.loads(groups)), int(refusals)
    for site, camera, kind, target, version, entries in db.rows(
            "SELECT site, camera, kind, target, version, entries FROM fleet_applied"):
        node(site, camera).applied[f"{kind}:{target}"] = (int(version), None if entries is None else int(entries))
    latest = {f"{k}:{t}": int(v) for k, t, v in db.rows(
        "SELECT kind, target, max(version) FROM fleet_pushes GROUP BY kind, target")}
    for n in nodes.values():
        targets = {n.name, *(f"group/{g}" for g in n.groups), "group/all"}  # group/all: release announcements
        for key, version in sorted(latest.items()):
            if key.partition(":")[2] in targets and n.applied.get(key, (0, None))[0] < version:
                n.pending.append(f"{key} v{version}")
    for site, camera, kind, target, version, reason, detail, time in db.rows(
            "SELECT site, camera, kind, target, version, reason, detail, time FROM fleet_refusals"
            " ORDER BY time DESC, id DESC"):
        n = node(site, camera)
        if len(n.refused) < refused_kept:
            when = db.from_ts(time)
            n.refused.append({"kind": kind, "target": target, "version": version, "reason": reason, "detail": detail,
                              "time": when.isoformat() if when else None})
    return [nodes[k] for k in sorted(nodes)]
