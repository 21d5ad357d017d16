"""No message can stop the central subscriber: each ends stored, duplicate or a dead letter, and is acknowledged.

Issue #12: one schema-valid read with seq 2^64 raised OverflowError in the MQTT thread (SQLite), a payload
nested 100,000 deep raised RecursionError (JSON lines); the subscriber stored nothing more and the broker
delivered the poison first again on every restart. A half-written last JSON line stopped listen at start,
and listen said nothing and exited 0 when it could not reach the broker.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.publish as single
import pytest
from support.broker import MosquittoBroker, free_port
from support.pki import OPENSSL, TestPki, tls_listener_lines
from support.reads import make_read, node_config, read_id

from edge.central.listen import ListenOptions, ListenStats, run_listen
from edge.central.store import parse_store
from edge.cli import main as cli_main

pytestmark = pytest.mark.integration

NODE = node_config()


def _publish(broker: MosquittoBroker, payloads: list[bytes], topic: str = "anpr/site1/cam1/reads") -> None:
    single.multiple([{"topic": topic, "payload": p, "qos": 1} for p in payloads],
                    hostname=broker.host, port=broker.port)


def _valid(seqs: range) -> list[bytes]:
    return [make_read(NODE, s).payload for s in seqs]


def _huge_seq() -> bytes:
    body = json.loads(make_read(NODE, 7).payload)
    body["seq"] = 2**64
    body["id"] = f"site1.cam1.{2**64}.0badc0de"
    return json.dumps(body).encode()


def _deep() -> bytes:
    return b"[" * 100_000 + b"]" * 100_000  # 200 KB


def _listen(broker: MosquittoBroker, out: Path, timeout_s: float, client_id: str = "central") -> ListenStats:
    result: list[ListenStats] = []
    options = ListenOptions(broker.host, broker.port, parse_store(str(out)), client_id=client_id,
                            timeout_s=timeout_s, connect_timeout_s=5)
    t = threading.Thread(target=lambda: result.append(run_listen(options)))
    t.start()
    t.join(timeout_s + 20)
    return result[0]


def _subscribe_session(broker: MosquittoBroker, out: Path) -> None:
    """A first short run creates the listener's persistent session, so what follows is queued for it."""
    _listen(broker, out, 0.5)


def test_a_read_with_a_seq_past_64_bits_is_a_dead_letter_and_the_reads_after_it_are_stored(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    out = tmp_path / "central.sqlite"
    _subscribe_session(mosquitto, out)
    _publish(mosquitto, [_huge_seq(), *_valid(range(5))])
    stats = _listen(mosquitto, out, 2.5)
    assert (stats.stored, stats.rejected) == (5, 1)
    with sqlite3.connect(out) as db:
        assert [r[0] for r in db.execute("SELECT seq FROM reads ORDER BY seq")] == [0, 1, 2, 3, 4]
        (reason,) = db.execute("SELECT reason FROM dead_letters").fetchone()
    assert "seq" in reason and "maximum" in reason
    again = _listen(mosquitto, out, 1.5)  # acknowledged: the broker does not deliver it again
    assert (again.received, again.rejected) == (0, 0)


def test_a_payload_nested_100000_deep_is_a_dead_letter_and_the_reads_after_it_are_stored(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    out = tmp_path / "central.jsonl"
    _subscribe_session(mosquitto, out)
    _publish(mosquitto, [_deep(), *_valid(range(5))])
    stats = _listen(mosquitto, out, 2.5)
    assert (stats.stored, stats.rejected) == (5, 1)
    assert [json.loads(line)["seq"] for line in out.read_text().splitlines()] == [0, 1, 2, 3, 4]
    (dead,) = [json.loads(line) for line in (tmp_path / "central.rejected.jsonl").read_text().splitlines()]
    assert "nested deeper" in dead["reason"] and dead["payload_bytes"] == 200_000
    again = _listen(mosquitto, out, 1.5)
    assert again.received == 0


@pytest.mark.parametrize("payload", [
    b"\xff\xfe not utf-8", b'{"seq": NaN}', b"[]", b'{"id": "x"}' + b" " * 10, b"",
])
def test_malformed_payloads_are_dead_letters_and_never_stop_the_stream(
    mosquitto: MosquittoBroker, tmp_path: Path, payload: bytes
) -> None:
    out = tmp_path / "central.sqlite"
    _subscribe_session(mosquitto, out)
    _publish(mosquitto, [payload, *_valid(range(3))])
    stats = _listen(mosquitto, out, 2.0)
    assert (stats.stored, stats.rejected) == (3, 1)


def test_listen_starts_when_the_json_lines_file_ends_in_a_half_written_line(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    out = tmp_path / "central.jsonl"
    whole = [json.dumps(json.loads(make_read(NODE, s).payload)) for s in range(2)]
    out.write_text("\n".join(whole) + "\n" + whole[0][:40])  # power cut in the middle of a line
    _subscribe_session(mosquitto, out)
    _publish(mosquitto, _valid(range(4)))
    stats = _listen(mosquitto, out, 2.0)
    assert (stats.stored, stats.duplicates) == (2, 2)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in lines] == [read_id(NODE, s) for s in range(4)]
    (aside,) = tmp_path.glob("central.jsonl.damaged-*")
    assert aside.read_text() == whole[0][:40]


def test_listen_says_so_and_exits_5_when_no_broker_listens(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    code = cli_main(["listen", "--insecure-lab-mode", "--port", str(port), "--store", str(tmp_path / "c.sqlite"),
                     "--connect-timeout", "1", "--timeout", "5"])
    assert code == 5
    assert f"cannot connect to the broker at localhost:{port}" in capsys.readouterr().err


@pytest.mark.skipif(OPENSSL is None, reason="openssl is needed to make the test CA")
def test_listen_says_so_and_exits_5_when_the_tls_handshake_fails(
    mosquitto_factory: Callable[..., MosquittoBroker], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = TestPki(tmp_path / "pki")
    broker = mosquitto_factory(listener_lines=tls_listener_lines(pki, tmp_path, "localhost"))
    central = pki.issue("central", "central")
    stranger = TestPki(tmp_path / "other-pki")  # a CA that did not sign the broker's certificate
    code = cli_main(["listen", "--host", "localhost", "--port", str(broker.port), "--ca-file", stranger.ca_file,
                     "--cert-file", central.cert_file, "--key-file", central.key_file,
                     "--store", str(tmp_path / "c.sqlite"), "--timeout", "5"])
    assert code == 5
    assert "TLS handshake with localhost" in capsys.readouterr().err
