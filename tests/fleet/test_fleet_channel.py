"""The control channel end to end: a real Mosquitto with the example TLS and ACL, the centre's publisher, and
nodes running their own MQTT client and control channel (edge/node/fleet.py)."""

from __future__ import annotations

import secrets
import time
import zlib
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.broker import MosquittoBroker
from support.pki import OPENSSL, CertPair, TestPki, tls_listener_lines

from edge.central.fleet import BrokerOptions, ControlPublisher, Push, hotlist_push
from edge.central.fleet_bench import SimulatedNode
from edge.config.model import MqttConfig, TlsConfig
from edge.errors import BrokerError
from edge.fleet import payload as fp
from edge.fleet import signing
from edge.fleet.manifest import Manifest
from edge.node.fleet import read_store
from edge.privacy.hotlist import write_hotlist

pytestmark = [pytest.mark.integration, pytest.mark.skipif(OPENSSL is None, reason="openssl needed")]

GROUP = "west"
PLATES = ["AB12CDE", "XY51ZZZ", "OTV1G"]


@dataclass
class Fleet:
    broker: MosquittoBroker
    pki: TestPki
    tmp: Path
    key: signing.Ed25519PrivateKey
    secret: bytes
    fleet_pair: CertPair

    def publisher(self, pair: CertPair | None = None) -> ControlPublisher:
        pair = pair or self.fleet_pair
        return ControlPublisher(BrokerOptions(host="localhost", port=self.broker.port, ca_file=self.pki.ca_file,
                                              cert_file=pair.cert_file, key_file=pair.key_file, client_id="fleet",
                                              timeout_s=10))

    def node(self, site: str, camera: str, groups: tuple[str, ...] = (GROUP,)) -> SimulatedNode:
        pair = self.pki.issue(f"{site}-{camera}", f"{site}/{camera}")
        keyring = self.tmp / f"{site}-{camera}.keys.json"
        fp.write_keyring(keyring, {t: fp.target_key(self.secret, t)
                                   for t in (f"{site}/{camera}", *(f"group/{g}" for g in groups))})
        mqtt = MqttConfig(host="localhost", port=self.broker.port,
                          tls=TlsConfig(ca_file=self.pki.ca_file, cert_file=pair.cert_file, key_file=pair.key_file))
        return SimulatedNode(site, camera, self.tmp / "nodes" / f"{site}-{camera}", mqtt=mqtt,
                             public_key=self.tmp / "centre.pub", keyring=keyring, groups=groups)

    def push(self, target: str, version: int, *, plates: list[str] = PLATES, expires_in: float = 3600,
             key: signing.Ed25519PrivateKey | None = None) -> Push:
        now = datetime.now(UTC)
        plain = self.tmp / f"list-{version}.json"
        write_hotlist(plain, plates, list_id=f"op-{version}", valid_until=now + timedelta(days=1))
        return hotlist_push(plain, target=target, version=version, secret=self.secret, key=key or self.key, now=now,
                            expires=now + timedelta(seconds=expires_in))


@pytest.fixture
def fleet(mosquitto_factory: Callable[..., MosquittoBroker], tmp_path: Path) -> Fleet:
    pki = TestPki(tmp_path / "pki")
    lines = tls_listener_lines(pki, tmp_path)
    acl = tmp_path / "acl"  # the example ACL, and a group block per node as its comment shows
    blocks = "".join(f"user {s}/{c}\ntopic read anpr/ctl/group/{GROUP}/#\n"
                     for s, c in [("site1", f"cam{i}") for i in range(8)])
    acl.write_text(acl.read_text().replace("user central\n", blocks + "\nuser central\n", 1))
    broker = mosquitto_factory(listener_lines=lines)
    key = signing.generate_key()
    (tmp_path / "centre.pub").write_bytes(signing.public_pem(key.public_key()))
    return Fleet(broker, pki, tmp_path, key, secrets.token_bytes(32), pki.issue("fleet", "fleet"))


def _wait(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def _reasons(node: SimulatedNode) -> list[str]:
    assert node.fleet is not None
    return [r["reason"] for r in node.fleet.health().get("refused", [])]


def test_a_group_push_reaches_every_node_and_an_offline_node_gets_it_on_reconnect(fleet: Fleet) -> None:
    now = datetime.now(UTC)
    with ExitStack() as stack:
        online = [stack.enter_context(fleet.node("site1", f"cam{i}")) for i in range(4)]
        assert all(n.publisher.wait_connected(10) for n in online)
        with fleet.node("site1", "cam7") as late:  # connects once (its session and subscription), then is away
            assert late.publisher.wait_connected(10)
        time.sleep(0.3)
        with fleet.publisher() as pub:
            pub.publish(fleet.push(f"group/{GROUP}", 1))
            pub.publish(fleet.push("site1/cam0", 1, plates=["LN05ABC"]))
        assert _wait(lambda: all(n.version(f"group/{GROUP}") == 1 for n in online))
        assert _wait(lambda: online[0].version("site1/cam0") == 1)
        for n in online:
            assert {len(h) for h in n.hotlists()} >= {3}
            assert n.fleet is not None and n.fleet.health()["refusals"] == 0
        assert any(h.match("OTV1G", now) for h in online[1].hotlists())
        assert any(h.match("LN05ABC", now) for h in online[0].hotlists())
        assert not any(h.match("LN05ABC", now) for h in online[1].hotlists()), "another node's list is not its own"
        header, data = read_store(online[0].state / "fleet" / "hotlist-group.west.json")
        assert header["version"] == 1 and b"AB12CDE" not in zlib.decompress(data)  # keyed hashes only
        with fleet.node("site1", "cam7") as late:
            assert _wait(lambda: late.version(f"group/{GROUP}") == 1)
            assert sum(len(h) for h in late.hotlists()) == 3


def test_tampered_replayed_expired_wrongly_signed_and_truncated_pushes_are_refused(fleet: Fleet) -> None:
    with fleet.node("site1", "cam1", groups=()) as node, fleet.publisher() as pub:
        assert node.publisher.wait_connected(10)
        time.sleep(0.3)
        target = "site1/cam1"
        pub.publish(fleet.push(target, 5))
        assert _wait(lambda: node.version(target) == 5)
        cases: list[tuple[str, Push]] = []
        good = fleet.push(target, 6)
        tampered = list(good.chunks)
        tampered[0] = tampered[0][:-1] + bytes([tampered[0][-1] ^ 1])
        cases.append(("sha_mismatch", Push(good.manifest, tampered)))
        cases.append(("truncated", Push(fleet.push(target, 7).manifest, [fleet.push(target, 7).chunks[0][:-20]])))
        cases.append(("rollback", fleet.push(target, 4)))
        cases.append(("expired", fleet.push(target, 8, expires_in=-1)))
        cases.append(("wrong_key", fleet.push(target, 9, key=signing.generate_key())))
        forged = fleet.push(target, 10)  # its version raised after signing (the chunks follow it)
        doc = {k: v for k, v in forged.manifest.as_dict().items() if k != "schema"} | {"version": 11}
        cases.append(("bad_signature", Push(Manifest(**doc), [c.replace(b"\0" * 7 + b"\x0a", b"\0" * 7 + b"\x0b", 1)
                                                              for c in forged.chunks])))
        for reason, push in cases:
            before = len(_reasons(node))
            pub.publish(push)
            assert _wait(lambda n=before: len(_reasons(node)) > n), reason
            assert _reasons(node)[-1] == reason
        assert node.version(target) == 5, "the node keeps running on what it had"
        assert sum(len(h) for h in node.hotlists()) == 3
        assert node.fleet is not None and node.fleet.health()["refusals"] == len(cases)


def test_a_node_certificate_cannot_push(fleet: Fleet) -> None:
    with fleet.node("site1", "cam2") as victim:
        assert victim.publisher.wait_connected(10)
        attacker = fleet.pki.issue("attacker", "site1/cam3")
        with fleet.publisher(attacker) as pub, pytest.raises(BrokerError, match="Not authorized"):
            pub.publish(fleet.push("site1/cam2", 1))
        with fleet.publisher(attacker) as pub, pytest.raises(BrokerError, match="Not authorized"):
            pub.publish(fleet.push(f"group/{GROUP}", 1))
        time.sleep(0.5)
        assert victim.version("site1/cam2") == 0 and victim.version(f"group/{GROUP}") == 0


def test_a_push_signed_for_another_target_is_refused_as_wrong_target(fleet: Fleet) -> None:
    with fleet.node("site1", "cam4", groups=()) as node:
        assert node.publisher.wait_connected(10)
        time.sleep(0.3)
        other = fleet.push("site1/cam5", 1)  # validly signed, for another node: replayed onto this node's topic
        with fleet.publisher() as pub:
            pub.publish(Push(other.manifest, other.chunks))  # to cam5, as signed
            client = pub._client  # then the same bytes on cam4's topic, by hand
            info = client.publish("anpr/ctl/site1/cam4/hotlist", other.manifest.to_bytes(), qos=1, retain=True)
            info.wait_for_publish(5)
        assert _wait(lambda: _reasons(node) == ["wrong_target"])
        assert node.version("site1/cam4") == 0
