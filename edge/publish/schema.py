"""Versioned JSON Schemas (2020-12) of every outbound message, and validation against them.

The schema files live in ``edge/schemas/<kind>.v1.json``. A message that does not validate is
never published: :class:`InvalidMessageError` names the offending field and what is allowed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from importlib import resources
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from edge.clock import iso_ms

SCHEMA_IDS: Mapping[str, str] = {
    "read": "anpr.read/1", "status": "anpr.status/1", "health": "anpr.health/1", "ctl": "anpr.ctl/1",
}


class InvalidMessageError(ValueError):
    """A message failed its schema: ``field`` is the JSON path of the offending field."""

    def __init__(self, kind: str, field: str, reason: str) -> None:
        super().__init__(f"{kind} message: field {field!r}: {reason}")
        self.kind = kind
        self.field = field
        self.reason = reason


def schema_id(kind: str) -> str:
    try:
        return SCHEMA_IDS[kind]
    except KeyError:
        known = sorted(SCHEMA_IDS)
        raise InvalidMessageError(kind, "(kind)", f"unknown message kind {kind!r}; known: {known}") from None


def load_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema document of ``kind`` (read from the installed package)."""
    schema_id(kind)
    text = resources.files("edge").joinpath("schemas", f"{kind}.v1.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def iso_utc_ms(dt: datetime) -> str:
    """ISO 8601 UTC with millisecond precision and a trailing Z, as the contract requires."""
    if dt.tzinfo is None:
        raise ValueError(f"datetime {dt.isoformat()} has no time zone; messages need UTC")
    return iso_ms(dt)


def _field_of(error: ValidationError) -> str:
    path = "/".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = set(error.schema.get("properties", {})) if isinstance(error.schema, Mapping) else set()
        extra = sorted(str(k) for k in error.instance if k not in allowed)
        if extra:
            return "/".join(p for p in (path, extra[0]) if p)
    if error.validator == "required" and isinstance(error.validator_value, list) and isinstance(
        error.instance, Mapping
    ):
        missing = [str(k) for k in error.validator_value if k not in error.instance]
        if missing:
            return "/".join(p for p in (path, missing[0]) if p)
    deps = error.validator_value
    if error.validator == "dependentRequired" and isinstance(error.instance, Mapping) and isinstance(deps, Mapping):
        for present, needs in deps.items():
            missing = [str(k) for k in needs if present in error.instance and k not in error.instance]
            if missing:
                return "/".join(p for p in (path, missing[0]) if p)
    return path or "(message)"


def _reason_of(error: ValidationError) -> str:
    """What the schema wants, without echoing the value (a plate must never reach a log line)."""
    rule = str(error.validator)
    if rule == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {})) if isinstance(error.schema, Mapping) else []
        return f"not allowed by the schema; allowed fields: {allowed}"
    if rule == "required":
        return "is required"
    if rule == "dependentRequired":
        return f"is required together with its partner field: {error.validator_value}"
    if rule == "not":
        return f"fields must not appear together: {error.validator_value}"
    wanted = repr(error.validator_value)
    if len(wanted) > 120:
        wanted = wanted[:117] + "..."
    return f"must satisfy {rule} {wanted}"


class Schemas:
    """Compiled validators for all message kinds (build once, reuse: validation is per message)."""

    def __init__(self) -> None:
        self._validators = {
            kind: jsonschema.Draft202012Validator(load_schema(kind)) for kind in SCHEMA_IDS
        }

    def validate(self, kind: str, payload: Mapping[str, Any]) -> None:
        """Raise :class:`InvalidMessageError` naming the first offending field; None when valid."""
        schema_id(kind)
        error = jsonschema.exceptions.best_match(self._validators[kind].iter_errors(payload))
        if error is not None:
            raise InvalidMessageError(kind, _field_of(error), _reason_of(error))

    def validate_bytes(self, kind: str, payload: bytes) -> dict[str, Any]:
        """Decode a UTF-8 JSON object and validate it; returns the decoded object."""
        try:
            obj = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidMessageError(kind, "(message)", f"not UTF-8 JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise InvalidMessageError(kind, "(message)", f"must be a JSON object, got {type(obj).__name__}")
        self.validate(kind, obj)
        return obj


def validate(kind: str, payload: Mapping[str, Any]) -> None:
    """Validate one message of ``kind`` ("read", "status", "health"); raises :class:`InvalidMessageError`."""
    Schemas().validate(kind, payload)
