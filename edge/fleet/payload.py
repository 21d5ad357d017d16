"""Payloads of control messages: how they are compressed, cut into chunks, and (hotlists) hashed per target.

**Chunks.** A payload (zlib-compressed) travels as one or more retained messages on
``.../<kind>/data/<index>``, each at most :data:`CHUNK_BYTES` of payload after a 16-byte header (version, 8
bytes big-endian; index and count, 4 bytes each). Under Mosquitto 2.1's default ``max_packet_size`` (2,000,000
bytes) with room to spare; the manifest announces the count, total size and sha256, so a chunk from another
version, a lost chunk or a cut one never makes a list.

**Hotlist keys.** The node keeps a hotlist only as ``HMAC-SHA256(key, plate)``. The centre hashes a list with
the key of the *target* it sends it to: one key per node (``<site>/<camera>``) and one per group
(``group/<name>``), each derived from one fleet secret that only the centre holds::

    key(target) = HMAC-SHA256(fleet secret, "anpr.hotlist-key/1\\n" + target)

so the centre never stores a key table, and a node holds only its own key and its groups' (its *keyring*,
``fleet.hotlist_keys_file``, written at provisioning by ``edge-anpr fleet node-keys``). A node's key opens
no other node's list; a group's list opens on every member of that group.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge.errors import ConfigError
from edge.files import canonical_json, write_atomic

CHUNK_BYTES = 1_000_000
_HEADER = struct.Struct(">QII")
KEYRING_FORMAT = "anpr.hotlist-keys/1"
_KEY_LABEL = b"anpr.hotlist-key/1\n"


class PayloadError(ValueError):
    """A payload that cannot be decoded (bad zlib, too large once expanded, not the expected document)."""


def compress(data: bytes) -> bytes:
    return zlib.compress(data, 6)


def expand(data: bytes, limit: int) -> bytes:
    """Decompress at most ``limit`` bytes; more (a zip bomb) or a damaged stream is a PayloadError."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit)
    except zlib.error as exc:
        raise PayloadError(f"not a zlib stream: {exc}") from exc
    if inflater.unconsumed_tail or not inflater.eof:
        raise PayloadError(f"expands past {limit} bytes, or is cut short")
    return out


def split(payload: bytes, version: int, chunk_bytes: int = CHUNK_BYTES) -> list[bytes]:
    """The chunk messages of ``payload`` (at least one, also for an empty payload)."""
    parts = [payload[i:i + chunk_bytes] for i in range(0, len(payload), chunk_bytes)] or [b""]
    return [_HEADER.pack(version, i, len(parts)) + part for i, part in enumerate(parts)]


def chunk_header(message: bytes) -> tuple[int, int, int, bytes] | None:
    """(version, index, count, data) of a chunk message; None when it is too short to be one."""
    if len(message) < _HEADER.size:
        return None
    version, index, count = _HEADER.unpack_from(message)
    return version, index, count, message[_HEADER.size:]


# -- hotlist payloads ---------------------------------------------------------------------------------


def target_key(secret: bytes, target: str) -> bytes:
    """The hotlist key of ``target`` (``<site>/<camera>`` or ``group/<name>``) under the fleet secret."""
    return hmac.new(secret, _KEY_LABEL + target.encode("utf-8"), hashlib.sha256).digest()


def encode_hotlist(doc: Mapping[str, Any]) -> bytes:
    """A hashed ``anpr.hotlist/1`` document as sent: its canonical JSON, compressed."""
    return compress(canonical_json(dict(doc)))


def decode_hotlist(payload: bytes, limit: int) -> dict[str, Any]:
    try:
        doc = json.loads(expand(payload, limit).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"not UTF-8 JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise PayloadError("not a JSON object")
    return doc


# -- the node's keyring -------------------------------------------------------------------------------


def write_keyring(path: Path, keys: Mapping[str, bytes]) -> None:
    doc = {"format": KEYRING_FORMAT, "keys": {t: k.hex() for t, k in sorted(keys.items())}}
    write_atomic(path, (json.dumps(doc, indent=1) + "\n").encode(), mode=0o600)


def load_keyring(path: str | Path) -> dict[str, bytes]:
    """Target -> hotlist key from a keyring file; a malformed file is a ConfigError naming it."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the hotlist keyring {str(p)!r}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"hotlist keyring {str(p)!r} is not UTF-8 JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != KEYRING_FORMAT or not isinstance(doc.get("keys"), dict):
        raise ConfigError(f"hotlist keyring {str(p)!r}: expected {{'format': {KEYRING_FORMAT!r}, 'keys': {{...}}}}")
    keys: dict[str, bytes] = {}
    for target, hexkey in doc["keys"].items():
        try:
            key = bytes.fromhex(hexkey)
        except (TypeError, ValueError):
            key = b""
        if len(key) < 32:
            raise ConfigError(f"hotlist keyring {str(p)!r}: the key of {target!r} is not 32 bytes of hex")
        keys[str(target)] = key
    return keys
