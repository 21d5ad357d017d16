"""TLS with per-node certificates: CN "<site>/<camera>" is the username, the ACL confines each node."""

from __future__ import annotations

import json
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from support.broker import MosquittoBroker, Subscriber, TlsFiles
from support.pki import OPENSSL, CertPair, TestPki, tls_listener_lines
from support.reads import make_read, node_config, outbox_config

from edge.clock import SystemClock
from edge.config.model import MqttConfig, TlsConfig
from edge.errors import ConfigError
from edge.outbox.store import Outbox
from edge.publish.mqtt import MqttPublisher

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(OPENSSL is None, reason="openssl is needed to make the test CA"),
]

REPO = Path(__file__).resolve().parents[2]


@dataclass
class TlsSetup:
    broker: MosquittoBroker
    pki: TestPki
    node1: CertPair
    node2: CertPair
    central: CertPair

    def mqtt(self, pair: CertPair, host: str = "127.0.0.1") -> MqttConfig:
        tls = TlsConfig(ca_file=self.pki.ca_file, cert_file=pair.cert_file, key_file=pair.key_file)
        return MqttConfig(host=host, port=self.broker.port, tls=tls)

    def central_subscriber(self, topic: str = "anpr/#") -> Subscriber:
        files = TlsFiles(self.pki.ca_file, self.central.cert_file, self.central.key_file)
        return Subscriber(self.broker.host, self.broker.port, topic, tls=files).start()


def _tls_broker(factory: Callable[..., MosquittoBroker], tmp_path: Path, server_name: str) -> TlsSetup:
    pki = TestPki(tmp_path / "pki")
    broker = factory(listener_lines=tls_listener_lines(pki, tmp_path, server_name))
    return TlsSetup(broker, pki, pki.issue("node1", "site1/cam1"), pki.issue("node2", "site1/cam2"),
                    pki.issue("central", "central"))


@pytest.fixture
def tls(mosquitto_factory: Callable[..., MosquittoBroker], tmp_path: Path) -> TlsSetup:
    return _tls_broker(mosquitto_factory, tmp_path, "localhost")


def test_node_with_its_certificate_publishes_over_tls(tls: TlsSetup, tmp_path: Path) -> None:
    node = node_config("site1", "cam1")
    central = tls.central_subscriber()
    with Outbox(tmp_path / "o.sqlite", outbox_config(), SystemClock()) as box:
        for seq in range(5):
            box.put(make_read(node, seq))
        with MqttPublisher(tls.mqtt(tls.node1), node, box, SystemClock(), "1.0") as pub:
            assert pub.wait_connected(10)
            assert pub.flush(10)
    got = central.wait_for(5, 5, where=lambda m: m.topic.endswith("/reads"))
    central.stop()
    assert [json.loads(m.payload)["seq"] for m in got] == [0, 1, 2, 3, 4]


def test_client_without_certificate_is_refused(tls: TlsSetup) -> None:
    results: list[str] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.tls_set(ca_certs=tls.pki.ca_file)
    client.on_connect = lambda c, u, f, rc, p: results.append(str(rc))
    client.on_disconnect = lambda c, u, f, rc, p: results.append(f"disconnected: {rc}")
    try:
        client.connect(tls.broker.host, tls.broker.port)
        client.loop_start()
        time.sleep(1.5)
    except ssl.SSLError as exc:  # the broker may end the handshake at once (a refused port is not this)
        results.append(f"handshake failed: {exc}")
    finally:
        client.loop_stop()
    assert results, "the broker neither accepted nor refused: nothing was tested"
    assert "Success" not in results


def test_node_with_another_nodes_certificate_cannot_publish_here(tls: TlsSetup, tmp_path: Path) -> None:
    node = node_config("site1", "cam1")  # topics of cam1, certificate of cam2
    central = tls.central_subscriber()
    with Outbox(tmp_path / "o.sqlite", outbox_config(), SystemClock()) as box:
        box.put(make_read(node, 0))
        with MqttPublisher(tls.mqtt(tls.node2), node, box, SystemClock(), "1.0", refused_retry_s=60) as pub:
            pub.wait_connected(3)
            assert not pub.flush(2)
        assert box.depth() == 1  # kept for when the identity is fixed, not lost
    time.sleep(0.3)
    leaked = [m for m in central.messages if m.topic.startswith("anpr/site1/cam1/")]
    central.stop()
    assert leaked == []


def test_broker_certificate_for_another_host_name_is_not_trusted(
    mosquitto_factory: Callable[..., MosquittoBroker], tmp_path: Path
) -> None:
    setup = _tls_broker(mosquitto_factory, tmp_path, "broker.elsewhere.example")
    node = node_config("site1", "cam1")
    with Outbox(tmp_path / "o.sqlite", outbox_config(), SystemClock()) as box, MqttPublisher(
        setup.mqtt(setup.node1), node, box, SystemClock(), "1.0"
    ) as pub:
        assert not pub.wait_connected(2)
        assert not pub.connected
    # control: the certificate is otherwise good; without the host name check the same node connects
    results: list[str] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.tls_set(ca_certs=setup.pki.ca_file, certfile=setup.node1.cert_file, keyfile=setup.node1.key_file)
    client.tls_insecure_set(True)
    client.on_connect = lambda c, u, f, rc, p: results.append(str(rc))
    client.connect(setup.broker.host, setup.broker.port)
    client.loop_start()
    deadline = time.monotonic() + 5
    while not results and time.monotonic() < deadline:
        time.sleep(0.05)
    client.loop_stop()
    client.disconnect()
    assert results == ["Success"]


def test_key_file_readable_by_others_refuses_to_start(tls: TlsSetup, tmp_path: Path) -> None:
    os.chmod(tls.node1.key_file, 0o644)
    node = node_config("site1", "cam1")
    with Outbox(tmp_path / "o.sqlite", outbox_config(), SystemClock()) as box:
        publisher = MqttPublisher(tls.mqtt(tls.node1), node, box, SystemClock(), "1.0")
        with pytest.raises(ConfigError, match="chmod 600"), publisher:
            pass


def test_listen_over_tls_stores_the_nodes_reads(tls: TlsSetup, tmp_path: Path) -> None:
    import threading

    from edge.central.listen import ListenOptions, ListenStats, ListenTls, run_listen
    from edge.central.store import parse_store

    out = tmp_path / "central.jsonl"
    stats: list[ListenStats] = []
    creds = ListenTls(tls.pki.ca_file, tls.central.cert_file, tls.central.key_file)
    options = ListenOptions(tls.broker.host, tls.broker.port, parse_store(str(out)), tls=creds,
                            topics=("anpr/+/+/reads",), client_id="central", max_reads=3, timeout_s=15)
    listener = threading.Thread(target=lambda: stats.append(run_listen(options)))
    listener.start()
    time.sleep(0.5)
    node = node_config("site1", "cam1")
    with Outbox(tmp_path / "o.sqlite", outbox_config(), SystemClock()) as box:
        for seq in range(3):
            box.put(make_read(node, seq))
        with MqttPublisher(tls.mqtt(tls.node1), node, box, SystemClock(), "1.0") as pub:
            assert pub.flush(10)
    listener.join(20)
    assert stats[0].stored == 3
    assert [json.loads(line)["seq"] for line in out.read_text().splitlines()] == [0, 1, 2]
