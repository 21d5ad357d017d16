"""MqttPublisher against a real Mosquitto on loopback: order, acks, outages, status and last will."""

from __future__ import annotations

import base64
import json
import logging
import time
from pathlib import Path

import pytest
from support.broker import MosquittoBroker, Subscriber
from support.reads import first_arrivals, lab_mqtt, make_read, node_config, outbox_config, seqs_of

from edge.clock import SystemClock
from edge.node.health import HealthCollector, Versions
from edge.outbox.store import Outbox
from edge.pipeline import PipelineStats
from edge.publish.mqtt import MqttPublisher
from edge.publish.schema import InvalidMessageError

pytestmark = pytest.mark.integration


def test_reads_arrive_in_order_with_properties_and_are_removed_once_acked(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    node = node_config()
    sub = Subscriber(mosquitto.host, mosquitto.port, "anpr/site1/cam1/reads").start()
    with Outbox(tmp_path / "outbox.sqlite", outbox_config(), SystemClock()) as box:
        for seq in range(50):
            box.put(make_read(node, seq))
        with MqttPublisher(lab_mqtt(mosquitto.host, mosquitto.port), node, box, SystemClock(), "0.1.0") as pub:
            assert pub.wait_connected(10)
            assert pub.flush(20)
            assert box.depth() == 0
            assert pub.reads_published == 50
        got = sub.wait_for(50, 10)
    sub.stop()
    assert seqs_of([m.payload for m in got]) == list(range(50))
    props = got[0].properties
    assert props["ContentType"] == "application/json"
    assert props["PayloadFormatIndicator"] == 1
    assert props["UserProperty"] == [("schema", "anpr.read/1")]
    assert 0 < int(props["MessageExpiryInterval"]) <= 86_400  # type: ignore[call-overload]


def test_broker_outage_mid_run_loses_nothing_and_keeps_order(
    mosquitto_factory: object, tmp_path: Path
) -> None:
    broker: MosquittoBroker = mosquitto_factory(persistence=True)  # type: ignore[operator]
    node = node_config()
    sub = Subscriber(broker.host, broker.port, "anpr/+/+/reads", client_id="central", persistent=True).start()
    with Outbox(tmp_path / "outbox.sqlite", outbox_config(), SystemClock()) as box, MqttPublisher(
        lab_mqtt(broker.host, broker.port), node, box, SystemClock(), "0.1.0", reconnect_max_s=1
    ) as pub:
        assert pub.wait_connected(10)
        for seq in range(0, 300):
            box.put(make_read(node, seq))
            if seq == 100:
                broker.stop()
                gone = time.monotonic() + 10  # the publisher notices the dropped connection (ms; longer under load)
                while pub.connected and time.monotonic() < gone:
                    time.sleep(0.01)
                assert not pub.connected
            if seq == 200:
                broker.start()
        assert pub.flush(30)
    got = sub.wait_for_unique(300, 15, key=lambda m: json.loads(m.payload)["id"])
    sub.stop()
    arrivals = first_arrivals([m.payload for m in got])
    assert arrivals == list(range(300))


def test_status_is_retained_online_then_offline_on_clean_exit(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    node = node_config()
    with Outbox(tmp_path / "outbox.sqlite", outbox_config(), SystemClock()) as box, MqttPublisher(
        lab_mqtt(mosquitto.host, mosquitto.port), node, box, SystemClock(), "9.9.9"
    ) as pub:
        assert pub.wait_connected(10)
        late = Subscriber(mosquitto.host, mosquitto.port, "anpr/site1/cam1/status").start()
        online = late.wait_for(1, 5)
        assert online
        assert online[0].retain
        assert json.loads(online[0].payload)["state"] == "online"
        late.stop()
    after = Subscriber(mosquitto.host, mosquitto.port, "anpr/site1/cam1/status").start()
    offline = after.wait_for(1, 5)
    after.stop()
    assert offline
    assert offline[0].retain
    status = json.loads(offline[0].payload)
    assert status["state"] == "offline"
    assert status["software"] == "9.9.9"


def test_invalid_read_is_never_published_and_is_counted_as_rejected(
    mosquitto: MosquittoBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node = node_config()
    sub = Subscriber(mosquitto.host, mosquitto.port, "anpr/#").start()
    with Outbox(tmp_path / "outbox.sqlite", outbox_config(), SystemClock()) as box:
        box.put(make_read(node, 0))
        box.put(make_read(node, 1, extra={"driver_face": "..."}))  # outside the schema
        wrong_topic = make_read(node, 2)
        box.put(type(wrong_topic)(wrong_topic.message_id, "anpr/site1/cam9/reads", wrong_topic.payload,
                                  wrong_topic.captured_at, "read"))
        box.put(make_read(node, 3))
        with caplog.at_level(logging.ERROR, logger="edge"), MqttPublisher(
            lab_mqtt(mosquitto.host, mosquitto.port), node, box, SystemClock(), "0.1.0"
        ) as pub:
            assert pub.flush(10)
        assert box.dropped.rejected == 2
    got = sub.wait_for(2, 5, where=lambda m: m.topic.endswith("/reads"))
    time.sleep(0.2)
    sub.stop()
    assert seqs_of([m.payload for m in got if m.topic.endswith("/reads")]) == [0, 3]
    assert all(b"driver_face" not in m.payload for m in sub.messages)
    assert "'driver_face'" in caplog.text
    assert "cam9" in caplog.text


def test_health_is_validated_and_retained(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    node = node_config()
    with Outbox(tmp_path / "outbox.sqlite", outbox_config(), SystemClock()) as box, MqttPublisher(
        lab_mqtt(mosquitto.host, mosquitto.port), node, box, SystemClock(), "0.1.0"
    ) as pub:
        assert pub.wait_connected(10)
        pub.publish_health({"outbox_depth": box.depth(), "reads_published": pub.reads_published, "fps": 24.9})
        with pytest.raises(InvalidMessageError, match="gps"):
            pub.publish_health({"gps": [51.5, -0.1]})
        time.sleep(0.2)
    late = Subscriber(mosquitto.host, mosquitto.port, "anpr/site1/cam1/health").start()
    got = late.wait_for(1, 5)
    late.stop()
    assert got[0].retain
    health = json.loads(got[0].payload)
    assert health["schema"] == "anpr.health/1"
    assert health["fps"] == 24.9
    assert got[0].properties["UserProperty"] == [("schema", "anpr.health/1")]


def test_unreachable_broker_keeps_reads_and_delivers_once_it_appears(tmp_path: Path) -> None:
    from support.broker import MOSQUITTO

    if not MOSQUITTO.exists():
        pytest.skip("mosquitto not installed")
    broker = MosquittoBroker(tmp_path / "late")
    node = node_config()
    try:
        with Outbox(tmp_path / "outbox.sqlite", outbox_config(), SystemClock()) as box, MqttPublisher(
            lab_mqtt(broker.host, broker.port), node, box, SystemClock(), "0.1.0", reconnect_max_s=1
        ) as pub:
            box.put(make_read(node, 0))
            assert not pub.wait_connected(1.0)
            assert not pub.connected
            assert box.depth() == 1
            broker.start()
            sub = Subscriber(broker.host, broker.port, "anpr/+/+/reads").start()
            assert pub.wait_connected(10)
            assert pub.flush(10)
            assert seqs_of([m.payload for m in sub.wait_for(1, 5)]) == [0]
            sub.stop()
    finally:
        broker.kill()


def _image(size: int) -> dict[str, object]:
    return {
        "kind": "plate_patch", "content_type": "image/jpeg", "width": 200, "height": 50,
        "data": base64.b64encode(b"\xff" * size).decode(),
        "redaction": {"detector": "blazeface", "model_sha256": "0" * 64, "threshold": 0.5, "regions": 0,
                      "second_pass_faces": 0},
    }


def test_outbox_bound_in_an_outage_drops_oldest_and_health_reports_it(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    node = node_config()
    mosquitto.stop()
    with Outbox(tmp_path / "outbox.sqlite", outbox_config(max_bytes=1_000_000), SystemClock()) as box, MqttPublisher(
        lab_mqtt(mosquitto.host, mosquitto.port), node, box, SystemClock(), "0.1.0", reconnect_max_s=1
    ) as pub:
        for seq in range(12):
            box.put(make_read(node, seq, extra={"image": _image(75_000)}))  # ~100 kB each
        kept = box.depth()
        assert kept < 12
        mosquitto.start()
        sub = Subscriber(mosquitto.host, mosquitto.port, "anpr/site1/cam1/reads").start()
        centre = Subscriber(mosquitto.host, mosquitto.port, "anpr/site1/cam1/health").start()
        assert pub.wait_connected(10)
        assert pub.flush(10)
        collector = HealthCollector(stats=PipelineStats, fps_configured=None, state_dir=tmp_path,
                                    versions=Versions("0.1.0"), outbox=box,
                                    outbox_dropped=lambda: box.dropped.total, publisher=pub)
        pub.publish_health(collector.collect())
        received = centre.wait_for(1, 5)
        centre.stop()
        health = json.loads(received[0].payload)  # as the centre sees it
        assert health["outbox_dropped"] == 12 - kept
        assert health["reads_published"] == kept
        got = sub.wait_for(kept, 5)
        sub.stop()
    assert seqs_of([m.payload for m in got]) == list(range(12 - kept, 12))  # the oldest went first


def test_broker_outage_during_replay_of_a_backlog_loses_nothing_and_keeps_order(
    mosquitto_factory: object, tmp_path: Path
) -> None:
    broker: MosquittoBroker = mosquitto_factory(persistence=True)  # type: ignore[operator]
    node = node_config()
    sub = Subscriber(broker.host, broker.port, "anpr/+/+/reads", client_id="central", persistent=True).start()
    with Outbox(tmp_path / "outbox.sqlite", outbox_config(), SystemClock()) as box:
        for seq in range(3000):  # the backlog a node restarts with
            box.put(make_read(node, seq))
        with MqttPublisher(
            lab_mqtt(broker.host, broker.port), node, box, SystemClock(), "0.1.0", reconnect_max_s=1
        ) as pub:
            deadline = time.monotonic() + 20
            while pub.reads_published < 500 and time.monotonic() < deadline:
                time.sleep(0.005)
            broker.stop()
            stopped_at = box.depth()
            time.sleep(1.0)
            assert not pub.connected
            broker.start()
            assert pub.flush(30)
        assert 0 < stopped_at < 3000  # the outage really hit the replay
    got = sub.wait_for_unique(3000, 20, key=lambda m: json.loads(m.payload)["id"])
    sub.stop()
    assert first_arrivals([m.payload for m in got]) == list(range(3000))


def test_read_larger_than_the_brokers_packet_limit_is_rejected_not_blocking(
    mosquitto_factory: object, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="edge")
    broker: MosquittoBroker = mosquitto_factory(extra_lines=("max_packet_size 20000",))  # type: ignore[operator]
    node = node_config()
    sub = Subscriber(broker.host, broker.port, "anpr/+/+/reads").start()
    with Outbox(tmp_path / "outbox.sqlite", outbox_config(), SystemClock()) as box, MqttPublisher(
        lab_mqtt(broker.host, broker.port), node, box, SystemClock(), "0.1.0"
    ) as pub:
        box.put(make_read(node, 0))
        box.put(make_read(node, 1, extra={"image": _image(30_000)}))
        box.put(make_read(node, 2))
        assert pub.flush(10)
        assert box.dropped.rejected == 1
    got = sub.wait_for(2, 5)
    sub.stop()
    assert seqs_of([m.payload for m in got]) == [0, 2]
    assert "maximum packet size of 20000" in caplog.text


def test_connected_stays_false_when_the_broker_refuses_the_connection(
    mosquitto_factory: object, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="edge")
    broker: MosquittoBroker = mosquitto_factory(listener_lines=("allow_anonymous false",))  # type: ignore[operator]
    node = node_config()
    with Outbox(tmp_path / "outbox.sqlite", outbox_config(), SystemClock()) as box, MqttPublisher(
        lab_mqtt(broker.host, broker.port), node, box, SystemClock(), "0.1.0"
    ) as pub:
        box.put(make_read(node, 0))
        assert not pub.wait_connected(2)
        assert box.depth() == 1
    assert "refused the connection" in caplog.text


class FullDiskOutbox(Outbox):
    """A real outbox whose disk refuses deletions while ``full`` is set (as SQLite does on a full disk)."""

    full = True

    def ack_many(self, message_ids: list[str]) -> None:
        if self.full:
            from edge.errors import StateError

            raise StateError("outbox: cannot delete acknowledged messages: database or disk is full")
        super().ack_many(message_ids)


def test_an_acknowledged_read_whose_delete_fails_is_not_sent_again_and_is_deleted_once_the_disk_allows(
    mosquitto: MosquittoBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node = node_config()
    sub = Subscriber(mosquitto.host, mosquitto.port, "anpr/site1/cam1/reads").start()
    with FullDiskOutbox(tmp_path / "outbox.sqlite", outbox_config(), SystemClock()) as box:
        for seq in range(3):
            box.put(make_read(node, seq))
        with MqttPublisher(lab_mqtt(mosquitto.host, mosquitto.port), node, box, SystemClock(), "0.1.0") as pub:
            assert pub.wait_connected(10)
            assert pub.flush(10), "acknowledged is delivered, even if not yet deleted"
            time.sleep(3.0)  # the old dispatcher sent it again about once a second
            assert pub.acks_unsaved == 3
            assert box.depth() == 3
            box.full = False
            deadline = time.monotonic() + 10
            while box.depth() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert box.depth() == 0
            assert pub.acks_unsaved == 0
        got = sub.wait_for(3, 5)
        time.sleep(0.3)
    sub.stop()
    assert seqs_of([m.payload for m in sub.messages]) == [0, 1, 2], "each delivered once"
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info], "no traceback in the log"
    assert len(got) == 3
