"""Test support: valid read messages, configs and a settable clock for outbox/publisher tests."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from edge.config.model import MqttConfig, NodeConfig, OutboxConfig
from edge.domain import OutgoingMessage

T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)  # for SettableClock tests
RECENT = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)  # reads not yet expired


@dataclass
class SettableClock:
    """A Clock whose time only moves when told to (starts at ``T0``)."""

    t: datetime = field(default=T0)

    def now(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


def read_id(node: NodeConfig, seq: int) -> str:
    tag = hashlib.sha256(f"{node.site}.{node.camera}.{seq}".encode()).hexdigest()[:8]
    return f"{node.site}.{node.camera}.{seq}.{tag}"


def make_read(
    node: NodeConfig, seq: int, *, at: datetime | None = None, base: datetime = RECENT, prefix: str = "anpr",
    pad: int = 0,
    extra: dict[str, object] | None = None,
) -> OutgoingMessage:
    """A read that validates against anpr.read/1 (``pad`` adds bytes through the zone field)."""
    when = at or base + timedelta(milliseconds=10 * seq)
    payload: dict[str, object] = {
        "id": read_id(node, seq),
        "schema": "anpr.read/1",
        "seq": seq,
        "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "site": node.site,
        "camera": node.camera,
        "plate": f"AB{seq % 100:02d}CDE",
        "confidence": 0.9,
    }
    if pad:
        payload["zone"] = "z" * min(pad, 64)
    payload.update(extra or {})
    return OutgoingMessage(
        message_id=str(payload["id"]),
        topic=f"{prefix}/{node.site}/{node.camera}/reads",
        payload=json.dumps(payload).encode(),
        captured_at=when,
        kind="read",
    )


def node_config(site: str = "site1", camera: str = "cam1", state_dir: str = "/tmp") -> NodeConfig:
    return NodeConfig(site=site, camera=camera, state_dir=state_dir)


def lab_mqtt(host: str, port: int, **kw: object) -> MqttConfig:
    return MqttConfig(host=host, port=port, insecure_lab_mode=True, **kw)  # type: ignore[arg-type]


def outbox_config(max_bytes: int = 50_000_000, max_age_s: float = 86_400.0) -> OutboxConfig:
    return OutboxConfig(max_bytes=max_bytes, max_age_s=max_age_s)


def seqs_of(payloads: list[bytes]) -> list[int]:
    return [int(json.loads(p)["seq"]) for p in payloads]


def first_arrivals(payloads: list[bytes]) -> list[int]:
    """Sequence numbers in order of first arrival, duplicates (same id) dropped."""
    seen: set[str] = set()
    out: list[int] = []
    for p in payloads:
        obj = json.loads(p)
        if obj["id"] not in seen:
            seen.add(obj["id"])
            out.append(int(obj["seq"]))
    return out
