"""Release announcements on the control channel (issue 23): `edge-anpr fleet release announce VERSION --to ...`
signs an anpr.release-note/1 push; a node of the target (itself, its group, or everyone through group/all) verifies
it and writes the trigger the update service's path unit watches; nothing else runs on the node's threads. A real
Mosquitto with the example TLS and ACL (tests/fleet/test_fleet_channel.py's fixture)."""

from __future__ import annotations

import json
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import test_fleet_channel as channel
from support.pki import OPENSSL
from test_fleet_channel import GROUP, Fleet, _reasons, _wait

from edge.central.fleet import SIGNING_KEY, sign_push
from edge.central.fleet_bench import SimulatedNode
from edge.central.store.fleet import fleet_status, open_db
from edge.cli import main
from edge.fleet import signing
from edge.fleet.release import note
from edge.node.fleet import RELEASE_TRIGGER, TRIGGER_FORMAT

fleet = channel.fleet  # the fixture: a real Mosquitto with the example TLS and ACL, the centre's key, a PKI

pytestmark = [pytest.mark.integration, pytest.mark.skipif(OPENSSL is None, reason="openssl needed")]


def _announce(fleet: Fleet, store: Path, version: str, *to: str) -> int:
    keys = fleet.tmp / "keys"
    if not (keys / SIGNING_KEY).exists():
        keys.mkdir()
        signing.write_private_key(keys / SIGNING_KEY, fleet.key)
    pair = fleet.fleet_pair
    return main(["fleet", "release", "announce", version, *(a for t in to for a in ("--to", t)), "--keys", str(keys),
                 "--store", str(store), "--host", "localhost", "--port", str(fleet.broker.port), "--ca-file",
                 fleet.pki.ca_file, "--cert-file", pair.cert_file, "--key-file", pair.key_file])


def _announced(node: SimulatedNode) -> str | None:
    try:
        doc = json.loads((node.state / "fleet" / RELEASE_TRIGGER).read_text())
    except FileNotFoundError:
        return None
    assert doc["format"] == TRIGGER_FORMAT
    return str(doc["version"])


def test_an_announcement_reaches_its_group_then_everyone_and_writes_the_update_trigger(fleet: Fleet) -> None:
    store = fleet.tmp / "central.sqlite"
    with ExitStack() as stack:
        west = [stack.enter_context(fleet.node("site1", f"cam{i}")) for i in range(2)]
        alone = stack.enter_context(fleet.node("site1", "cam2", groups=()))
        assert all(n.publisher.wait_connected(10) for n in [*west, alone])
        assert _announce(fleet, store, "0.2.0", GROUP) == 0  # stage: the group first
        assert _wait(lambda: all(_announced(n) == "0.2.0" for n in west))
        assert _announced(alone) is None, "a node outside the group is not told"
        assert _announce(fleet, store, "0.2.0", "all") == 0  # then everyone
        assert _wait(lambda: _announced(alone) == "0.2.0")
        # the trigger file is written first, then the node records the announcement: wait for both
        assert _wait(lambda: all(n.fleet is not None and n.fleet.announced == "0.2.0" for n in [*west, alone]))
        assert alone.fleet is not None
        assert _wait(lambda: alone.fleet is not None and "release:group/all" in alone.fleet.health()["versions"])
        versions = alone.fleet.health()["versions"]
        assert versions == {"release:group/all": 1} and alone.fleet.health()["refusals"] == 0
    db = open_db(str(store))
    try:
        pending = {n.name: n.pending for n in fleet_status(db)}
    finally:
        db.close()
    assert pending == {}, "the store knows no node yet (no health stored): nothing is listed"


def test_a_replayed_or_unsigned_announcement_does_not_trigger_an_update(fleet: Fleet) -> None:
    with fleet.node("site1", "cam3", groups=()) as node, fleet.publisher() as pub:
        assert node.publisher.wait_connected(10)
        now = datetime.now(UTC)

        def push(version: int, release: str, key: signing.Ed25519PrivateKey = fleet.key) -> None:
            pub.publish(sign_push(key, kind="release", target="site1/cam3", version=version, data=note(release),
                                  now=now, expires=now + timedelta(hours=1)))

        push(2, "0.3.0")
        assert _wait(lambda: _announced(node) == "0.3.0")
        push(1, "0.1.0")  # an old announcement replayed
        assert _wait(lambda: _reasons(node) == ["rollback"])
        push(3, "0.1.0", key=signing.generate_key())
        assert _wait(lambda: _reasons(node) == ["rollback", "wrong_key"])
        assert _announced(node) == "0.3.0"


def test_only_a_release_announcement_goes_to_every_node(
    fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "list.json"
    plain.write_text("{}")
    assert main(["fleet", "hotlist", "push", str(plain), "--to", "all", "--store", str(tmp_path / "c.sqlite"),
                 "--insecure-lab-mode"]) == 2
    assert "only a release announcement goes to every node" in capsys.readouterr().err
    assert _announce(fleet, tmp_path / "c.sqlite", "latest", "all") == 2
    assert "release version 'latest'" in capsys.readouterr().err
