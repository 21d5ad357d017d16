"""Judge each message that reaches the central subscriber: a typed record, or a dead letter with its reason.

Every message ends in exactly one record (:mod:`edge.central.records`); nothing a node sends can raise
out of :meth:`Intake.judge`. The checks, in order: size, topic shape, UTF-8 JSON (no NaN or Infinity,
no key twice in one object, no nesting deeper than ``max_depth``, no NUL or lone surrogate in a string), the
schema of the topic's kind (which bounds every integer and size), the payload's site/camera against the topic,
a read's id against its site, camera and seq, and the conversion to typed values (calendar dates, base64 images).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from edge.central.records import HealthRecord, ImageRecord, ReadRecord, Record, Rejected, StatusRecord
from edge.clock import Clock
from edge.publish.schema import SCHEMA_IDS, InvalidMessageError, Schemas, load_schema

log = logging.getLogger(__name__)

KINDS: Mapping[str, str] = {"reads": "read", "status": "status", "health": "health"}
MAX_PAYLOAD_BYTES = 2_100_000  # a read with the schema's largest image (2,000,000 base64 characters)
MAX_DEPTH = 8  # the deepest valid message (health.versions.models) is 3 levels


class _RefusedError(ValueError):
    """A payload refused before or after schema validation; the message is the dead letter's reason."""


def _no_constant(name: str) -> float:
    raise _RefusedError(f"not valid JSON: {name} is not a number JSON allows")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _RefusedError(f"number {text[:40]} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are all different: with a key twice, JSON readers disagree on which value counts."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        twice = next(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        raise _RefusedError(f"key {twice[:40]!r} appears twice in one object (readers disagree on which value "
                            f"counts)")
    return obj


def _check_tree(obj: object, max_depth: int) -> None:
    """Depth, and strings that every store can hold (no NUL, valid UTF-8); iterative, so never recursive."""
    stack: list[tuple[object, int]] = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > max_depth:
                raise _RefusedError(f"nested deeper than {max_depth} levels")
            items = list(node.items()) if isinstance(node, dict) else [(None, v) for v in node]
            for key, value in items:
                if key is not None:
                    _check_text(key)
                stack.append((value, depth + 1))
        elif isinstance(node, str):
            _check_text(node)


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise _RefusedError("a string holds a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _RefusedError("a string holds a lone UTF-16 surrogate") from None


def decode_json(payload: bytes, max_depth: int = MAX_DEPTH) -> object:
    """UTF-8 JSON without NaN/Infinity, nesting at most ``max_depth``; raises ValueError with the reason."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _RefusedError(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        obj = json.loads(text, parse_constant=_no_constant, parse_float=_finite, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise _RefusedError(f"nested deeper than {max_depth} levels") from None
    except json.JSONDecodeError as exc:
        raise _RefusedError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    _check_tree(obj, max_depth)
    return obj


def _time(value: object, field: str) -> datetime:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise _RefusedError(f"field {field!r}: not a calendar date and time") from None


def _opt_time(message: Mapping[str, Any], field: str) -> datetime | None:
    return _time(message[field], field) if field in message else None


class _FastCheck:
    """jsonschema-rs (Rust, in the ``central`` extra) when installed: a valid message costs about 2 us instead of
    about 60 us with jsonschema; a message it finds invalid is checked again by jsonschema, whose verdict and
    message (the field and the rule) count."""

    def __init__(self) -> None:
        self._validators: dict[str, Any] = {}
        try:
            import jsonschema_rs
        except ModuleNotFoundError:
            return
        self._validators = {kind: jsonschema_rs.Draft202012Validator(load_schema(kind)) for kind in SCHEMA_IDS}

    def is_valid(self, kind: str, message: Mapping[str, Any]) -> bool:
        validator = self._validators.get(kind)
        return validator is not None and bool(validator.is_valid(message))


class Intake:
    """Turns (topic, payload) into exactly one record; ``clock`` stamps ``received_at``."""

    def __init__(self, clock: Clock, *, max_bytes: int = MAX_PAYLOAD_BYTES, max_depth: int = MAX_DEPTH) -> None:
        self._clock = clock
        self._schemas = Schemas()
        self._fast = _FastCheck()
        self._max_bytes = max_bytes
        self._max_depth = max_depth

    def judge(self, topic: str, payload: bytes) -> Record:
        received_at = self._clock.now()
        try:
            return self._judge(topic, payload, received_at)
        except (_RefusedError, InvalidMessageError) as exc:
            return Rejected(topic, str(exc), payload, received_at)
        except Exception as exc:  # a message must never stop the subscriber: it is dead-lettered
            log.exception("intake: unexpected error judging a message on %s", topic)
            return Rejected(topic, f"could not be judged ({type(exc).__name__}: {exc})", payload, received_at)

    def _judge(self, topic: str, payload: bytes, received_at: datetime) -> Record:
        if len(payload) > self._max_bytes:
            raise _RefusedError(f"payload is {len(payload)} bytes; at most {self._max_bytes} are accepted")
        levels = topic.split("/")
        kind = KINDS.get(levels[-1]) if len(levels) == 4 else None
        if kind is None:
            raise _RefusedError(f"topic {topic!r} is not <prefix>/<site>/<camera>/<{'|'.join(KINDS)}>")
        message = decode_json(payload, self._max_depth)
        if not isinstance(message, dict):
            raise _RefusedError(f"must be a JSON object, got {type(message).__name__}")
        if not self._fast.is_valid(kind, message):
            self._schemas.validate(kind, message)
        if (message["site"], message["camera"]) != (levels[1], levels[2]):
            raise _RefusedError(
                f"payload claims site/camera {message['site']}/{message['camera']} but came on {topic!r}"
            )
        if kind == "read":
            return _read(message, topic, received_at, payload)
        if kind == "status":
            return StatusRecord(message["site"], message["camera"], message["state"], _time(message["time"], "time"),
                                message["software"], topic, received_at, payload)
        return HealthRecord(
            site=message["site"], camera=message["camera"], time=_time(message["time"], "time"),
            outbox_depth=message.get("outbox_depth"), clock_synced=message.get("clock_synced"),
            disk_free_mb=message.get("disk_free_mb"), document=message, topic=topic, received_at=received_at,
            payload=payload,
        )


def _image(image: Mapping[str, Any]) -> ImageRecord:
    try:
        data = base64.b64decode(image["data"], validate=True)
    except (binascii.Error, ValueError):
        raise _RefusedError("field 'image/data': not valid base64") from None
    redaction = image["redaction"]
    return ImageRecord(
        kind=image["kind"], content_type=image["content_type"], width=image["width"], height=image["height"],
        data=data, sha256=hashlib.sha256(data).hexdigest(), detector=redaction["detector"],
        model_sha256=redaction["model_sha256"], threshold=float(redaction["threshold"]), regions=redaction["regions"],
    )


def _check_id(message: Mapping[str, Any]) -> None:
    """A read's id (``<site>.<camera>.<seq>.<8 hex>``, its shape checked by the schema) names its own site, camera
    and seq: receivers drop repeats by id, so an id that names another read would hide this one or that one."""
    site, camera, seq, _ = str(message["id"]).split(".")
    if (site, camera, int(seq)) != (message["site"], message["camera"], message["seq"]):
        raise _RefusedError(f"id {message['id']!r} names site/camera/seq {site}/{camera}/{seq}, but the read is "
                            f"{message['site']}/{message['camera']}/{message['seq']}")


def _read(message: dict[str, Any], topic: str, received_at: datetime, payload: bytes) -> ReadRecord:
    _check_id(message)
    image = _image(message["image"]) if "image" in message else None
    document = {k: v for k, v in message.items() if k != "image"}
    confidence = message.get("confidence")
    return ReadRecord(
        id=message["id"], site=message["site"], camera=message["camera"], seq=message["seq"],
        time=_time(message["time"], "time"), plate=message.get("plate"), plate_hash=message.get("plate_hash"),
        key_id=message.get("key_id"), confidence=None if confidence is None else float(confidence),
        format=message.get("format"), direction=message.get("direction"), zone=message.get("zone"),
        first_seen=_opt_time(message, "first_seen"), last_seen=_opt_time(message, "last_seen"),
        sightings=message.get("sightings"), hotlist_hit=bool(message.get("hotlist_hit", False)),
        clock_unsynced=bool(message.get("clock_unsynced", False)), image=image, topic=topic,
        received_at=received_at, document=document, payload=payload,
    )
