"""The reference central subscriber against a real Mosquitto: validates, drops duplicates by id, stores once."""

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

from edge.central.listen import ListenOptions, ListenStats, configure_parser, main, run_listen
from edge.central.store import parse_store
from edge.errors import ConfigError

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
    options = ListenOptions(broker.host, broker.port, parse_store(str(out), fmt=fmt), client_id=f"listen-{fmt}",
                            timeout_s=3)
    t = threading.Thread(target=lambda: result.append(run_listen(options)))
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
    assert (stats.received, stats.stored, stats.duplicates, stats.rejected) == (7, 3, 2, 2)
    rejected = [json.loads(line) for line in (tmp_path / "reads.rejected.jsonl").read_text().splitlines()]
    assert ["colour" in r["reason"] for r in rejected] == [True, False]
    assert "claims site/camera site1/cam2" in rejected[1]["reason"]


def test_listen_writes_typed_sqlite_rows_keyed_by_id(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    out = tmp_path / "reads.sqlite"
    stats = _listen(mosquitto, out, "sqlite")
    with sqlite3.connect(out) as db:
        rows = db.execute("SELECT seq, site, camera, plate, confidence FROM reads ORDER BY seq").fetchall()
        dead = db.execute("SELECT topic, reason FROM dead_letters ORDER BY id").fetchall()
    assert rows == [(0, "site1", "cam1", "AB00CDE", 0.9), (1, "site1", "cam1", "AB01CDE", 0.9),
                    (2, "site1", "cam1", "AB02CDE", 0.9)]
    assert [t for t, _ in dead] == ["anpr/site1/cam1/reads"] * 2
    assert (stats.stored, stats.duplicates, stats.rejected) == (3, 2, 2)


def test_listen_cli_needs_certificates_unless_lab_mode(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    args = parser.parse_args(["--out", str(tmp_path / "x.jsonl")])
    with pytest.raises(ConfigError, match="--ca-file"):
        main(args)


def test_listen_cli_refuses_a_share_group_without_a_client_id_of_its_own(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    args = parser.parse_args(["--insecure-lab-mode", "--store", str(tmp_path / "x.sqlite"), "--share", "central"])
    with pytest.raises(ConfigError, match="--client-id"):
        main(args)


def test_print_shows_each_stored_read_and_where_its_image_file_is(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import base64

    from edge.central.images import ImageFiles
    from edge.central.intake import Intake
    from edge.central.listen import ReadShower
    from edge.central.records import ReadRecord
    from edge.clock import SystemClock

    image = {"kind": "plate_patch", "content_type": "image/jpeg", "width": 10, "height": 4,
             "data": base64.b64encode(b"\xff\xd8x\xff\xd9").decode(),
             "redaction": {"detector": "d", "model_sha256": "0" * 64, "threshold": 0.3, "regions": 2,
                           "second_pass_faces": 0}}
    record = Intake(SystemClock()).judge("anpr/site1/cam1/reads",
                                         make_read(node_config(), 7, extra={"image": image}).payload)
    assert isinstance(record, ReadRecord)
    ReadShower(ImageFiles(tmp_path / "images"))(record)
    line = capsys.readouterr().out
    assert "seq    7" in line and "AB07CDE" in line and "conf 0.90" in line
    assert f"image {tmp_path / 'images'}/" in line and f"{record.id}.jpg (plate_patch, 2 face regions" in line


def test_print_labels_the_read_time_and_an_unknown_direction_and_counts_in_words(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import base64

    from edge.central.images import ImageFiles
    from edge.central.intake import Intake
    from edge.central.listen import ReadShower
    from edge.central.records import ReadRecord
    from edge.clock import SystemClock

    image = {"kind": "plate_patch", "content_type": "image/jpeg", "width": 10, "height": 4,
             "data": base64.b64encode(b"\xff\xd8x\xff\xd9").decode(),
             "redaction": {"detector": "d", "model_sha256": "0" * 64, "threshold": 0.3, "regions": 1,
                           "second_pass_faces": 0}}
    read = make_read(node_config(), 3, extra={"image": image, "direction": "unknown"})
    record = Intake(SystemClock()).judge("anpr/site1/cam1/reads", read.payload)
    assert isinstance(record, ReadRecord)
    ReadShower(ImageFiles(tmp_path / "images"))(record)
    line = capsys.readouterr().out
    assert f"time (best sighting) {json.loads(read.payload)['time']}" in line  # which time: the payload's
    assert "direction unknown" in line
    assert "(plate_patch, 1 face region redacted)" in line


def test_listen_cli_takes_its_retention_from_a_file_and_purges_nothing_with_no_purge(tmp_path: Path) -> None:
    from edge.central.listen import options_from_args

    parser = argparse.ArgumentParser()
    configure_parser(parser)
    policy = tmp_path / "retention.yaml"
    policy.write_text("retention:\n  non_hit_reads_s: 3600\n")
    store = ["--insecure-lab-mode", "--store", str(tmp_path / "x.sqlite")]
    options = options_from_args(parser.parse_args([*store, "--retention", str(policy)]))
    assert options.retention is not None and options.retention.non_hit_reads_s == 3600
    assert options_from_args(parser.parse_args([*store, "--no-purge"])).retention is None
