"""Hotlists on the node: a checksummed or signed file in, keyed hashes only in memory and on disk.

File format (``anpr.hotlist/1``, JSON, UTF-8)::

    {
      "format": "anpr.hotlist/1",
      "list_id": "op-nightjar",                   # any string, for the log and the audit trail
      "valid_until": "2026-11-23T06:00:00Z",      # end of the deployment (ISO 8601, UTC)
      "plates": ["AB12CDE", "XY51 ZZZ"],          # plain text; normalised and hashed at load, then forgotten
      "hashes": ["<64 hex>", ...],                # or: HMAC-SHA256(hotlist key, normalised plate), hex
      "key_id": "3f2a9c1b",                       # with "hashes": first 8 hex of sha256(hotlist key)
      "sha256": "<64 hex>"                        # integrity: sha256 of the canonical body
      "hmac_sha256": "<64 hex>"                   # or authenticity: HMAC-SHA256(signing key, canonical body)
    }

The canonical body is the object without ``sha256`` / ``hmac_sha256``, serialised as
``json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` in UTF-8 (see
``canonical_body``; ``write_hotlist`` produces such files). A checksum only catches corruption; a
signature (``privacy.hotlist_signing_key_file``) also catches tampering, and when a signing key is
configured an unsigned file is refused. A file whose checksum or signature does not match is refused.

The node keeps only ``HMAC-SHA256(hotlist key, plate)`` for each entry. The hotlist key comes from
``privacy.hotlist_key_file`` (the centre can then send pre-hashed lists) or, without one, is made once
and kept in ``<state_dir>/hotlist.key`` (0600). A list that holds plate text is *imported* at start
(:func:`open_hotlist`): verified, hashed, saved hashed-only to ``<state_dir>/hotlist.json`` (0600) and the
plain-text file deleted; a plain-text file the node cannot delete (a read-only /etc) is refused, so plate
text never stays on the node's disk. Later starts load the hashed copy until a new list arrives. A
matches when it, or a variant of it that swaps up to ``confusables`` of the look-alike characters
O/0, I/1, S/5, B/8, Z/2, hashes to an entry. The list expires ``grace`` after ``valid_until``: it then
matches nothing, its hashes are dropped from memory and its hashed copy deleted; an expired list is not
loaded at start (the node runs without one and says so in its log and health).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edge.config.model import PrivacyConfig
from edge.errors import ConfigError
from edge.files import canonical_json, refuse_link, write_atomic
from edge.privacy.pseudonym import key_fingerprint, normalise_plate, plate_hmac, read_secret

log = logging.getLogger(__name__)

FORMAT_ID = "anpr.hotlist/1"
CONFUSABLE_PAIRS = (("O", "0"), ("I", "1"), ("S", "5"), ("B", "8"), ("Z", "2"))
_SWAP = {a: b for pair in CONFUSABLE_PAIRS for a, b in (pair, pair[::-1])}
_INTEGRITY = ("sha256", "hmac_sha256")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_KNOWN = {"format", "list_id", "valid_until", "plates", "hashes", "key_id", *_INTEGRITY}


STORE_NAME = "hotlist.json"  # the hashed-only copy, in the state directory
KEY_NAME = "hotlist.key"  # the hotlist key the node made, when privacy.hotlist_key_file is not set


class HotlistError(ConfigError):
    """A hotlist file is unreadable, malformed, tampered with, unsigned when it must be signed, or expired."""


class HotlistExpiredError(HotlistError):
    """The hotlist's ``valid_until`` + grace has passed: the node runs without it."""


def canonical_body(doc: dict[str, Any]) -> bytes:
    """The bytes a hotlist's checksum or signature covers: the document without its integrity members."""
    body = {k: v for k, v in doc.items() if k not in _INTEGRITY}
    return canonical_json(body)


def confusable_variants(plate: str, max_swaps: int) -> Iterator[str]:
    """``plate`` and every spelling that swaps up to ``max_swaps`` look-alike characters (O/0, I/1, ...)."""
    yield plate
    positions = [i for i, ch in enumerate(plate) if ch in _SWAP]
    for n in range(1, min(max_swaps, len(positions)) + 1):
        for chosen in itertools.combinations(positions, n):
            chars = list(plate)
            for i in chosen:
                chars[i] = _SWAP[chars[i]]
            yield "".join(chars)


class Hotlist:
    """A loaded hotlist: keyed hashes, an expiry, and a matcher that tolerates confusable characters."""

    __slots__ = ("_confusables", "_expires_at", "_hashes", "_key", "list_id", "stored_at", "valid_until")

    def __init__(
        self, hashes: Iterable[str], *, key: bytes, list_id: str, valid_until: datetime, grace: timedelta,
        confusables: int = 1,
    ) -> None:
        if confusables < 0:
            raise ValueError(f"confusables {confusables} must be >= 0")
        self._hashes = frozenset(hashes)
        self._key = key
        self._confusables = confusables
        self.list_id = list_id
        self.valid_until = valid_until
        self._expires_at = valid_until + grace
        self.stored_at: Path | None = None  # the hashed copy on disk, deleted when the list expires

    @classmethod
    def from_plates(
        cls, plates: Iterable[str], *, key: bytes, list_id: str, valid_until: datetime, grace: timedelta,
        confusables: int = 1,
    ) -> Hotlist:
        hashes = [plate_hmac(key, normalise_plate(p)) for p in plates]
        return cls(hashes, key=key, list_id=list_id, valid_until=valid_until, grace=grace, confusables=confusables)


    @property
    def key_id(self) -> str:
        return key_fingerprint(self._key)

    def __len__(self) -> int:
        return len(self._hashes)

    def __repr__(self) -> str:
        return f"Hotlist(list_id={self.list_id!r}, entries={len(self)}, expires_at={self._expires_at.isoformat()})"

    def expired(self, now: datetime) -> bool:
        return now >= self._expires_at

    @property
    def expires_at(self) -> datetime:
        return self._expires_at

    def match(self, plate: str, now: datetime) -> bool:
        """True when ``plate`` (or a confusable variant of it) is on the list and the list has not expired."""
        if self.expired(now):
            if self._hashes:
                log.warning("hotlist %s expired at %s; its %d entries are deleted", self.list_id,
                            self._expires_at.isoformat(), len(self._hashes))
                self._hashes = frozenset()
                _remove(self.stored_at)
            return False
        try:
            norm = normalise_plate(plate)
        except ValueError:
            return False
        return any(plate_hmac(self._key, v) in self._hashes for v in confusable_variants(norm, self._confusables))

    def hashed_doc(self) -> dict[str, Any]:
        """The hashed-only ``anpr.hotlist/1`` document (no plate text) with its sha256 checksum."""
        doc: dict[str, Any] = {
            "format": FORMAT_ID,
            "list_id": self.list_id,
            "valid_until": _iso(self.valid_until),
            "hashes": sorted(self._hashes),
            "key_id": self.key_id,
        }
        doc["sha256"] = hashlib.sha256(canonical_body(doc)).hexdigest()
        return doc

    def save(self, path: str | Path) -> None:
        """Write the hashed-only form (no plate text) with a sha256 checksum, atomically, mode 0600."""
        write_atomic(Path(path), json.dumps(self.hashed_doc(), indent=1).encode("utf-8"))


def write_hotlist(
    path: str | Path, plates: Iterable[str], *, list_id: str, valid_until: datetime,
    signing_key: bytes | None = None,
) -> None:
    """Write a plain-text hotlist file with a checksum, or a signature when ``signing_key`` is given.

    This is the centre's side (and the tests'); the node only reads such files.
    """
    doc: dict[str, Any] = {
        "format": FORMAT_ID,
        "list_id": list_id,
        "valid_until": _iso(valid_until),
        "plates": sorted({normalise_plate(p) for p in plates}),
    }
    body = canonical_body(doc)
    if signing_key is None:
        doc["sha256"] = hashlib.sha256(body).hexdigest()
    else:
        doc["hmac_sha256"] = hmac.new(signing_key, body, hashlib.sha256).hexdigest()
    write_atomic(Path(path), json.dumps(doc, indent=1, ensure_ascii=False).encode("utf-8"))


def load_hotlist(
    path: str | Path, *, now: datetime, grace: timedelta, confusables: int = 1, hash_key: bytes | None = None,
    signing_key: bytes | None = None,
) -> Hotlist:
    """Verify and load a hotlist file; raise :class:`HotlistError` naming what is wrong.

    Without ``hash_key`` a random key is used for this process, and pre-hashed entries are refused.
    """
    p = Path(path)
    return hotlist_from_doc(_read(p), origin=p, now=now, grace=grace, confusables=confusables, hash_key=hash_key,
                            signing_key=signing_key)


def hotlist_from_doc(
    doc: dict[str, Any], *, origin: str | Path, now: datetime, grace: timedelta, confusables: int = 1,
    hash_key: bytes | None = None, signing_key: bytes | None = None,
) -> Hotlist:
    """Verify and load a hotlist document already read (a file's, or a fleet push's); errors name ``origin``."""
    p = Path(origin)
    _verify(p, doc, signing_key)
    if doc.get("format") != FORMAT_ID:
        raise HotlistError(f"hotlist {str(p)!r}: format {doc.get('format')!r} is not {FORMAT_ID!r}")
    unknown = set(doc) - _KNOWN
    if unknown:
        raise HotlistError(f"hotlist {str(p)!r}: unknown members {sorted(unknown)} (allowed: {sorted(_KNOWN)})")
    list_id = doc.get("list_id")
    if not isinstance(list_id, str) or not list_id:
        raise HotlistError(f"hotlist {str(p)!r}: list_id must be a non-empty string, got {list_id!r}")
    valid_until = _parse_time(p, doc.get("valid_until"))
    if now >= valid_until + grace:
        raise HotlistExpiredError(
            f"hotlist {str(p)!r} ({list_id}) expired at {_iso(valid_until + grace)} (valid_until + grace); "
            "refusing to load it"
        )
    key = hash_key if hash_key is not None else secrets.token_bytes(32)
    hashes = _entries(p, doc, key)
    log.info("hotlist %s loaded: %d entries, valid until %s", list_id, len(hashes), _iso(valid_until))
    return Hotlist(hashes, key=key, list_id=list_id, valid_until=valid_until, grace=grace, confusables=confusables)


def import_hotlist(
    source: str | Path, dest: str | Path, *, hash_key: bytes, now: datetime, grace: timedelta,
    confusables: int = 1, signing_key: bytes | None = None,
) -> Hotlist:
    """Verify ``source``, write its hashed-only form to ``dest`` and delete ``source``.

    After this the plate text of the list exists nowhere on the node's disk; ``dest`` reloads with
    ``load_hotlist(dest, hash_key=...)``. ``source`` is kept when anything fails.
    """
    hotlist = load_hotlist(source, now=now, grace=grace, confusables=confusables, hash_key=hash_key,
                           signing_key=signing_key)
    hotlist.save(dest)
    Path(source).unlink()
    return hotlist


def open_hotlist(
    policy: PrivacyConfig, state_dir: str | Path, now: datetime, *, dry_run: bool = False
) -> tuple[Hotlist | None, str | None]:
    """The node's hotlist at start: (the list, None), or (None, why the node runs without one) when it expired.

    ``privacy.hotlist_file`` when it is there (a list with plate text is imported and its file deleted), else the
    hashed copy an earlier start imported. A file that is bad in any other way raises :class:`HotlistError`.
    ``dry_run`` (check-config, selftest) verifies the same way and changes nothing.
    """
    if policy.hotlist_file is None:
        return None, None
    source, state = Path(policy.hotlist_file), Path(state_dir)
    store = state / STORE_NAME
    refuse_link(store)
    key = _hotlist_key(policy, state, create=not dry_run)
    signing = (
        read_secret(policy.hotlist_signing_key_file, what="hotlist signing key file")
        if policy.hotlist_signing_key_file else None
    )
    grace, confusables = timedelta(seconds=policy.hotlist_grace_s), policy.hotlist_confusables
    if source.exists():
        plain = bool(_read(source).get("plates"))
        if plain and not os.access(source.parent, os.W_OK):
            raise HotlistError(
                f"hotlist {str(source)!r} holds plate text, which must not stay on the node's disk, and this user "
                f"cannot delete it after importing it (its folder is not writable): put plain-text hotlists in the "
                f"state directory ({state}), or send the list pre-hashed"
            )
        try:
            hotlist = load_hotlist(source, now=now, grace=grace, confusables=confusables, hash_key=key,
                                   signing_key=signing)
        except HotlistExpiredError as exc:
            if not dry_run:
                _remove(source if plain else None)
                _remove(store)
            return None, str(exc)
        if plain and not dry_run:
            hotlist.save(store)
            _remove(source)
            hotlist.stored_at = store
            log.info("hotlist %s imported: hashed copy in %s, the plain-text file deleted", hotlist.list_id, store)
        return hotlist, None
    if store.exists():
        try:
            hotlist = load_hotlist(store, now=now, grace=grace, confusables=confusables, hash_key=key)
        except HotlistExpiredError as exc:
            if not dry_run:
                _remove(store)
            return None, str(exc)
        hotlist.stored_at = store
        return hotlist, None
    raise HotlistError(f"hotlist {str(source)!r} does not exist, and no list was imported before ({store})")


def _hotlist_key(policy: PrivacyConfig, state: Path, *, create: bool) -> bytes:
    if policy.hotlist_key_file:
        return read_secret(policy.hotlist_key_file, what="hotlist key file")
    path = state / KEY_NAME
    refuse_link(path)
    if path.exists():
        return read_secret(path, what="hotlist key file")
    key = secrets.token_bytes(32)
    if create:
        write_atomic(path, key.hex().encode() + b"\n")
    return key


def _remove(path: Path | None) -> None:
    if path is None:
        return
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.error("cannot delete %s: %s", path, exc.strerror or exc)


def _read(p: Path) -> dict[str, Any]:
    try:
        doc = json.loads(p.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise HotlistError(f"cannot read hotlist {str(p)!r}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HotlistError(f"hotlist {str(p)!r} is not UTF-8 JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise HotlistError(f"hotlist {str(p)!r}: top level must be an object, got {type(doc).__name__}")
    return doc


def _verify(p: Path, doc: dict[str, Any], signing_key: bytes | None) -> None:
    body = canonical_body(doc)
    signature, checksum = doc.get("hmac_sha256"), doc.get("sha256")
    if signing_key is not None:
        if not isinstance(signature, str):
            raise HotlistError(
                f"hotlist {str(p)!r} is not signed (no hmac_sha256) but a signing key is configured; refusing it"
            )
        if not hmac.compare_digest(signature, hmac.new(signing_key, body, hashlib.sha256).hexdigest()):
            raise HotlistError(f"hotlist {str(p)!r}: signature does not match; the file was altered or signed "
                               "with another key - refusing it")
        return
    if not isinstance(checksum, str):
        what = "signed, but no privacy.hotlist_signing_key_file is configured" if signature else "not checksummed"
        raise HotlistError(f"hotlist {str(p)!r} is {what}; refusing it (need a sha256 member)")
    computed = hashlib.sha256(body).hexdigest()
    if not hmac.compare_digest(checksum, computed):
        raise HotlistError(f"hotlist {str(p)!r}: sha256 {checksum[:16]}... does not match the content "
                           f"({computed[:16]}...); the file was altered or corrupted - refusing it")


def _entries(p: Path, doc: dict[str, Any], key: bytes) -> list[str]:
    plates, hashes = doc.get("plates", []), doc.get("hashes", [])
    if not isinstance(plates, list) or not isinstance(hashes, list):
        raise HotlistError(f"hotlist {str(p)!r}: plates and hashes must be lists")
    out: list[str] = []
    for i, plate in enumerate(plates):
        try:
            out.append(plate_hmac(key, normalise_plate(str(plate))))
        except ValueError as exc:
            raise HotlistError(f"hotlist {str(p)!r}: plates[{i}]: {exc}") from exc
    if hashes:
        if doc.get("key_id") != key_fingerprint(key):
            raise HotlistError(
                f"hotlist {str(p)!r}: hashed entries were made with key {doc.get('key_id')!r}, but this node's "
                f"hotlist key is {key_fingerprint(key)!r} "
                "(set privacy.hotlist_key_file to the key the list was hashed with)"
            )
        for i, h in enumerate(hashes):
            if not (isinstance(h, str) and _HEX64.fullmatch(h)):
                raise HotlistError(f"hotlist {str(p)!r}: hashes[{i}] is not 64 lowercase hex digits")
            out.append(h)
    return out


def _parse_time(p: Path, value: object) -> datetime:
    if not isinstance(value, str):
        raise HotlistError(f"hotlist {str(p)!r}: valid_until must be an ISO 8601 UTC time, got {value!r}")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise HotlistError(f"hotlist {str(p)!r}: valid_until {value!r} is not ISO 8601") from exc
    if t.tzinfo is None:
        raise HotlistError(f"hotlist {str(p)!r}: valid_until {value!r} needs a time zone (end it with Z)")
    return t.astimezone(UTC)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

