"""The reference central subscriber: validates, drops duplicates by id, writes JSON lines or SQLite."""

from __future__ import annotations

import argparse
import json
import sqlite3
import threading
from pathlib import Path

import paho.mqtt.publish as single
import pytest
from support.broker import MosquittoBroker
from support.reads import make_read, node_config

from edge.central.listen import ListenStats, configure_parser, main, run_listen

pytestmark = pytest.mark.integration


def _publish_mix(broker: MosquittoBroker) -> None:
    node = node_config()
    msgs = [make_read(node, s) for s in range(3)]
    bad = make_read(node, 3, extra={"colour": "red"})
    forged = make_read(node_config("site1", "cam2"), 4)
    batch = [
        {"topic": m.topic, "payload": m.payload, "qos": 1}
        for m in (msgs[0], msgs[1], msgs[1], bad, msgs[2], msgs[0])
    ]
    batch.append({"topic": "anpr/site1/cam1/reads", "payload": forged.payload, "qos": 1})  # claims cam2
    single.multiple(batch, hostname=broker.host, port=broker.port)


def _listen(broker: MosquittoBroker, out: Path, fmt: str) -> ListenStats:
    result: list[ListenStats] = []
    t = threading.Thread(target=lambda: result.append(run_listen(
        broker.host, broker.port, tls=None, topic="anpr/+/+/reads", out_path=out, fmt=fmt,  # type: ignore[arg-type]
        client_id=f"listen-{fmt}", max_reads=3, timeout_s=10)))
    t.start()
    threading.Event().wait(0.5)  # subscribed
    _publish_mix(broker)
    t.join(15)
    return result[0]


def test_listen_writes_each_valid_read_once_as_json_lines(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    out = tmp_path / "reads.jsonl"
    stats = _listen(mosquitto, out, "jsonl")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["seq"] for r in lines] == [0, 1, 2]
    assert stats.stored == 3
    assert stats.duplicates >= 1
    assert stats.invalid >= 1


def test_listen_writes_sqlite_keyed_by_id(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    out = tmp_path / "reads.sqlite"
    _listen(mosquitto, out, "sqlite")
    with sqlite3.connect(out) as db:
        rows = db.execute("SELECT seq, site, camera FROM reads ORDER BY seq").fetchall()
    assert rows == [(0, "site1", "cam1"), (1, "site1", "cam1"), (2, "site1", "cam1")]


def test_listen_cli_needs_certificates_unless_lab_mode(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    args = parser.parse_args(["--out", str(tmp_path / "x.jsonl")])
    from edge.errors import ConfigError

    with pytest.raises(ConfigError, match="--ca-file"):
        main(args)
