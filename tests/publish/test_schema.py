"""The versioned schemas: what may leave the node, and errors that name the offending field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from edge.publish.schema import SCHEMA_IDS, InvalidMessageError, Schemas, iso_utc_ms, load_schema, validate

READ: dict[str, Any] = {
    "id": "depot-north.gate1.42.0a1b2c3d", "schema": "anpr.read/1", "seq": 42,
    "time": "2026-03-14T08:00:01.250Z", "site": "depot-north", "camera": "gate1",
}
IMAGE: dict[str, Any] = {
    "kind": "redacted_overview", "content_type": "image/jpeg", "width": 1920, "height": 1080, "data": "/9j/4AAQ",
    "redaction": {"detector": "blazeface-full", "model_sha256": "ab" * 32, "threshold": 0.5, "regions": 2,
                  "second_pass_faces": 0},
}


def _field(kind: str, payload: dict[str, Any]) -> str:
    with pytest.raises(InvalidMessageError) as info:
        validate(kind, payload)
    return info.value.field


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"plate": "AB12CDE", "confidence": 0.97, "format": "uk_current", "direction": "approaching", "zone": "none"},
        {"format": "none", "direction": "unknown", "zone": "lane-1"},
        {"plate_hash": "f" * 64, "key_id": "2026-03"},
        {"hotlist_hit": False, "clock_unsynced": True, "sightings": 3,
         "first_seen": "2026-03-14T08:00:00.900Z", "last_seen": "2026-03-14T08:00:01.500Z"},
        {"plate": "AB12CDE", "image": IMAGE},
    ],
)
def test_reads_the_policy_allows_validate(extra: dict[str, Any]) -> None:
    validate("read", READ | extra)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"driver_name": "x"}, "driver_name"),
        ({"seq": -1}, "seq"),
        ({"time": "2026-03-14T08:00:01Z"}, "time"),  # no milliseconds
        ({"time": "2026-03-14T08:00:01.250+00:00"}, "time"),
        ({"id": "depot-north.gate1.42"}, "id"),
        ({"plate": "AB12 CDE"}, "plate"),
        ({"confidence": 1.5}, "confidence"),
        ({"direction": "sideways"}, "direction"),
        ({"direction": None}, "direction"),
        ({"format": None}, "format"),
        ({"clock_unsynced": False}, "clock_unsynced"),
        ({"schema": "anpr.read/2"}, "schema"),
        ({"plate_hash": "f" * 64}, "key_id"),
        ({"image": IMAGE | {"exif": {}}}, "image/exif"),
        ({"image": IMAGE | {"redaction": IMAGE["redaction"] | {"second_pass_faces": 1}}},
         "image/redaction/second_pass_faces"),
    ],
)
def test_invalid_read_names_the_offending_field(change: dict[str, Any], field: str) -> None:
    assert _field("read", READ | change) == field


def test_missing_required_field_is_named() -> None:
    payload = dict(READ)
    del payload["camera"]
    assert _field("read", payload) == "camera"


def test_plate_and_plate_hash_never_together() -> None:
    with pytest.raises(InvalidMessageError, match="must not appear together"):
        validate("read", READ | {"plate": "AB12CDE", "plate_hash": "f" * 64, "key_id": "k"})


def test_error_never_echoes_the_plate() -> None:
    with pytest.raises(InvalidMessageError) as info:
        validate("read", READ | {"plate": "SECRET 1"})
    assert "SECRET" not in str(info.value)


def test_status_and_health_schemas() -> None:
    status = {"schema": "anpr.status/1", "site": "s", "camera": "c", "state": "online",
              "time": "2026-03-14T08:00:00.000Z", "software": "0.1.0"}
    validate("status", status)
    assert _field("status", status | {"state": "asleep"}) == "state"
    health = {"schema": "anpr.health/1", "site": "s", "camera": "c", "time": "2026-03-14T08:00:00.000Z",
              "fps": 24.8, "outbox_depth": 3, "clock_synced": True, "throttled": 0, "oldest": {"outbox": 12.5},
              "versions": {"software": "0.1.0", "config_sha256": "0" * 64, "models": {"plate_ocr": "1" * 64}}}
    validate("health", health)
    assert _field("health", health | {"outbox_depth": -1}) == "outbox_depth"
    assert _field("health", health | {"versions": {"git": "x"}}) == "versions/git"


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(InvalidMessageError, match="unknown message kind 'hotlist'"):
        validate("hotlist", {})


def test_schema_files_ship_with_the_package_and_bytes_are_checked() -> None:
    for kind, sid in SCHEMA_IDS.items():
        assert load_schema(kind)["properties"]["schema"]["const"] == sid
        assert load_schema(kind)["additionalProperties"] is False
    schemas = Schemas()
    with pytest.raises(InvalidMessageError, match="not UTF-8 JSON"):
        schemas.validate_bytes("read", b"\xff")
    with pytest.raises(InvalidMessageError, match="JSON object"):
        schemas.validate_bytes("read", b"[1]")


def test_iso_utc_ms_formats_with_z_and_milliseconds() -> None:
    dt = datetime(2026, 3, 14, 9, 0, 1, 250_999, tzinfo=timezone(timedelta(hours=1)))
    assert iso_utc_ms(dt) == "2026-03-14T08:00:01.250Z"
    with pytest.raises(ValueError, match="no time zone"):
        iso_utc_ms(datetime(2026, 3, 14))
    assert iso_utc_ms(datetime(2026, 1, 1, tzinfo=UTC)).endswith(".000Z")
