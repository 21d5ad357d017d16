"""The payload is built from the allow-list: for every mode its keys are exactly what the policy names."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.clock import iso_ms
from edge.config.model import NodeConfig, PrivacyConfig
from edge.domain import Box, FormatMatch, PlateDetection, PlateRead, PlateText, VehiclePass
from edge.privacy.policy import (
    FIELD_BUILDERS,
    PolicyViolationError,
    build_read_payload,
    image_kind_for,
    permitted_keys,
    policy_version,
)
from edge.privacy.pseudonym import RotatingPseudonymiser, normalise_plate, period_label
from edge.publish.schema import validate

T0 = datetime(2026, 11, 22, 8, 30, 15, 123456, tzinfo=UTC)
NODE = NodeConfig(site="depot-1", camera="gate-a")
SECRET = bytes(range(32))
ALWAYS = {"id", "schema", "seq", "time", "site", "camera"}
OPTIONAL = ("confidence", "format", "direction", "zone", "first_seen", "last_seen", "sightings")


def make_pass(plate: str = "AB12CDE", t: datetime = T0) -> VehiclePass:
    crop = np.full((24, 110, 3), 200, np.uint8)
    read = PlateRead(
        frame_index=7,
        timestamp=t + timedelta(milliseconds=400),
        detection=PlateDetection(Box(10, 20, 110, 24), 0.9),
        raw=PlateText(plate, (0.9,) * len(plate)),
        match=FormatMatch(plate, "uk_current", False, plate),
        crop=crop,
    )
    return VehiclePass(
        track_id=3, plate=plate, display=plate, format_name="uk_current", confidence=0.91, first_seen=t,
        last_seen=t + timedelta(seconds=1), sightings=5, best=read, overview=np.zeros((72, 128, 3), np.uint8),
        direction="approaching", zone="lane-1",
    )


def image_obj(kind: str, faces: int = 0) -> dict[str, Any]:
    return {
        "kind": kind, "content_type": "image/jpeg", "width": 4, "height": 2, "data": "AAAA",
        "redaction": {"detector": "fake", "model_sha256": "0" * 64, "threshold": 0.5, "regions": 0,
                      "second_pass_faces": faces},
    }


def expected_keys(policy: PrivacyConfig, *, hit: bool | None, image: bool) -> set[str]:
    """Written out independently of the code under test, from the message contract."""
    keys = ALWAYS | (set(policy.fields) - {"plate"})
    if "plate" in policy.fields:
        if policy.plate_mode == "plain" or (policy.plate_mode == "hotlist_only" and hit):
            keys.add("plate")
        elif policy.plate_mode == "pseudonymised":
            keys |= {"plate_hash", "key_id"}
    if policy.hotlist_file is not None:
        keys.add("hotlist_hit")
    if image:
        keys.add("image")
    return keys


FIELD_SETS = [
    ("time", "seq", "site", "camera"),
    ("plate", "time", "seq", "site", "camera", "confidence"),
    ("plate", "time", "seq", "site", "camera", *OPTIONAL),
    ("time", "seq", "site", "camera", "zone", "sightings"),
]
MODES = ["plain", "pseudonymised", "hotlist_only"]
IMAGES = ["none", "plate_patch", "redacted_overview"]


def policy_for(mode: str, fields: tuple[str, ...], image: str = "none", hotlist: bool = False) -> PrivacyConfig:
    kwargs: dict[str, Any] = {"fields": fields, "plate_mode": mode, "image": image}
    if mode == "pseudonymised":
        kwargs["pseudonym_key_file"] = "/nonexistent/key"  # validators are pure: no file access
    if mode == "hotlist_only" or hotlist:
        kwargs["hotlist_file"] = "/nonexistent/hotlist.json"
    return PrivacyConfig(**kwargs)


@pytest.mark.parametrize(("mode", "fields", "image", "hit"), [
    (m, f, i, h)
    for m, f, i, h in itertools.product(MODES, FIELD_SETS, IMAGES, [None, False, True])
    if m != "hotlist_only" or h is True
])
def test_payload_keys_equal_the_allow_list_for_every_mode(
    mode: str, fields: tuple[str, ...], image: str, hit: bool | None
) -> None:
    policy = policy_for(mode, fields, image, hotlist=hit is not None)
    img = image_obj(image) if image != "none" else None
    payload = build_read_payload(
        make_pass(), policy=policy, node=NODE, seq=4, read_id="depot-1.gate-a.4.0000abcd", image=img,
        hotlist_hit=hit, pseudonymiser=RotatingPseudonymiser(SECRET),
    )
    assert payload is not None
    assert set(payload) == expected_keys(policy, hit=hit, image=img is not None)
    assert set(payload) <= permitted_keys(policy)
    validate("read", payload)
    assert payload["schema"] == "anpr.read/1"
    assert payload["seq"] == 4
    assert (payload["site"], payload["camera"]) == ("depot-1", "gate-a")


def test_every_allowed_field_name_has_exactly_one_builder() -> None:
    allowed = set(PrivacyConfig.model_fields["fields"].annotation.__args__[0].__args__)  # type: ignore[union-attr]
    assert set(FIELD_BUILDERS) == allowed


@pytest.mark.parametrize("hit", [None, False])
def test_hotlist_only_lets_nothing_leave_for_a_vehicle_not_on_the_hotlist(hit: bool | None) -> None:
    policy = policy_for("hotlist_only", ("plate", "time", "seq", "site", "camera"))
    assert build_read_payload(make_pass(), policy=policy, node=NODE, seq=0, read_id="x", image=None,
                              hotlist_hit=hit) is None


def test_hotlist_only_hit_carries_the_plate_and_the_hit_flag() -> None:
    policy = policy_for("hotlist_only", ("plate", "time", "seq", "site", "camera"))
    payload = build_read_payload(make_pass("ab12 cde"), policy=policy, node=NODE, seq=0, read_id="x", image=None,
                                 hotlist_hit=True)
    assert payload is not None
    assert payload["plate"] == "AB12CDE"
    assert payload["hotlist_hit"] is True


def test_pseudonymised_payload_never_contains_the_plate_text() -> None:
    policy = policy_for("pseudonymised", ("plate", "time", "seq", "site", "camera", *OPTIONAL))
    payload = build_read_payload(make_pass(), policy=policy, node=NODE, seq=0, read_id="x", image=None,
                                 hotlist_hit=None, pseudonymiser=RotatingPseudonymiser(SECRET))
    assert payload is not None
    assert "AB12CDE" not in json.dumps(payload)
    assert re.fullmatch(r"[0-9a-f]{64}", payload["plate_hash"])


def test_pseudonymised_without_a_pseudonymiser_is_refused() -> None:
    policy = policy_for("pseudonymised", ("plate", "time", "seq", "site", "camera"))
    with pytest.raises(PolicyViolationError):
        build_read_payload(make_pass(), policy=policy, node=NODE, seq=0, read_id="x", image=None, hotlist_hit=None)


def test_pseudonym_is_hmac_of_the_normalised_plate_with_the_period_key() -> None:
    p = RotatingPseudonymiser(SECRET, "daily")
    digest, key_id = p.pseudonymise("ab12-cde", T0)
    period_key = hmac.new(SECRET, b"anpr-pseudonym/1/2026-11-22", hashlib.sha256).digest()
    assert digest == hmac.new(period_key, b"AB12CDE", hashlib.sha256).hexdigest()
    assert key_id == hashlib.sha256(SECRET).hexdigest()[:8] + "/2026-11-22"


def test_pseudonym_is_stable_within_a_period_and_changes_when_the_key_rotates() -> None:
    p = RotatingPseudonymiser(SECRET, "daily")
    same_day = p.pseudonymise("AB12CDE", T0 + timedelta(hours=10))
    assert p.pseudonymise("AB12CDE", T0) == same_day
    next_day = p.pseudonymise("AB12CDE", T0 + timedelta(days=1))
    assert next_day[0] != same_day[0]
    assert next_day[1] != same_day[1]
    assert period_label(T0, "weekly") == "2026-W47"
    assert period_label(T0, "monthly") == "2026-11"


def test_pseudonym_key_file_must_hold_a_long_hex_secret(tmp_path: Path) -> None:
    from edge.errors import ConfigError

    short = tmp_path / "short.key"
    short.write_text("# comment\nabcd\n")
    with pytest.raises(ConfigError, match="at least 32"):
        RotatingPseudonymiser.from_file(short)
    good = tmp_path / "good.key"
    good.write_text(SECRET.hex() + "\n")
    assert RotatingPseudonymiser.from_file(good).secret == SECRET
    assert SECRET.hex() not in repr(RotatingPseudonymiser.from_file(good))


def test_image_is_refused_when_the_policy_allows_none() -> None:
    policy = policy_for("plain", ("plate", "time", "seq", "site", "camera"), image="none")
    with pytest.raises(PolicyViolationError):
        build_read_payload(make_pass(), policy=policy, node=NODE, seq=0, read_id="x",
                           image=image_obj("plate_patch"), hotlist_hit=None)


def test_image_of_another_kind_or_with_faces_left_is_refused() -> None:
    policy = policy_for("plain", ("time", "seq", "site", "camera"), image="plate_patch")
    for bad in (image_obj("redacted_overview"), image_obj("plate_patch", faces=1),
                {**image_obj("plate_patch"), "exif": "x"}):
        with pytest.raises(PolicyViolationError):
            build_read_payload(make_pass(), policy=policy, node=NODE, seq=0, read_id="x", image=bad,
                               hotlist_hit=None)


def test_image_decision_follows_when_and_hit_raise() -> None:
    base = {"fields": ("time", "seq", "site", "camera"), "hotlist_file": "h.json"}
    on_hit = PrivacyConfig(**base, image="plate_patch", image_when="hotlist_hit")
    assert image_kind_for(on_hit, False) is None
    assert image_kind_for(on_hit, True) == "plate_patch"
    raised = PrivacyConfig(**base, image="plate_patch", hit_image="redacted_overview")
    assert image_kind_for(raised, False) == "plate_patch"
    assert image_kind_for(raised, True) == "redacted_overview"
    assert image_kind_for(PrivacyConfig(**base, hit_image="plate_patch"), None) is None


def test_clock_unsynced_is_present_only_when_true() -> None:
    policy = policy_for("plain", ("time", "seq", "site", "camera"))
    for flag in (False, True):
        payload = build_read_payload(make_pass(), policy=policy, node=NODE, seq=0, read_id="x", image=None,
                                     hotlist_hit=None, clock_unsynced=flag)
        assert payload is not None
        assert ("clock_unsynced" in payload) is flag


def test_allowed_fields_the_node_has_no_value_for_are_sent_with_a_documented_value_never_null() -> None:
    import dataclasses

    policy = policy_for("plain", ("plate", "time", "seq", "site", "camera", *OPTIONAL))
    unknown = dataclasses.replace(make_pass(), format_name=None, direction=None, zone=None)
    payload = build_read_payload(unknown, policy=policy, node=NODE, seq=0, read_id="depot-1.gate-a.0.0000abcd",
                                 image=None, hotlist_hit=None)
    assert payload is not None
    assert (payload["format"], payload["direction"], payload["zone"]) == ("none", "unknown", "none")
    assert None not in payload.values()
    validate("read", payload)
    known = build_read_payload(make_pass(), policy=policy, node=NODE, seq=0, read_id="depot-1.gate-a.0.0000abcd",
                               image=None, hotlist_hit=None)
    assert known is not None
    assert (known["format"], known["direction"], known["zone"]) == ("uk_current", "approaching", "lane-1")


def test_time_is_the_best_sightings_frame() -> None:
    policy = policy_for("plain", ("time", "seq", "site", "camera"))
    p = make_pass()
    payload = build_read_payload(p, policy=policy, node=NODE, seq=0, read_id="x", image=None, hotlist_hit=None)
    assert payload is not None
    assert payload["time"] == iso_ms(p.best.timestamp) != iso_ms(p.first_seen)


def test_times_are_utc_with_milliseconds_and_z() -> None:
    assert iso_ms(T0) == "2026-11-22T08:30:15.123Z"
    policy = policy_for("plain", ("time", "seq", "site", "camera", "first_seen", "last_seen"))
    payload = build_read_payload(make_pass(), policy=policy, node=NODE, seq=0, read_id="x", image=None,
                                 hotlist_hit=None)
    assert payload is not None
    assert payload["time"] == "2026-11-22T08:30:15.523Z"
    assert payload["first_seen"] == "2026-11-22T08:30:15.123Z"


def test_policy_version_is_a_hash_that_changes_with_the_policy() -> None:
    a = policy_version(PrivacyConfig())
    assert re.fullmatch(r"[0-9a-f]{64}", a)
    assert a == policy_version(PrivacyConfig())
    assert a != policy_version(PrivacyConfig(jpeg_quality=81))


def test_normalise_plate_strips_spaces_and_hyphens_and_refuses_other_characters() -> None:
    assert normalise_plate(" ab12-cde ") == "AB12CDE"
    with pytest.raises(ValueError, match="letters and digits"):
        normalise_plate("AB12;DROP")


def test_policy_needs_a_hotlist_file_for_hotlist_driven_modes() -> None:
    from pydantic import ValidationError

    for kwargs in ({"plate_mode": "hotlist_only"}, {"image": "plate_patch", "image_when": "hotlist_hit"},
                   {"hit_image": "plate_patch"}):
        with pytest.raises(ValidationError, match="hotlist_file"):
            PrivacyConfig(**kwargs)
