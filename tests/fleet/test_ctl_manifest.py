"""The control manifest (anpr.ctl/1): signed by the centre, checked by the node, every refusal typed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.errors import ConfigError
from edge.fleet import payload as fp
from edge.fleet import signing
from edge.fleet.manifest import Manifest, Refusal, sign_manifest, verify_manifest, verify_payload
from edge.fleet.topics import ControlTopic, node_subscriptions, parse_target, parse_topic
from edge.publish.schema import load_schema

NOW = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
KEY = signing.generate_key()
PINNED = {signing.key_id(KEY.public_key()): KEY.public_key()}
DATA = fp.compress(b'{"hello": "world"}' * 100)


def _manifest(version: int = 5, *, key: signing.Ed25519PrivateKey = KEY, target: str = "site1/cam1",
              expires: datetime = NOW + timedelta(days=1), data: bytes = DATA) -> Manifest:
    return sign_manifest(key, kind="hotlist", target=target, version=version, issued=NOW, expires=expires,
                         payload=data, chunks=1)


def _verify(raw: bytes, *, applied: int = 0, target: str = "site1/cam1", max_size: int = 1 << 20,
            now: datetime = NOW) -> Manifest | Refusal:
    return verify_manifest(raw, keys=PINNED, target=target, kind="hotlist", applied_version=applied, now=now,
                           max_size=max_size)


def _reason(result: Manifest | Refusal) -> str:
    return result.reason if isinstance(result, Refusal) else "accepted"


def test_a_signed_manifest_round_trips_and_fits_its_schema() -> None:
    import jsonschema

    m = _manifest()
    jsonschema.validate(json.loads(m.to_bytes()), load_schema("ctl"))
    assert _verify(m.to_bytes()) == m
    assert verify_payload(m, DATA) is None


def test_the_signature_covers_the_canonical_json_whatever_the_key_order() -> None:
    doc = json.loads(_manifest().to_bytes())
    shuffled = json.dumps(dict(reversed(list(doc.items())))).encode()
    assert isinstance(_verify(shuffled), Manifest)


@pytest.mark.parametrize(("change", "reason"), [
    ({"version": 6}, "bad_signature"),
    ({"sha256": "0" * 64}, "bad_signature"),
    ({"target": "site1/cam2"}, "bad_signature"),
    ({"key_id": "0" * 16}, "wrong_key"),
    ({"signature": None}, "unsigned"),
    ({"extra": 1}, "malformed"),
    ({"version": -1}, "malformed"),
])
def test_a_changed_manifest_is_refused_with_its_reason(change: dict[str, object], reason: str) -> None:
    doc = json.loads(_manifest().to_bytes()) | change
    if change.get("signature", 0) is None:
        del doc["signature"]
    assert _reason(_verify(json.dumps(doc).encode())) == reason


def test_refusals_for_key_target_version_expiry_and_size() -> None:
    other = signing.generate_key()
    assert _reason(_verify(_manifest(key=other).to_bytes())) == "wrong_key"
    assert _reason(_verify(_manifest(target="group/west").to_bytes())) == "wrong_target"
    assert _reason(_verify(_manifest(version=4).to_bytes(), applied=5)) == "rollback"
    assert isinstance(_verify(_manifest(version=5).to_bytes(), applied=5), Manifest)  # the same one again: no refusal
    assert _reason(_verify(_manifest(expires=NOW).to_bytes())) == "expired"
    assert _reason(_verify(_manifest().to_bytes(), max_size=10)) == "oversized"
    assert _reason(_verify(b"\xff")) == "malformed"
    assert _reason(_verify(b"[]")) == "malformed"
    assert _reason(_verify(b" " * 5000)) == "oversized"


def test_a_payload_cut_short_grown_or_altered_is_refused() -> None:
    m = _manifest()
    assert _reason(verify_payload(m, DATA[:-1]) or m) == "truncated"
    assert _reason(verify_payload(m, DATA + b"x") or m) == "oversized"
    assert _reason(verify_payload(m, bytes([DATA[0] ^ 1]) + DATA[1:]) or m) == "sha_mismatch"


def test_a_refusal_keeps_what_it_could_read() -> None:
    r = _verify(_manifest(version=3).to_bytes(), applied=9)
    assert r == Refusal("rollback", "version 3 is older than the applied 9", "site1/cam1", "hotlist", 3)


def test_chunks_join_to_the_payload_and_carry_version_and_index() -> None:
    data = bytes(range(256)) * 50
    chunks = fp.split(data, 7, chunk_bytes=1000)
    assert len(chunks) == 13
    heads = [fp.chunk_header(c) for c in chunks]
    assert all(h is not None and h[0] == 7 and h[2] == 13 for h in heads)
    assert b"".join(h[3] for h in heads if h is not None) == data
    assert fp.split(b"", 1) == [fp.split(b"", 1)[0]] and fp.chunk_header(b"short") is None


def test_expand_refuses_a_zip_bomb_and_a_damaged_stream() -> None:
    bomb = fp.compress(b"\0" * 1_000_000)
    with pytest.raises(fp.PayloadError, match="expands past"):
        fp.expand(bomb, 1000)
    with pytest.raises(fp.PayloadError, match="zlib"):
        fp.expand(b"not zlib", 1000)
    assert fp.expand(bomb, 1_000_000) == b"\0" * 1_000_000


def test_target_keys_differ_per_target_and_the_keyring_round_trips(tmp_path: Path) -> None:
    secret = b"s" * 32
    a, b = fp.target_key(secret, "site1/cam1"), fp.target_key(secret, "group/west")
    assert a != b and len(a) == 32 and a == fp.target_key(secret, "site1/cam1")
    ring = tmp_path / "keys.json"
    fp.write_keyring(ring, {"site1/cam1": a, "group/west": b})
    assert fp.load_keyring(ring) == {"site1/cam1": a, "group/west": b}
    assert ring.stat().st_mode & 0o077 == 0
    ring.write_text('{"format": "anpr.hotlist-keys/1", "keys": {"x/y": "abcd"}}')
    with pytest.raises(ConfigError, match="not 32 bytes"):
        fp.load_keyring(ring)


def test_public_key_files_hold_one_or_more_keys(tmp_path: Path) -> None:
    nxt = signing.generate_key()
    pem = tmp_path / "centre.pub"
    pem.write_bytes(signing.public_pem(KEY.public_key()) + signing.public_pem(nxt.public_key()))
    assert set(signing.load_public_keys(pem)) == {signing.key_id(KEY.public_key()), signing.key_id(nxt.public_key())}
    pem.write_text("nothing here")
    with pytest.raises(ConfigError, match="no PEM public key"):
        signing.load_public_keys(pem)
    priv = tmp_path / "centre.key"
    signing.write_private_key(priv, KEY)
    assert signing.key_id(signing.load_private_key(priv).public_key()) == signing.key_id(KEY.public_key())
    assert priv.stat().st_mode & 0o077 == 0


def test_control_topics_parse_and_the_node_subscribes_to_its_own_and_its_groups() -> None:
    assert parse_topic("anpr", "anpr/ctl/site1/cam1/hotlist") == ControlTopic("site1/cam1", "hotlist")
    assert parse_topic("anpr", "anpr/ctl/group/west/hotlist/data/3") == ControlTopic("group/west", "hotlist", 3)
    for bad in ("anpr/site1/cam1/reads", "anpr/ctl/site1/cam1/other", "anpr/ctl/Site/cam1/hotlist",
                "anpr/ctl/site1/cam1/hotlist/data/x", "other/ctl/site1/cam1/hotlist"):
        assert parse_topic("anpr", bad) is None
    assert node_subscriptions("anpr", "site1", "cam1", ["west"]) == ["anpr/ctl/site1/cam1/#", "anpr/ctl/group/west/#",
                                                                      "anpr/ctl/group/all/release/#"]
    assert parse_topic("anpr", "anpr/ctl/group/all/release") == ControlTopic("group/all", "release")
    with pytest.raises(ValueError, match="SITE/CAMERA"):
        parse_target("site1")
