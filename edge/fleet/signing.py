"""Ed25519 keys of the centre: made once (``edge-anpr fleet keygen``), the public half pinned on every node.

The private key is a PKCS#8 PEM file (0600) that only the centre reads. A node's pinned file may hold several
public keys (PEM blocks one after another): the current key and the next one, so the centre can rotate its key
without touching the nodes. A key's id is the first 16 hex digits of the sha256 of its 32 raw bytes; a manifest
names the key that signed it, and a node accepts it only from a key it pinned.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge.errors import ConfigError
from edge.files import write_atomic

_PEM_BLOCK = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.S)

__all__ = [
    "Ed25519PrivateKey", "Ed25519PublicKey", "generate_key", "key_id", "load_private_key", "load_public_keys",
    "public_pem", "sign", "verify", "write_private_key",
]


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def key_id(key: Ed25519PublicKey) -> str:
    """First 16 hex digits of sha256 of the raw public key: the name a manifest gives its signing key."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_atomic(path, pem, mode=0o600)


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    p = Path(path)
    try:
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(f"cannot read the fleet signing key {str(p)!r}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"fleet signing key {str(p)!r} is not a PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"fleet signing key {str(p)!r} is a {type(key).__name__}, not an Ed25519 key")
    return key


def load_public_keys(path: str | Path) -> dict[str, Ed25519PublicKey]:
    """Every Ed25519 public key in a PEM file, by key id; a file with none, or another kind of key, is refused."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the centre's public key file {str(p)!r}: {exc.strerror or exc}") from exc
    keys: dict[str, Ed25519PublicKey] = {}
    for block in _PEM_BLOCK.findall(data):
        try:
            key = serialization.load_pem_public_key(block)
        except ValueError as exc:
            raise ConfigError(f"{str(p)!r}: a PEM block is not a public key: {exc}") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError(f"{str(p)!r}: holds a {type(key).__name__}; the centre's keys are Ed25519")
        keys[key_id(key)] = key
    if not keys:
        raise ConfigError(f"{str(p)!r} holds no PEM public key (-----BEGIN PUBLIC KEY-----)")
    return keys


def sign(key: Ed25519PrivateKey, message: bytes) -> str:
    return key.sign(message).hex()


def verify(keys: Mapping[str, Ed25519PublicKey], kid: str, message: bytes, signature_hex: str) -> bool:
    """True when ``signature_hex`` is ``kid``'s Ed25519 signature of ``message`` (``kid`` must be in ``keys``)."""
    key = keys.get(kid)
    if key is None:
        return False
    try:
        key.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True
