"""What the central side keeps: one small frozen record per judged message.

:mod:`edge.central.intake` turns each MQTT message into exactly one of these; the stores only ever
see records, so every value a store writes was validated and typed first (each record also keeps the
payload as received, for the dead letter a store makes when it refuses a row).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Outcome = Literal["stored", "duplicate", "rejected"]


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """A read's image, decoded from base64; stored once as a file, the row keeps its path."""

    kind: str  # plate_patch | redacted_overview
    content_type: str
    width: int
    height: int
    data: bytes
    sha256: str
    detector: str
    model_sha256: str
    threshold: float
    regions: int


@dataclass(frozen=True, slots=True)
class ReadRecord:
    """One read (``anpr.read/1``), typed; ``document`` is the validated payload without the image data."""

    id: str
    site: str
    camera: str
    seq: int
    time: datetime
    plate: str | None
    plate_hash: str | None
    key_id: str | None
    confidence: float | None
    format: str | None
    direction: str | None
    zone: str | None
    first_seen: datetime | None
    last_seen: datetime | None
    sightings: int | None
    hotlist_hit: bool
    clock_unsynced: bool
    image: ImageRecord | None
    topic: str
    received_at: datetime
    document: Mapping[str, Any]
    payload: bytes = field(repr=False)  # as received: what a dead letter keeps if the store refuses the row


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """A node's status message (``anpr.status/1``): online, or offline (also its last will)."""

    site: str
    camera: str
    state: str
    time: datetime
    software: str
    topic: str
    received_at: datetime
    payload: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class HealthRecord:
    """A node's health message (``anpr.health/1``); ``document`` is the whole validated payload."""

    site: str
    camera: str
    time: datetime
    outbox_depth: int | None
    clock_synced: bool | None
    disk_free_mb: float | None
    document: Mapping[str, Any]
    topic: str
    received_at: datetime
    payload: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message that cannot be stored as what it claims to be: kept as a dead letter with the reason."""

    topic: str
    reason: str
    payload: bytes = field(repr=False)
    received_at: datetime


Record = ReadRecord | StatusRecord | HealthRecord | Rejected
