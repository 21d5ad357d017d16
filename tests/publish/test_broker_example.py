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


def _example_lines(pki: TestPki, server: CertPair, acl: Path) -> tuple[str, ...]:
    """The example's settings with this test's paths; listener, persistence and logs from the fixture."""
    replace = {"cafile": pki.ca_file, "certfile": server.cert_file, "keyfile": server.key_file, "acl_file": str(acl)}
    skip = ("listener", "persistence", "persistence_location", "autosave_interval", "log_dest", "log_type",
            "max_queued_messages", "max_inflight_messages")
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


def _publish(host: str, port: int, pki: TestPki, pair: CertPair, topic: str) -> list[str]:
    results: list[str] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.tls_set(ca_certs=pki.ca_file, certfile=pair.cert_file, keyfile=pair.key_file)
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
    pki = TestPki(tmp_path / "pki")
    server = pki.issue("broker", "localhost", server=True)
    acl = tmp_path / "acl"
    acl.write_text((CONF / "acl.example").read_text())
    broker = mosquitto_factory(listener_lines=_example_lines(pki, server, acl))
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
