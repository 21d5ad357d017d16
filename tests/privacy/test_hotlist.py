"""Hotlists: verified files, keyed hashes only (no plate text stored), expiry, confusable matching."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.config.model import PrivacyConfig
from edge.privacy.hotlist import (
    Hotlist,
    HotlistError,
    canonical_body,
    confusable_variants,
    import_hotlist,
    load_hotlist,
    open_hotlist,
    write_hotlist,
)

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
UNTIL = NOW + timedelta(hours=6)
GRACE = timedelta(hours=24)
PLATES = ["AB12 CDE", "XY51ZZZ", "B0B 1"]
KEY = bytes(range(32))
SIGNING = bytes(range(100, 132))


@pytest.fixture
def listfile(tmp_path: Path) -> Path:
    path = tmp_path / "hotlist.json"
    write_hotlist(path, PLATES, list_id="op-nightjar", valid_until=UNTIL)
    return path


def load(path: Path, **kwargs: object) -> Hotlist:
    kwargs.setdefault("now", NOW)
    kwargs.setdefault("grace", GRACE)
    return load_hotlist(path, **kwargs)  # type: ignore[arg-type]


def test_loaded_list_matches_normalised_reads(listfile: Path) -> None:
    hl = load(listfile, confusables=0)
    assert len(hl) == 3
    assert hl.match("AB12CDE", NOW)
    assert hl.match("ab12-cde", NOW)
    assert hl.match("B0B1", NOW)
    assert not hl.match("AB12CDF", NOW)


def test_only_keyed_hashes_are_held_and_saved_never_the_plate_text(listfile: Path, tmp_path: Path) -> None:
    hl = load(listfile, hash_key=KEY)
    state = repr(hl) + repr([getattr(hl, name) for name in Hotlist.__slots__])
    saved = tmp_path / "state.json"
    hl.save(saved)
    on_disk = saved.read_bytes()
    for plate in ("AB12CDE", "XY51ZZZ", "B0B1"):
        assert plate not in state
        assert plate.encode() not in on_disk
    assert saved.stat().st_mode & 0o077 == 0
    reloaded = load(saved, hash_key=KEY, confusables=0)
    assert reloaded.match("XY51ZZZ", NOW)
    assert not reloaded.match("XY51ZZA", NOW)


def test_hashed_file_needs_the_key_it_was_made_with(listfile: Path, tmp_path: Path) -> None:
    saved = tmp_path / "state.json"
    load(listfile, hash_key=KEY).save(saved)
    with pytest.raises(HotlistError, match="hotlist_key_file"):
        load(saved, hash_key=bytes(32))
    with pytest.raises(HotlistError, match="hotlist_key_file"):
        load(saved)  # random per-process key


def test_a_tampered_checksummed_file_is_refused(listfile: Path) -> None:
    doc = json.loads(listfile.read_text())
    doc["plates"].append("EV1L")
    listfile.write_text(json.dumps(doc))
    with pytest.raises(HotlistError, match=r"sha256 .* does not match"):
        load(listfile)


def test_a_file_without_checksum_is_refused(listfile: Path) -> None:
    doc = json.loads(listfile.read_text())
    del doc["sha256"]
    listfile.write_text(json.dumps(doc))
    with pytest.raises(HotlistError, match="not checksummed"):
        load(listfile)


def test_signed_files_verify_and_tampered_or_unsigned_ones_are_refused(tmp_path: Path, listfile: Path) -> None:
    signed = tmp_path / "signed.json"
    write_hotlist(signed, PLATES, list_id="op", valid_until=UNTIL, signing_key=SIGNING)
    assert load(signed, signing_key=SIGNING).match("XY51ZZZ", NOW)
    with pytest.raises(HotlistError, match="signature does not match"):
        load(signed, signing_key=bytes(32))
    with pytest.raises(HotlistError, match="not signed"):
        load(listfile, signing_key=SIGNING)  # checksum only, but a signing key is configured
    doc = json.loads(signed.read_text())
    doc["valid_until"] = "2030-01-01T00:00:00Z"
    signed.write_text(json.dumps(doc))
    with pytest.raises(HotlistError, match="signature does not match"):
        load(signed, signing_key=SIGNING)


def test_list_expires_after_valid_until_plus_grace_and_forgets_its_entries(listfile: Path) -> None:
    hl = load(listfile)
    assert hl.match("XY51ZZZ", UNTIL + GRACE - timedelta(seconds=1))
    assert not hl.match("XY51ZZZ", UNTIL + GRACE)
    assert hl.expired(UNTIL + GRACE)
    assert len(hl) == 0
    assert not hl.match("XY51ZZZ", NOW)  # deleted, not just hidden


def test_an_already_expired_file_is_refused(listfile: Path) -> None:
    with pytest.raises(HotlistError, match="expired"):
        load(listfile, now=UNTIL + GRACE)


@pytest.mark.parametrize(("read", "tolerance", "hit"), [
    ("AB12CDE", 0, True),
    ("A812CDE", 0, False),
    ("A812CDE", 1, True),   # B read as 8
    ("AB1ZCDE", 1, True),   # 2 read as Z
    ("XY5IZZZ", 1, True),   # 1 read as I
    ("A8I2CDE", 1, False),  # two look-alikes wrong
    ("A8I2CDE", 2, True),
    ("BOB1", 1, True),      # 0 read as O
    ("AB12CDF", 3, False),  # F is no look-alike of E
])
def test_confusable_characters_match_within_the_tolerance(listfile: Path, read: str, tolerance: int,
                                                          hit: bool) -> None:
    assert load(listfile, confusables=tolerance).match(read, NOW) is hit


def test_confusable_variants_are_bounded_by_the_tolerance() -> None:
    assert set(confusable_variants("OI5", 1)) == {"OI5", "0I5", "O15", "OIS"}
    assert len(set(confusable_variants("OI5", 3))) == 8
    assert list(confusable_variants("ACE", 2)) == ["ACE"]


def test_malformed_files_name_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(HotlistError, match="top level must be an object"):
        load(bad)
    doc = {"format": "anpr.hotlist/1", "list_id": "x", "valid_until": "tomorrow", "plates": []}
    doc["sha256"] = hashlib.sha256(canonical_body(doc)).hexdigest()
    bad.write_text(json.dumps(doc))
    with pytest.raises(HotlistError, match="not ISO 8601"):
        load(bad)
    with pytest.raises(HotlistError, match="cannot read"):
        load(tmp_path / "missing.json")


def test_open_hotlist_reads_keys_and_limits_from_the_policy(tmp_path: Path, listfile: Path) -> None:
    key = tmp_path / "hotlist.key"
    key.write_text(KEY.hex())
    policy = PrivacyConfig(hotlist_file=str(listfile), hotlist_key_file=str(key), hotlist_confusables=0)
    hl, _ = open_hotlist(policy, tmp_path / "state", NOW, dry_run=True)
    assert hl is not None
    assert hl.key_id == hashlib.sha256(KEY).hexdigest()[:8]
    assert not hl.match("A812CDE", NOW)
    assert open_hotlist(PrivacyConfig(), tmp_path / "state", NOW) == (None, None)


def test_import_leaves_only_the_hashed_form_on_disk(listfile: Path, tmp_path: Path) -> None:
    dest = tmp_path / "state" / "hotlist.hashed.json"
    dest.parent.mkdir()
    hl = import_hotlist(listfile, dest, hash_key=KEY, now=NOW, grace=GRACE)
    assert not listfile.exists()
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert b"XY51ZZZ" not in f.read_bytes()
    assert hl.match("XY51ZZZ", NOW)
    assert load(dest, hash_key=KEY).match("XY51ZZZ", NOW)


def test_a_refused_import_keeps_the_source(listfile: Path, tmp_path: Path) -> None:
    listfile.write_text(listfile.read_text().replace("XY51ZZZ", "XY51ZZA"))
    with pytest.raises(HotlistError):
        import_hotlist(listfile, tmp_path / "dest.json", hash_key=KEY, now=NOW, grace=GRACE)
    assert listfile.exists()
    assert not (tmp_path / "dest.json").exists()


def test_the_node_imports_a_plain_text_list_into_its_hashed_store_and_deletes_the_plate_text(
    listfile: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    policy = PrivacyConfig(hotlist_file=str(listfile))
    assert open_hotlist(policy, state, NOW, dry_run=True)[0] is not None
    assert listfile.exists(), "a dry run changes nothing"
    hotlist, problem = open_hotlist(policy, state, NOW)
    assert problem is None and hotlist is not None and hotlist.match("XY51ZZZ", NOW)
    assert not listfile.exists()
    assert {p.name for p in state.iterdir()} == {"hotlist.json", "hotlist.key"}
    for f in tmp_path.rglob("*"):
        assert not f.is_file() or b"XY51ZZZ" not in f.read_bytes()
        assert not f.is_file() or f.stat().st_mode & 0o077 == 0
    again, _ = open_hotlist(policy, state, NOW)  # the next start: the hashed copy, same key
    assert again is not None and again.match("XY51ZZZ", NOW)


def test_a_plain_text_list_the_node_cannot_delete_is_refused(listfile: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can delete anywhere")
    listfile.parent.chmod(0o500)
    try:
        with pytest.raises(HotlistError, match="holds plate text"):
            open_hotlist(PrivacyConfig(hotlist_file=str(listfile)), tmp_path / "state", NOW, dry_run=True)
    finally:
        listfile.parent.chmod(0o700)


def test_an_expired_list_is_not_loaded_its_copies_are_deleted_and_the_reason_given(
    listfile: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    policy = PrivacyConfig(hotlist_file=str(listfile), hotlist_grace_s=3600)
    hotlist, _ = open_hotlist(policy, state, NOW)
    assert hotlist is not None and (state / "hotlist.json").exists()
    later = UNTIL + timedelta(hours=2)
    assert not hotlist.match("XY51ZZZ", later)
    assert not (state / "hotlist.json").exists(), "deleted when it expires"
    write_hotlist(listfile, PLATES, list_id="op-nightjar", valid_until=UNTIL)
    hotlist, problem = open_hotlist(policy, state, later)
    assert hotlist is None
    assert problem is not None and "expired" in problem
    assert not listfile.exists(), "an expired plain-text list is not kept either"
