"""The privacy stage: ids and sequence numbers, image decision, fail-closed redaction, audit, no plate in logs."""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import numpy as np
import pytest

from edge.config.model import NodeConfig, PrivacyConfig
from edge.domain import AuditNote, Box, FormatMatch, Image, PlateDetection, PlateRead, PlateText, Redaction, VehiclePass
from edge.privacy.redact import RedactionFailed
from edge.privacy.stage import PrivacyStage

T0 = datetime(2026, 11, 22, 8, 30, 15, 123000, tzinfo=UTC)
NODE = NodeConfig(site="depot-1", camera="gate-a")
TOPIC = "anpr/depot-1/gate-a/reads"
BASE = ("time", "seq", "site", "camera")


class FakeClock:
    def __init__(self, t: datetime = T0) -> None:
        self.t = t

    def now(self) -> datetime:
        return self.t


class GreyRedactor:
    """Covers the whole image in grey and reports one region: a real, if crude, redactor."""

    def __init__(self, second_pass_faces: int = 0) -> None:
        self.calls: list[tuple[int, ...]] = []
        self.second_pass_faces = second_pass_faces

    def redact_image(self, image: Image, extra_boxes: Sequence[Box] = (), **_: object) -> tuple[Image, Redaction]:
        self.calls.append(image.shape)
        out = np.full_like(image, 128)
        return out, Redaction("fake-grey", "a" * 64, 0.5, 1, self.second_pass_faces)


class FailingRedactor:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def redact_image(self, image: Image, extra_boxes: Sequence[Box] = (), **_: object) -> tuple[Image, Redaction]:
        raise self.exc


class SetHotlist:
    def __init__(self, *plates: str) -> None:
        self.plates = set(plates)

    def match(self, plate: str, now: datetime) -> bool:
        return plate in self.plates


def make_pass(plate: str = "AB12CDE", track_id: int = 3, t: datetime = T0) -> VehiclePass:
    rng = np.random.default_rng(track_id)
    crop = rng.integers(0, 255, (24, 110, 3), dtype=np.uint8)
    read = PlateRead(
        frame_index=7, timestamp=t, detection=PlateDetection(Box(10, 20, 110, 24), 0.9),
        raw=PlateText(plate, (0.9,) * len(plate)), match=FormatMatch(plate, "uk_current", False, plate), crop=crop,
    )
    return VehiclePass(
        track_id=track_id, plate=plate, display=plate, format_name="uk_current", confidence=0.9, first_seen=t,
        last_seen=t + timedelta(seconds=1), sightings=4, best=read,
        overview=rng.integers(0, 255, (90, 160, 3), dtype=np.uint8),
    )


def stage(policy: PrivacyConfig, **kwargs: Any) -> PrivacyStage:
    kwargs.setdefault("redactor", GreyRedactor())
    kwargs.setdefault("clock", FakeClock())
    return PrivacyStage(policy, NODE, TOPIC, **kwargs)


def payload(msg: Any) -> dict[str, Any]:
    assert msg is not None
    body: dict[str, Any] = json.loads(msg.payload)
    return body


def test_messages_get_increasing_seq_and_a_unique_id_of_the_contract_form() -> None:
    s = stage(PrivacyConfig(), seq_start=41)
    msgs = [s.prepare(make_pass(track_id=i)) for i in range(3)]
    ids = [m.message_id for m in msgs if m is not None]
    assert [payload(m)["seq"] for m in msgs] == [41, 42, 43]
    assert len(set(ids)) == 3
    for m, i in zip(msgs, ids, strict=True):
        assert re.fullmatch(r"depot-1\.gate-a\.\d+\.[0-9a-f]{8}", i)
        assert m is not None
        assert payload(m)["id"] == i
        assert (m.topic, m.captured_at) == (TOPIC, T0)
    assert s.next_seq == 44


def test_the_id_is_stable_for_the_same_pass_and_seq() -> None:
    a = stage(PrivacyConfig(), seq_start=9).prepare(make_pass())
    b = stage(PrivacyConfig(), seq_start=9).prepare(make_pass())
    assert a is not None
    assert b is not None
    assert a.message_id == b.message_id


def test_payload_is_compact_json_with_exactly_the_allowed_keys() -> None:
    msg = stage(PrivacyConfig()).prepare(make_pass())
    assert msg is not None
    assert b" " not in msg.payload
    assert set(payload(msg)) == {"id", "schema", "plate", "time", "seq", "site", "camera", "confidence", "format"}



@pytest.mark.parametrize(("kind", "shape"), [("plate_patch", (24, 110)), ("redacted_overview", (90, 160))])
def test_every_image_goes_through_the_redactor_and_leaves_as_jpeg(kind: str, shape: tuple[int, int]) -> None:
    redactor = GreyRedactor()
    s = stage(PrivacyConfig(image=kind, jpeg_quality=90), redactor=redactor)
    image = payload(s.prepare(make_pass()))["image"]
    assert redactor.calls == [(*shape, 3)]
    assert (image["kind"], image["content_type"], image["height"], image["width"]) == (kind, "image/jpeg", *shape)
    assert image["redaction"] == {"detector": "fake-grey", "model_sha256": "a" * 64, "threshold": 0.5,
                                  "regions": 1, "second_pass_faces": 0}
    decoded = cv2.imdecode(np.frombuffer(base64.b64decode(image["data"]), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (*shape, 3)
    assert abs(float(decoded.mean()) - 128) < 3  # the redacted image, not the original
    assert s.stats.images_attached == 1


@pytest.mark.parametrize("redactor", [
    FailingRedactor(RedactionFailed("model missing", reason="model")),
    FailingRedactor(RuntimeError("interpreter crashed")),
    FailingRedactor(TimeoutError("face detection took 900 ms")),
    GreyRedactor(second_pass_faces=1),
    None,
], ids=["redaction-failed", "any-error", "time-out", "second-pass-face", "no-redactor"])
def test_redaction_fails_closed_the_read_goes_without_its_image(redactor: Any) -> None:
    s = stage(PrivacyConfig(image="redacted_overview"), redactor=redactor)
    body = payload(s.prepare(make_pass()))
    assert "image" not in body
    assert body["plate"] == "AB12CDE"
    assert s.stats.redaction_failures == 1
    assert s.stats.images_dropped == 1
    assert s.stats.images_attached == 0


def test_hotlist_only_non_hits_send_nothing_and_consume_no_seq() -> None:
    policy = PrivacyConfig(plate_mode="hotlist_only", hotlist_file="h.json")
    s = stage(policy, hotlist=SetHotlist("XY51ZZZ"))
    assert s.prepare(make_pass("AB12CDE")) is None
    assert s.prepare(make_pass("CD34EFG")) is None
    hit = payload(s.prepare(make_pass("XY51ZZZ")))
    assert (hit["seq"], hit["plate"], hit["hotlist_hit"]) == (0, "XY51ZZZ", True)
    assert (s.stats.reads_suppressed, s.stats.hotlist_hits, s.stats.reads_prepared) == (2, 1, 1)


def test_hotlist_only_without_a_hotlist_sends_nothing() -> None:
    s = stage(PrivacyConfig(plate_mode="hotlist_only", hotlist_file="h.json"), hotlist=None)
    assert s.prepare(make_pass()) is None


def test_image_only_on_a_hit_and_a_hit_raises_the_image_for_that_read_only() -> None:
    on_hit = stage(PrivacyConfig(image="plate_patch", image_when="hotlist_hit", hotlist_file="h"),
                   hotlist=SetHotlist("XY51ZZZ"))
    assert "image" not in payload(on_hit.prepare(make_pass("AB12CDE")))
    assert payload(on_hit.prepare(make_pass("XY51ZZZ")))["image"]["kind"] == "plate_patch"
    raised = stage(PrivacyConfig(image="plate_patch", hit_image="redacted_overview", hotlist_file="h"),
                   hotlist=SetHotlist("XY51ZZZ"))
    kinds = [payload(raised.prepare(make_pass(p)))["image"]["kind"] for p in ("XY51ZZZ", "AB12CDE")]
    assert kinds == ["redacted_overview", "plate_patch"]


def test_pseudonymised_stage_reads_its_key_file_and_sends_no_plate_text(tmp_path: Any) -> None:
    key = tmp_path / "pseudonym.key"
    key.write_text("11" * 32)
    s = stage(PrivacyConfig(plate_mode="pseudonymised", pseudonym_key_file=str(key)))
    msg = s.prepare(make_pass())
    assert msg is not None
    assert b"AB12CDE" not in msg.payload
    assert set(payload(msg)) >= {"plate_hash", "key_id"}


def test_every_message_carries_its_seq_and_the_audit_note_of_its_fields_and_image_flag() -> None:
    s = stage(PrivacyConfig(image="plate_patch"), seq_start=5)
    msg = s.prepare(make_pass())
    assert msg is not None
    assert msg.seq == payload(msg)["seq"] == 5
    assert msg.audit == AuditNote(fields=tuple(sorted(payload(msg))), image=True, policy_version=s.policy_version)


def test_clock_unsynced_flag_is_passed_through() -> None:
    s = stage(PrivacyConfig())
    assert payload(s.prepare(make_pass(), clock_unsynced=True))["clock_unsynced"] is True
    assert "clock_unsynced" not in payload(s.prepare(make_pass()))


def test_the_plate_text_is_never_logged_at_info_or_above(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    s = stage(PrivacyConfig(image="plate_patch", hotlist_file="h"), redactor=FailingRedactor(RuntimeError("x")),
              hotlist=SetHotlist("AB12CDE"))
    s.prepare(make_pass("AB12CDE"))
    assert caplog.records, "the dropped image should have been logged"
    for record in caplog.records:
        if record.levelno >= logging.INFO:
            assert "AB12CDE" not in record.getMessage()


def test_stats_snapshot_has_the_health_counters() -> None:
    snap = stage(PrivacyConfig()).stats.snapshot()
    assert {"redaction_failures", "images_dropped", "reads_prepared"} <= set(snap)


@pytest.mark.integration
def test_a_real_subscriber_receives_exactly_the_allowed_fields_in_every_mode(mosquitto: Any, tmp_path: Any) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from support.broker import Subscriber

    from edge.publish.schema import validate

    key = tmp_path / "pseudonym.key"
    key.write_text("22" * 32)
    cases: list[tuple[PrivacyConfig, Any, set[str]]] = [
        (PrivacyConfig(), GreyRedactor(), {"plate", "confidence", "format"}),
        (PrivacyConfig(fields=(*BASE, "zone", "sightings"), image="plate_patch"), GreyRedactor(),
         {"zone", "sightings", "image"}),
        (PrivacyConfig(fields=(*BASE, "plate"), plate_mode="pseudonymised", pseudonym_key_file=str(key),
                       image="redacted_overview"), FailingRedactor(RuntimeError("no model")),
         {"plate_hash", "key_id"}),
        (PrivacyConfig(fields=(*BASE, "plate", "direction"), plate_mode="hotlist_only", hotlist_file="h",
                       hit_image="plate_patch"), GreyRedactor(), {"plate", "direction", "hotlist_hit", "image"}),
    ]
    sub = Subscriber(mosquitto.host, mosquitto.port, f"{TOPIC}/#").start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect(mosquitto.host, mosquitto.port)
    pub.loop_start()
    try:
        sent = 0
        for i, (policy, redactor, _extra) in enumerate(cases):
            s = stage(policy, redactor=redactor, hotlist=SetHotlist("XY51ZZZ"))
            for plate in ("AB12CDE", "XY51ZZZ"):
                msg = s.prepare(make_pass(plate))
                if msg is None:
                    assert (policy.plate_mode, plate) == ("hotlist_only", "AB12CDE")
                    continue
                pub.publish(f"{TOPIC}/{i}", msg.payload, qos=1).wait_for_publish(5)
                sent += 1
        got = sub.wait_for(sent, 10)
        assert len(got) == sent == 7
    finally:
        pub.loop_stop()
        pub.disconnect()
        sub.stop()
    by_case: dict[int, list[dict[str, Any]]] = {}
    for m in got:
        by_case.setdefault(int(m.topic.rsplit("/", 1)[1]), []).append(json.loads(m.payload))
    for i, (_policy, _redactor, extra) in enumerate(cases):
        for body in by_case[i]:
            validate("read", body)
            assert set(body) == {"id", "schema", "seq", "time", "site", "camera"} | extra


def test_stage_with_a_real_hotlist_and_audit_log_leaves_a_verifiable_trail(tmp_path: Any) -> None:
    from edge.config.model import OutboxConfig
    from edge.node.sequence import SequenceFile
    from edge.outbox.ledger import Ledger
    from edge.outbox.store import Outbox
    from edge.privacy.audit import AuditLog, verify
    from edge.privacy.hotlist import Hotlist

    hotlist = Hotlist.from_plates(["XY51ZZZ"], key=bytes(32), list_id="op", valid_until=T0 + timedelta(hours=1),
                                  grace=timedelta(hours=1), confusables=1)
    audit = AuditLog(tmp_path / "audit.jsonl")
    policy = PrivacyConfig(plate_mode="hotlist_only", hotlist_file="h", image="plate_patch")
    s = stage(policy, hotlist=hotlist)
    assert s.prepare(make_pass("AB12CDE")) is None
    message = s.prepare(make_pass("XY5IZZZ"))  # I read for 1: one confusable, still a hit
    assert message is not None
    with Outbox(tmp_path / "outbox.sqlite", OutboxConfig(), FakeClock()) as outbox:
        ledger = Ledger(outbox, sequence=SequenceFile(tmp_path / "seq"), audit=audit, clock=FakeClock())
        ledger.open()
        ledger.put(message)
    hit = payload(message)
    assert hit["hotlist_hit"] is True
    assert "image" in hit
    assert verify(audit.path) == (True, None)
    entries = [json.loads(line) for line in audit.path.read_text().splitlines()]
    assert [e["read_id"] for e in entries] == [hit["id"]]
    assert entries[0]["fields"] == sorted(hit)
    assert b"XY5" not in audit.path.read_bytes()
    s.replace_hotlist(None)
    assert s.prepare(make_pass("XY51ZZZ")) is None


def test_a_plate_that_cannot_be_normalised_is_withheld_without_logging_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    s = stage(PrivacyConfig())
    assert s.prepare(make_pass("AB12;CDE")) is None
    assert s.stats.policy_violations == 1
    assert all("AB12" not in r.getMessage() for r in caplog.records)


def test_cabin_redaction_passes_the_windscreen_box_to_the_redactor() -> None:
    seen: list[tuple[Box, ...]] = []

    class Recording:
        def redact_image(self, image: Image, extra_boxes: Sequence[Box] = (), **_: object) -> tuple[Image, Redaction]:
            seen.append(tuple(extra_boxes))
            return image, Redaction("rec", "0" * 64, 0.3, len(extra_boxes), 0)

    from dataclasses import replace

    base = make_pass()
    plate = Box(600, 600, 110, 24)
    big = replace(base, overview=np.zeros((720, 1280, 3), np.uint8),
                  best=replace(base.best, detection=PlateDetection(plate, 0.9)))
    policy = PrivacyConfig(image="redacted_overview", redact_cabin=True)
    stage(policy, redactor=Recording()).prepare(big)
    assert len(seen) == 1
    (cabin,) = seen[0]
    assert cabin.h > 0 and cabin.w > plate.w  # a real region, wider than the plate
    assert cabin.y + cabin.h <= plate.y  # the windscreen is above the plate


def test_the_overview_gets_the_pass_s_other_frames_to_carry_faces_from_and_a_plate_patch_does_not() -> None:
    from dataclasses import replace

    from edge.domain import View

    calls: list[tuple[int, Box | None]] = []

    class Recording(GreyRedactor):
        def redact_image(self, image: Image, extra_boxes: Sequence[Box] = (), **kw: Any) -> tuple[Image, Redaction]:
            calls.append((len(kw.get("views", ())), kw.get("plate")))
            return super().redact_image(image, extra_boxes)

    view = View(Box(5, 30, 90, 20), np.zeros((90, 160, 3), np.uint8))
    p = replace(make_pass(), views=(view,))
    stage(PrivacyConfig(image="redacted_overview"), redactor=Recording()).prepare(p)
    stage(PrivacyConfig(image="plate_patch"), redactor=Recording()).prepare(p)
    assert calls == [(1, p.best.detection.box), (0, p.best.detection.box)]


def test_the_overview_hands_the_other_vehicles_plates_to_the_redactor_and_their_cabins_with_redact_cabin() -> None:
    from dataclasses import replace

    calls: list[tuple[tuple[Box, ...], tuple[Box, ...]]] = []

    class Recording(GreyRedactor):
        def redact_image(self, image: Image, extra_boxes: Sequence[Box] = (), **kw: Any) -> tuple[Image, Redaction]:
            calls.append((tuple(kw.get("others", ())), tuple(extra_boxes)))
            return super().redact_image(image, extra_boxes)

    base = make_pass()
    plate, lorry = Box(600, 600, 110, 24), Box(900, 300, 50, 12)
    p = replace(base, overview=np.zeros((720, 1280, 3), np.uint8), others=(lorry,),
                best=replace(base.best, detection=PlateDetection(plate, 0.9)))
    stage(PrivacyConfig(image="redacted_overview"), redactor=Recording()).prepare(p)
    stage(PrivacyConfig(image="redacted_overview", redact_cabin=True), redactor=Recording()).prepare(p)
    stage(PrivacyConfig(image="plate_patch"), redactor=Recording()).prepare(p)
    assert calls[0] == ((lorry,), ())
    others, cabins = calls[1]
    assert others == (lorry,) and len(cabins) == 2  # the read's windscreen and the lorry's
    assert all(c.intersection(plate) == 0 for c in cabins)  # never the read's plate
    assert calls[2] == ((), ())  # a plate patch shows no other vehicle


def test_plates_the_locator_finds_in_the_overview_are_other_vehicles_and_a_failing_locator_keeps_the_image_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[tuple[Box, ...]] = []

    class Recording(GreyRedactor):
        def redact_image(self, image: Image, extra_boxes: Sequence[Box] = (), **kw: Any) -> tuple[Image, Redaction]:
            seen.append(tuple(kw.get("others", ())))
            return super().redact_image(image, extra_boxes)

    class Far:
        def locate(self, image: Image) -> list[Box]:
            return [Box(100, 10, 20, 5)]

    class Broken:
        def locate(self, image: Image) -> list[Box]:
            raise RuntimeError("detector gone")

    policy = PrivacyConfig(image="redacted_overview", fields=("plate", "time", "seq", "site", "camera"))
    sent = stage(policy, redactor=Recording(), locator=Far()).prepare(make_pass())
    assert sent is not None and "image" in json.loads(sent.payload)
    assert seen == [(Box(100, 10, 20, 5),)]
    broken = stage(policy, redactor=Recording(), locator=Broken())
    held = broken.prepare(make_pass())
    assert held is not None and "image" not in json.loads(held.payload)  # the read leaves, its image does not
    assert broken.stats.images_dropped == 1 and "detector gone" in caplog.text
