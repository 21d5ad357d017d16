"""Pseudonyms: a keyed hash (HMAC-SHA256) of the normalised plate, with a key that rotates on a schedule.

Key file format: one line holding a secret of at least 32 bytes, as 64 or more hex digits (blank lines and
lines starting with ``#`` are ignored). The node never uses that secret directly: each UTC period (day,
ISO week or month) gets its own key ``HMAC-SHA256(secret, "anpr-pseudonym/1/" + period)``, and the key id
published with every hash is ``<first 8 hex of sha256(secret)>/<period>`` (for example
``3f2a9c1b/2026-11-22``). Every node that shares the secret and the rotation produces the same hash for the
same plate in the same period (journey-time counting between cameras), and hashes from different periods
cannot be linked without the secret. Replacing the file changes the fingerprint in the key id.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

from edge.errors import ConfigError

log = logging.getLogger(__name__)

Rotation = Literal["daily", "weekly", "monthly"]

_PLATE_CHARS = re.compile(r"^[A-Z0-9]{1,12}$")
_MIN_SECRET_BYTES = 32


def normalise_plate(text: str) -> str:
    """Uppercase, spaces and hyphens removed: the form reads, hashes and hotlists all use.

    Raises ``ValueError`` for anything but 1-12 letters and digits after that.
    """
    norm = re.sub(r"[\s\-]+", "", text).upper()
    if not _PLATE_CHARS.match(norm):
        raise ValueError(f"plate text of {len(text)} characters is not 1-12 letters and digits once normalised")
    return norm


def period_label(when: datetime, rotation: Rotation) -> str:
    """The UTC period ``when`` falls in: ``2026-11-22`` (daily), ``2026-W47`` (weekly), ``2026-11`` (monthly)."""
    t = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    if rotation == "daily":
        return t.strftime("%Y-%m-%d")
    if rotation == "weekly":
        year, week, _ = t.isocalendar()
        return f"{year}-W{week:02d}"
    if rotation == "monthly":
        return t.strftime("%Y-%m")
    raise ValueError(f"rotation {rotation!r} is not one of 'daily', 'weekly', 'monthly'")


def read_secret(path: str | Path, *, what: str = "key file") -> bytes:
    """Read a hex secret of at least 32 bytes from ``path`` (one line; ``#`` comments allowed)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {str(p)!r}: {exc}") from exc
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if len(lines) != 1:
        raise ConfigError(f"{what} {str(p)!r} must hold exactly one line of hex, found {len(lines)} lines")
    try:
        secret = bytes.fromhex(lines[0])
    except ValueError as exc:
        raise ConfigError(f"{what} {str(p)!r} is not hex (allowed: 0-9, a-f)") from exc
    if p.stat().st_mode & 0o077:
        log.warning("%s %s is readable by other users; make it mode 0600", what, p)
    if len(secret) < _MIN_SECRET_BYTES:
        raise ConfigError(
            f"{what} {str(p)!r} holds {len(secret)} bytes; at least {_MIN_SECRET_BYTES} (64 hex digits) are needed"
        )
    return secret


def key_fingerprint(key: bytes) -> str:
    """A short public name for a secret key (first 8 hex of its sha256), to say which key was used."""
    return hashlib.sha256(key).hexdigest()[:8]


def plate_hmac(key: bytes, plate: str) -> str:
    """The keyed hash of a normalised plate (HMAC-SHA256, hex): pseudonyms and hotlist entries."""
    return hmac.new(key, plate.encode("ascii"), hashlib.sha256).hexdigest()


class Pseudonymiser(Protocol):
    """Turns a normalised plate into ``(hash hex, key id)`` for the time of the read."""

    def pseudonymise(self, plate: str, when: datetime) -> tuple[str, str]: ...


@dataclass(frozen=True, slots=True)
class RotatingPseudonymiser:
    """HMAC-SHA256 pseudonyms with a key derived per UTC period from one secret (see module docstring)."""

    secret: bytes
    rotation: Rotation = "daily"

    @classmethod
    def from_file(cls, path: str | Path, rotation: Rotation = "daily") -> RotatingPseudonymiser:
        return cls(read_secret(path, what="pseudonym key file"), rotation)

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(self.secret)

    def key_for(self, when: datetime) -> tuple[bytes, str]:
        period = period_label(when, self.rotation)
        key = hmac.new(self.secret, f"anpr-pseudonym/1/{period}".encode(), hashlib.sha256).digest()
        return key, f"{self.fingerprint}/{period}"

    def pseudonymise(self, plate: str, when: datetime) -> tuple[str, str]:
        key, key_id = self.key_for(when)
        return plate_hmac(key, normalise_plate(plate)), key_id

    def __repr__(self) -> str:  # never show the secret
        return f"RotatingPseudonymiser(fingerprint={self.fingerprint!r}, rotation={self.rotation!r})"
