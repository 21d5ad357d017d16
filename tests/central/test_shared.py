"""Several `edge-anpr listen` processes on one MQTT 5 shared subscription, into a real PostgreSQL.

Three listeners share the stream; one is SIGKILLed mid-stream and restarted under its client id (as systemd's
Restart=always does): every read is a row, none is stored twice, and each listener took a share.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.broker import MosquittoBroker
from support.pki import OPENSSL, TestPki, tls_listener_lines
from support.reads import make_read, node_config, outbox_config

from edge.central.bench import run_once
from edge.central.listen import ListenOptions, ListenStats, ListenTls, run_listen
from edge.central.store import open_store, parse_store
from edge.cli import main as cli_main
from edge.clock import SystemClock
from edge.config.model import MqttConfig, TlsConfig
from edge.outbox.store import Outbox
from edge.publish.mqtt import MqttPublisher

pytestmark = pytest.mark.integration


def _migrated(url: str, tmp_path: Path) -> str:
    open_store(parse_store(url, images=tmp_path / "images")).close()
    return url


def test_three_listeners_share_the_stream_and_one_killed_mid_stream_loses_nothing_and_stores_nothing_twice(
    mosquitto: MosquittoBroker, postgres_url: str, tmp_path: Path
) -> None:
    url = _migrated(postgres_url, tmp_path)
    result = run_once(mosquitto.host, mosquitto.port, url, tmp_path, listeners=3, reads=3000, kill=True,
                      timeout_s=120)
    assert result.killed == 1
    assert (result.lost, result.stored_twice) == (0, 0)
    assert all(n > 0 for n in result.per_listener_stored)  # the restarted one counts from its restart


def test_three_listeners_on_one_shared_subscription_each_store_a_share_once(
    mosquitto: MosquittoBroker, postgres_url: str, tmp_path: Path
) -> None:
    url = _migrated(postgres_url, tmp_path)
    result = run_once(mosquitto.host, mosquitto.port, url, tmp_path, listeners=3, reads=900, kill=False,
                      timeout_s=60)
    assert (result.lost, result.stored_twice) == (0, 0)
    assert sum(result.per_listener_stored) == 900
    assert min(result.per_listener_stored) > 0


def test_bench_central_prints_reads_per_second_and_losses_as_json(
    mosquitto: MosquittoBroker, postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _migrated(postgres_url, tmp_path)
    code = cli_main(["bench", "central", "--host", mosquitto.host, "--port", str(mosquitto.port), "--store", url,
                     "--reads", "300", "--listeners", "1", "--no-kill", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (run,) = out["runs"]
    assert (run["listeners"], run["reads"], run["lost"], run["stored_twice"]) == (1, 300, 0, 0)
    assert run["reads_per_s"] > 0


@pytest.mark.skipif(OPENSSL is None, reason="openssl is needed to make the test CA")
def test_a_shared_subscription_passes_the_example_acl_over_tls(
    mosquitto_factory: Callable[..., MosquittoBroker], tmp_path: Path
) -> None:
    pki = TestPki(tmp_path / "pki")
    broker = mosquitto_factory(listener_lines=tls_listener_lines(pki, tmp_path, "localhost"))
    central, node = pki.issue("central", "central"), pki.issue("node1", "site1/cam1")
    out = tmp_path / "c.sqlite"
    options = ListenOptions("localhost", broker.port, parse_store(str(out)), share="central",
                            client_id="central-1", tls=ListenTls(pki.ca_file, central.cert_file, central.key_file),
                            max_reads=3, timeout_s=15)
    stats: list[ListenStats] = []
    thread = threading.Thread(target=lambda: stats.append(run_listen(options)))
    thread.start()
    time.sleep(1.0)
    tls = TlsConfig(ca_file=pki.ca_file, cert_file=node.cert_file, key_file=node.key_file)
    mqtt = MqttConfig(host="localhost", port=broker.port, tls=tls)
    node_cfg = node_config("site1", "cam1")
    with Outbox(tmp_path / "o.sqlite", outbox_config(), SystemClock()) as box:
        for seq in range(3):
            box.put(make_read(node_cfg, seq))
        with MqttPublisher(mqtt, node_cfg, box, SystemClock(), "1.0") as pub:
            assert pub.flush(10)
    thread.join(20)
    assert stats[0].stored == 3


def test_bench_central_refuses_a_database_that_holds_reads(postgres_url: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from edge.central.bench import read_payloads
    from edge.central.intake import Intake

    store = open_store(parse_store(postgres_url, images=tmp_path / "images"))
    store.write([Intake(SystemClock()).judge(topic, payload) for topic, payload, _ in read_payloads(1)])
    store.close()
    code = cli_main(["bench", "central", "--host", "127.0.0.1", "--port", "1", "--store", postgres_url])
    assert code == 2
    assert "give --store an empty database" in capsys.readouterr().err
