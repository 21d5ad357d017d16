"""The control manifest (``anpr.ctl/1``): a small signed message that names a payload by size and sha256.

:func:`verify_manifest` and :func:`verify_payload` are pure: bytes, pinned keys, what the node already applied
and the time in; a :class:`Manifest` or a :class:`Refusal` with a typed reason out. The node refuses (and says
so in health and its log) an update that is unsigned, signed by a key it did not pin (``wrong_key``), whose
signature does not match (``bad_signature``), addressed to another target or kind (``wrong_target``), older
than what it applied (``rollback``), past its expiry (``expired``), larger than it accepts (``oversized``),
or whose payload is shorter than announced (``truncated``) or does not hash to the announced sha256
(``sha_mismatch``); ``malformed`` and ``bad_payload`` cover the rest. A pushed config is also refused when
``check-config`` would refuse it (``invalid_config``) or when it changes a field the centre may not change
(``forbidden_field``), and reported as ``rolled_back`` when it did not come back healthy
(:mod:`edge.node.config_push`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import cache
from typing import Any, Literal

import jsonschema

from edge.clock import iso_ms
from edge.files import canonical_json
from edge.fleet import signing
from edge.fleet.topics import Kind
from edge.publish.schema import load_schema

SCHEMA_ID = "anpr.ctl/1"
MAX_MANIFEST_BYTES = 4096

Reason = Literal[
    "malformed", "unsigned", "wrong_key", "bad_signature", "wrong_target", "rollback", "expired", "oversized",
    "truncated", "sha_mismatch", "bad_payload", "invalid_config", "forbidden_field", "rolled_back",
]
REASONS: tuple[Reason, ...] = (
    "malformed", "unsigned", "wrong_key", "bad_signature", "wrong_target", "rollback", "expired", "oversized",
    "truncated", "sha_mismatch", "bad_payload", "invalid_config", "forbidden_field", "rolled_back",
)


@dataclass(frozen=True, slots=True)
class Manifest:
    kind: Kind
    target: str
    version: int
    issued: str
    expires: str
    size: int
    sha256: str
    chunks: int
    key_id: str
    signature: str
    encoding: str = "zlib"

    def signed_bytes(self) -> bytes:
        return signed_bytes(self.as_dict())

    def as_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA_ID, **asdict(self)}

    def to_bytes(self) -> bytes:
        return canonical_json(self.as_dict())

    def expires_at(self) -> datetime:
        return _parse_time(self.expires)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an update was not applied; ``target``/``kind``/``version`` as far as they could be read."""

    reason: Reason
    detail: str
    target: str | None = None
    kind: str | None = None
    version: int | None = None


def signed_bytes(doc: dict[str, Any]) -> bytes:
    """What the signature covers: the manifest's canonical JSON without ``signature``."""
    return canonical_json({k: v for k, v in doc.items() if k != "signature"})


def sign_manifest(
    key: signing.Ed25519PrivateKey, *, kind: Kind, target: str, version: int, issued: datetime, expires: datetime,
    payload: bytes, chunks: int,
) -> Manifest:
    """The signed manifest of ``payload`` (the bytes as sent: all chunks joined)."""
    import hashlib

    unsigned: dict[str, Any] = {
        "schema": SCHEMA_ID, "kind": kind, "target": target, "version": version, "issued": iso_ms(issued),
        "expires": iso_ms(expires), "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest(),
        "chunks": chunks, "encoding": "zlib", "key_id": signing.key_id(key.public_key()),
    }
    signature = signing.sign(key, signed_bytes(unsigned))
    del unsigned["schema"]
    return Manifest(signature=signature, **unsigned)


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema("ctl"))


def verify_manifest(
    raw: bytes, *, keys: dict[str, signing.Ed25519PublicKey], target: str, kind: str, applied_version: int,
    now: datetime, max_size: int,
) -> Manifest | Refusal:
    """Check a manifest that arrived on ``target``'s ``kind`` topic against the pinned ``keys``."""
    doc = _parse(raw, target, kind)
    if isinstance(doc, Refusal):
        return doc
    refusal = _authentic(doc, keys, target, kind)
    if refusal is not None:
        return refusal
    del doc["schema"]
    return _applicable(Manifest(**doc), target=target, kind=kind, applied_version=applied_version, now=now,
                       max_size=max_size)


def _parse(raw: bytes, target: str, kind: str) -> dict[str, Any] | Refusal:
    if len(raw) > MAX_MANIFEST_BYTES:
        return Refusal("oversized", f"manifest of {len(raw)} bytes (at most {MAX_MANIFEST_BYTES})", target, kind)
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Refusal("malformed", f"not UTF-8 JSON: {exc}", target, kind)
    if not isinstance(doc, dict):
        return Refusal("malformed", "not a JSON object", target, kind)
    return doc


def _authentic(
    doc: dict[str, Any], keys: dict[str, signing.Ed25519PublicKey], target: str, kind: str
) -> Refusal | None:
    version = doc.get("version") if isinstance(doc.get("version"), int) else None
    if "signature" not in doc:
        return Refusal("unsigned", "the manifest has no signature", target, kind, version)
    error = jsonschema.exceptions.best_match(_validator().iter_errors(doc))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(manifest)"
        return Refusal("malformed", f"{where}: fails {SCHEMA_ID} ({error.validator})", target, kind, version)
    if doc["key_id"] not in keys:
        return Refusal("wrong_key", f"signed with key {doc['key_id']}, this node pins {sorted(keys)}",
                       target, kind, version)
    if not signing.verify(keys, doc["key_id"], signed_bytes(doc), doc["signature"]):
        return Refusal("bad_signature", f"the signature does not match (key {doc['key_id']}): altered or forged",
                       target, kind, version)
    return None


def _applicable(
    manifest: Manifest, *, target: str, kind: str, applied_version: int, now: datetime, max_size: int
) -> Manifest | Refusal:
    def refuse(reason: Reason, detail: str) -> Refusal:
        return Refusal(reason, detail, target, kind, manifest.version)

    if (manifest.target, manifest.kind) != (target, kind):
        return refuse("wrong_target", f"signed for {manifest.target} {manifest.kind}, arrived on {target} {kind}")
    if manifest.version < applied_version:
        return refuse("rollback", f"version {manifest.version} is older than the applied {applied_version}")
    if now >= manifest.expires_at():
        return refuse("expired", f"the manifest expired at {manifest.expires}")
    if manifest.size > max_size:
        return refuse("oversized", f"payload of {manifest.size} bytes, this node takes at most {max_size}")
    return manifest


def verify_payload(manifest: Manifest, payload: bytes) -> Refusal | None:
    """None when ``payload`` is exactly what ``manifest`` announced."""
    import hashlib

    def refuse(reason: Reason, detail: str) -> Refusal:
        return Refusal(reason, detail, manifest.target, manifest.kind, manifest.version)

    if len(payload) < manifest.size:
        return refuse("truncated", f"{len(payload)} of {manifest.size} bytes")
    if len(payload) > manifest.size:
        return refuse("oversized", f"{len(payload)} bytes, the manifest announced {manifest.size}")
    digest = hashlib.sha256(payload).hexdigest()
    if digest != manifest.sha256:
        return refuse("sha_mismatch", f"payload sha256 {digest[:16]}... is not the announced {manifest.sha256[:16]}...")
    return None


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
