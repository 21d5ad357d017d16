"""The node's control channel inside the node: pushed lists join the local one in the privacy stage's matcher."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from support.reads import SettableClock

from edge.app import _fleet_node
from edge.central.fleet import hotlist_push
from edge.config import parse_config
from edge.fleet import payload as fp
from edge.fleet import signing
from edge.fleet.topics import chunk_topic, manifest_topic
from edge.privacy.hotlist import Hotlist, write_hotlist
from edge.privacy.stage import PrivacyStage

NOW = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


def test_a_pushed_list_is_matched_beside_the_local_one_and_survives_a_restart(tmp_path: Path) -> None:
    key, secret = signing.generate_key(), secrets.token_bytes(32)
    (tmp_path / "centre.pub").write_bytes(signing.public_pem(key.public_key()))
    fp.write_keyring(tmp_path / "ring.json", {"site1/cam1": fp.target_key(secret, "site1/cam1")})
    config = parse_config({
        "node": {"site": "site1", "camera": "cam1", "state_dir": str(tmp_path)},
        "mqtt": {"host": "localhost", "port": 1883, "insecure_lab_mode": True},
        "fleet": {"public_key_file": str(tmp_path / "centre.pub"), "hotlist_keys_file": str(tmp_path / "ring.json")},
    }, origin="test")
    clock = SettableClock(NOW)
    local = Hotlist.from_plates(["LOCAL1"], key=b"k" * 32, list_id="local", valid_until=NOW + timedelta(days=1),
                                grace=timedelta(0))
    stage = PrivacyStage(config.privacy, config.node, "anpr/site1/cam1/reads", redactor=None, clock=clock,
                         hotlist=local)
    fleet = _fleet_node(config, tmp_path, clock, stage, local)
    assert fleet is not None and fleet.subscriptions == ["anpr/ctl/site1/cam1/#", "anpr/ctl/group/all/release/#"]
    plain = tmp_path / "list.json"
    write_hotlist(plain, ["AB12CDE"], list_id="pushed", valid_until=NOW + timedelta(hours=1))
    push = hotlist_push(plain, target="site1/cam1", version=3, secret=secret, key=key, now=NOW,
                        expires=NOW + timedelta(days=1))
    for i, chunk in enumerate(push.chunks):
        fleet.handle(chunk_topic("anpr", "site1/cam1", "hotlist", i), chunk)
    fleet.handle(manifest_topic("anpr", "site1/cam1", "hotlist"), push.manifest.to_bytes())
    matcher = stage._hotlist  # the matcher reads are checked against
    assert matcher is not None
    assert matcher.match("AB12CDE", NOW) and matcher.match("LOCAL1", NOW) and not matcher.match("ZZ99ZZZ", NOW)
    restarted = _fleet_node(config, tmp_path, clock, stage, None)
    assert restarted is not None and [len(h) for h in restarted.hotlists()] == [1]
    assert stage._hotlist is not None and stage._hotlist.match("AB12CDE", NOW)
    clock.advance(2 * 86_400)  # past valid_until + the default grace of a day: the list is dropped and deleted
    assert not stage._hotlist.match("AB12CDE", clock.now())
    assert not (tmp_path / "fleet" / "hotlist-site1.cam1.json").exists()
    assert restarted.health()["versions"] == {"hotlist:site1/cam1": 3}, "the version stays: no rollback later"
