"""config/mosquitto/mosquitto.conf.example starts a real Mosquitto and enforces TLS + the ACL."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from support.broker import MosquittoBroker, Subscriber, TlsFiles
from support.pki import OPENSSL, CertPair, TestPki

pytestmark = [pytest.mark.integration, pytest.mark.skipif(OPENSSL is None, reason="openssl needed")]

CONF = Path(__file__).resolve().parents[2] / "config" / "mosquitto"


def _example_lines(pki: TestPki, server: CertPair, acl: Path, *, autosave: bool = False) -> tuple[str, ...]:
    """The example's settings with this test's paths; listener, persistence and logs from the fixture (with
    ``autosave`` the example's own autosave settings too)."""
    replace = {"cafile": pki.ca_file, "certfile": server.cert_file, "keyfile": server.key_file, "acl_file": str(acl)}
    skip = ("listener", "persistence", "persistence_location", "log_dest", "log_type", "max_queued_messages",
            "max_inflight_messages") + (() if autosave else ("autosave_interval", "autosave_on_changes"))
    lines = []
    for raw in (CONF / "mosquitto.conf.example").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key = re.split(r"\s+", line, maxsplit=1)[0]
        if key in skip:
            continue
        lines.append(f"{key} {replace[key]}" if key in replace else line)
    return tuple(lines)


def _example_broker(
    mosquitto_factory: Callable[..., MosquittoBroker], tmp_path: Path, *, autosave: bool = False, **kwargs: object
) -> tuple[TestPki, MosquittoBroker]:
    """A test CA and a Mosquitto run with the example's settings and ACL (``kwargs`` go to the factory)."""
    pki = TestPki(tmp_path / "pki")
    server = pki.issue("broker", "localhost", server=True)
    acl = tmp_path / "acl"
    acl.write_text((CONF / "acl.example").read_text())
    return pki, mosquitto_factory(listener_lines=_example_lines(pki, server, acl, autosave=autosave), **kwargs)


def _tls_client(pki: TestPki, pair: CertPair, client_id: str = "") -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    client.tls_set(ca_certs=pki.ca_file, certfile=pair.cert_file, keyfile=pair.key_file)
    return client


def _publish(host: str, port: int, pki: TestPki, pair: CertPair, topic: str) -> list[str]:
    results: list[str] = []
    client = _tls_client(pki, pair)
    client.on_publish = lambda c, u, mid, rc, p: results.append(str(rc))
    client.connect(host, port)
    client.loop_start()
    client.publish(topic, b"{}", qos=1)
    deadline = time.monotonic() + 5
    while not results and time.monotonic() < deadline:
        time.sleep(0.02)
    client.disconnect()
    client.loop_stop()
    return results


def test_example_config_confines_each_node_to_its_topics(
    mosquitto_factory: Callable[..., MosquittoBroker], tmp_path: Path
) -> None:
    pki, broker = _example_broker(mosquitto_factory, tmp_path)
    gate1 = pki.issue("gate1", "depot-north/gate1")
    central = pki.issue("central", "central")
    sub = Subscriber(broker.host, broker.port, "anpr/#",
                     tls=TlsFiles(pki.ca_file, central.cert_file, central.key_file)).start()
    assert _publish(broker.host, broker.port, pki, gate1, "anpr/depot-north/gate1/reads") == ["Success"]
    assert _publish(broker.host, broker.port, pki, gate1, "anpr/depot-north/gate2/reads") == ["Not authorized"]
    assert _publish(broker.host, broker.port, pki, gate1, "anpr/other-site/gate1/reads") == ["Not authorized"]
    time.sleep(0.2)
    sub.stop()
    assert [m.topic for m in sub.messages] == ["anpr/depot-north/gate1/reads"]


def _connected_client(broker: MosquittoBroker, pki: TestPki, pair: CertPair, client_id: str,
                      events: list[str]) -> paho.Client:
    client = _tls_client(pki, pair, client_id)
    client.on_connect = lambda c, u, f, rc, p: events.append(f"connect {rc}")
    client.on_disconnect = lambda c, u, f, rc, p: events.append(f"disconnect {rc}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    deadline = time.monotonic() + 5
    while not events and time.monotonic() < deadline:
        time.sleep(0.02)
    return client


def test_a_node_cannot_take_another_nodes_client_id_and_push_it_off(
    mosquitto_factory: Callable[..., MosquittoBroker], tmp_path: Path
) -> None:
    pki, broker = _example_broker(mosquitto_factory, tmp_path)
    gate1, gate2 = pki.issue("gate1", "depot-north/gate1"), pki.issue("gate2", "depot-north/gate2")
    victim_events: list[str] = []
    attacker_events: list[str] = []
    victim = _connected_client(broker, pki, gate2, "depot-north-gate2", victim_events)
    attacker = _connected_client(broker, pki, gate1, "depot-north-gate2", attacker_events)
    time.sleep(1.0)
    try:
        assert victim_events == ["connect Success"], "the victim stays connected (the old example: session taken over)"
        assert attacker_events == ["connect Success"], "the attacker is connected, but as its own identity"
        assert "depot-north/gate1" in broker.log_tail(40)
    finally:
        for client in (victim, attacker):
            client.disconnect()
            client.loop_stop()


def test_reads_the_broker_acknowledged_survive_it_being_killed_while_the_central_subscriber_is_away(
    mosquitto_factory: Callable[..., MosquittoBroker], tmp_path: Path
) -> None:
    from support.reads import make_read, node_config, outbox_config, seqs_of

    from edge.clock import SystemClock
    from edge.config.model import MqttConfig, TlsConfig
    from edge.outbox.store import Outbox
    from edge.publish.mqtt import MqttPublisher

    pki, broker = _example_broker(mosquitto_factory, tmp_path, autosave=True, persistence=True)
    central_pair, gate1 = pki.issue("central", "central"), pki.issue("gate1", "site1/cam1")
    central_tls = TlsFiles(pki.ca_file, central_pair.cert_file, central_pair.key_file)
    Subscriber(broker.host, broker.port, "anpr/+/+/reads", client_id="central", persistent=True,
               tls=central_tls).start().stop()  # its session and subscription; then it is away
    node = node_config("site1", "cam1")
    mqtt = MqttConfig(host="localhost", port=broker.port, tls=TlsConfig(ca_file=pki.ca_file,
                      cert_file=gate1.cert_file, key_file=gate1.key_file))
    with Outbox(tmp_path / "outbox.sqlite", outbox_config(), SystemClock()) as box, MqttPublisher(
        mqtt, node, box, SystemClock(), "1.0", reconnect_max_s=1
    ) as pub:
        for kill in range(3):
            assert pub.wait_connected(10)
            for seq in range(kill * 10, kill * 10 + 10):
                box.put(make_read(node, seq))
            pub.notify()
            assert pub.flush(10)  # acknowledged by the broker, deleted from the node
            broker.kill()  # SIGKILL: no save on the way out (the old example saved once a minute)
            broker.start()
        assert pub.reads_published == 30
    central = Subscriber(broker.host, broker.port, "anpr/+/+/reads", client_id="central", persistent=True,
                         tls=central_tls).start()
    try:
        got = central.wait_for(30, 10)
    finally:
        central.stop()
    assert sorted(seqs_of([m.payload for m in got])) == list(range(30))
