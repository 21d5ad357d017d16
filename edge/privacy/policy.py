"""The policy engine: a read's payload is BUILT from the allow-list, field by field, never stripped.

Each published key has one builder function; ``FIELD_BUILDERS`` maps the field names a policy may allow
(``PrivacyConfig.fields``) to builders, and ``build_read_payload`` calls only the builders the policy
names, plus the always-present ones (``id``, ``schema``) and the ones the plate mode, hotlist and image
policy imply. A final check refuses any key outside ``permitted_keys(policy)``: there is no code path
that publishes a field the policy does not name.

Contract (``anpr.read/1``, see the message contract): always ``id``, ``schema``, ``seq``, ``time``,
``site``, ``camera``; ``plate`` (plain mode, or a hit in hotlist_only mode) or ``plate_hash`` + ``key_id``
(pseudonymised mode) when the field ``plate`` is allowed; ``hotlist_hit`` in hotlist modes (a hotlist is
configured); ``clock_unsynced`` only when true; ``image`` only when the image policy allows one for this
read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

from edge.clock import iso_ms
from edge.config.model import NodeConfig, PrivacyConfig
from edge.domain import VehiclePass
from edge.privacy.pseudonym import Pseudonymiser, normalise_plate
from edge.read.formats import NO_FORMAT

SCHEMA_ID = "anpr.read/1"
ALWAYS_KEYS: frozenset[str] = frozenset({"id", "schema", "seq", "time", "site", "camera"})
IMAGE_KEYS: frozenset[str] = frozenset({"kind", "content_type", "width", "height", "data", "redaction"})
REDACTION_KEYS: frozenset[str] = frozenset({"detector", "model_sha256", "threshold", "regions", "second_pass_faces"})

ImageKind = Literal["plate_patch", "redacted_overview"]
_IMAGE_RANK = {"none": 0, "plate_patch": 1, "redacted_overview": 2}


class PolicyViolationError(RuntimeError):
    """A payload would carry something the policy does not allow (a bug; the read must not leave)."""


@dataclass(frozen=True, slots=True, eq=False)
class ReadContext:
    """Everything a field builder may look at for one read."""

    vehicle: VehiclePass
    policy: PrivacyConfig
    node: NodeConfig
    seq: int
    read_id: str
    image: Mapping[str, Any] | None
    hotlist_hit: bool | None
    pseudonymiser: Pseudonymiser | None
    clock_unsynced: bool


Builder = Callable[[ReadContext], dict[str, Any]]


def read_time(p: VehiclePass) -> datetime:
    """The moment a read is stamped with: the frame of its best sighting (whose image may accompany it)."""
    return p.best.timestamp


def hotlist_mode(policy: PrivacyConfig) -> bool:
    """A hotlist is part of this policy: reads then carry ``hotlist_hit``."""
    return policy.hotlist_file is not None or policy.plate_mode == "hotlist_only"


def image_kind_for(policy: PrivacyConfig, hotlist_hit: bool | None) -> ImageKind | None:
    """The image this read may carry: the policy's image (always, or on a hit), raised by ``hit_image`` on a hit."""
    hit = hotlist_hit is True
    kind = policy.image if (policy.image_when == "always" or hit) else "none"
    if hit and _IMAGE_RANK[policy.hit_image] > _IMAGE_RANK[kind]:
        kind = policy.hit_image
    if kind == "plate_patch":
        return "plate_patch"
    if kind == "redacted_overview":
        return "redacted_overview"
    return None


def permitted_keys(policy: PrivacyConfig) -> frozenset[str]:
    """Every key a read may ever carry under ``policy`` (a superset of any one payload's keys)."""
    keys = set(ALWAYS_KEYS) | (set(policy.fields) - {"plate"}) | {"clock_unsynced"}
    if "plate" in policy.fields:
        keys |= {"plate_hash", "key_id"} if policy.plate_mode == "pseudonymised" else {"plate"}
    if hotlist_mode(policy):
        keys.add("hotlist_hit")
    if policy.images_may_leave:
        keys.add("image")
    return frozenset(keys)


def policy_version(policy: PrivacyConfig) -> str:
    """sha256 of the canonical JSON of the policy section: the version recorded in the audit log."""
    canonical = json.dumps(policy.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --- one builder per published key -------------------------------------------------------------------


def _id(c: ReadContext) -> dict[str, Any]:
    return {"id": c.read_id}


def _schema(c: ReadContext) -> dict[str, Any]:
    return {"schema": SCHEMA_ID}


def _seq(c: ReadContext) -> dict[str, Any]:
    if c.seq < 0:
        raise PolicyViolationError(f"seq {c.seq} must be >= 0")
    return {"seq": c.seq}


def _time(c: ReadContext) -> dict[str, Any]:
    return {"time": iso_ms(read_time(c.vehicle))}


def _site(c: ReadContext) -> dict[str, Any]:
    return {"site": c.node.site}


def _camera(c: ReadContext) -> dict[str, Any]:
    return {"camera": c.node.camera}


def _plate(c: ReadContext) -> dict[str, Any]:
    mode = c.policy.plate_mode
    plate = normalise_plate(c.vehicle.plate)
    if mode == "plain":
        return {"plate": plate}
    if mode == "hotlist_only":
        return {"plate": plate} if c.hotlist_hit is True else {}
    if c.pseudonymiser is None:
        raise PolicyViolationError("pseudonymised mode needs a pseudonymiser; refusing to publish the plate text")
    digest, key_id = c.pseudonymiser.pseudonymise(plate, read_time(c.vehicle))
    return {"plate_hash": digest, "key_id": key_id}


def _confidence(c: ReadContext) -> dict[str, Any]:
    return {"confidence": round(min(1.0, max(0.0, float(c.vehicle.confidence))), 4)}


# An allowed field always has a value: these stand where the node has none (never null).
NO_DIRECTION = "unknown"  # the track does not tell (it crossed the view, stood still, or was too short)
NO_ZONE = "none"  # the pass was in no lane zone (or none is configured)


def _format(c: ReadContext) -> dict[str, Any]:
    return {"format": c.vehicle.format_name or NO_FORMAT}


def _direction(c: ReadContext) -> dict[str, Any]:
    d = c.vehicle.direction
    return {"direction": d if d in ("approaching", "receding") else NO_DIRECTION}


def _zone(c: ReadContext) -> dict[str, Any]:
    return {"zone": c.vehicle.zone or NO_ZONE}


def _first_seen(c: ReadContext) -> dict[str, Any]:
    return {"first_seen": iso_ms(c.vehicle.first_seen)}


def _last_seen(c: ReadContext) -> dict[str, Any]:
    return {"last_seen": iso_ms(c.vehicle.last_seen)}


def _sightings(c: ReadContext) -> dict[str, Any]:
    return {"sightings": max(1, int(c.vehicle.sightings))}


def _hotlist_hit(c: ReadContext) -> dict[str, Any]:
    return {"hotlist_hit": c.hotlist_hit is True}


def _clock_unsynced(c: ReadContext) -> dict[str, Any]:
    return {"clock_unsynced": True} if c.clock_unsynced else {}


def _image(c: ReadContext) -> dict[str, Any]:
    if c.image is None:
        return {}
    allowed = image_kind_for(c.policy, c.hotlist_hit)
    if allowed is None or c.image.get("kind") != allowed:
        kind = c.image.get("kind")
        raise PolicyViolationError(f"image kind {kind!r} is not allowed for this read (allowed: {allowed})")
    if set(c.image) != IMAGE_KEYS:
        raise PolicyViolationError(f"image keys {sorted(c.image)} must be exactly {sorted(IMAGE_KEYS)}")
    redaction = c.image["redaction"]
    if not isinstance(redaction, Mapping) or set(redaction) != REDACTION_KEYS:
        raise PolicyViolationError(f"image redaction record must have exactly the keys {sorted(REDACTION_KEYS)}")
    if redaction["second_pass_faces"] != 0:
        raise PolicyViolationError(f"second pass found {redaction['second_pass_faces']} faces; the image may not leave")
    return {"image": {**c.image, "redaction": dict(redaction)}}


ALWAYS_BUILDERS: Mapping[str, Builder] = MappingProxyType({"id": _id, "schema": _schema})

FIELD_BUILDERS: Mapping[str, Builder] = MappingProxyType(
    {
        "plate": _plate,
        "time": _time,
        "seq": _seq,
        "site": _site,
        "camera": _camera,
        "confidence": _confidence,
        "format": _format,
        "direction": _direction,
        "zone": _zone,
        "first_seen": _first_seen,
        "last_seen": _last_seen,
        "sightings": _sightings,
    }
)


def build_read_payload(
    p: VehiclePass,
    *,
    policy: PrivacyConfig,
    node: NodeConfig,
    seq: int,
    read_id: str,
    image: Mapping[str, Any] | None,
    hotlist_hit: bool | None,
    pseudonymiser: Pseudonymiser | None = None,
    clock_unsynced: bool = False,
) -> dict[str, Any] | None:
    """The ``anpr.read/1`` payload for ``p`` under ``policy``, or None when nothing may leave.

    None only in hotlist_only mode for a vehicle that is not a hit. ``image`` is the finished image
    object (already redacted and encoded); it is refused unless the policy allows that kind for this read.
    """
    if policy.plate_mode == "hotlist_only" and hotlist_hit is not True:
        return None
    ctx = ReadContext(p, policy, node, seq, read_id, image, hotlist_hit, pseudonymiser, clock_unsynced)
    builders: list[Builder] = list(ALWAYS_BUILDERS.values())
    builders += [FIELD_BUILDERS[name] for name in policy.fields]
    if hotlist_mode(policy):
        builders.append(_hotlist_hit)
    builders += [_clock_unsynced, _image]
    payload: dict[str, Any] = {}
    for build in builders:
        payload.update(build(ctx))
    extra = set(payload) - permitted_keys(policy)
    if extra:
        raise PolicyViolationError(f"payload keys {sorted(extra)} are not permitted by the policy")
    return payload
