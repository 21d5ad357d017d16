"""The frame loop joins the stages: each vehicle pass reaches the outbox once, through the privacy stage."""

from __future__ import annotations

import json

import pytest
from support.fakes import FixedReader, JsonPrivacy, ListOutbox, ListSource, PassThroughFormats, ScriptedDetector

from edge.config import TrackConfig
from edge.domain import Box, FormatMatch
from edge.pipeline import Pipeline
from edge.track import PlateTracker


def _pipeline(source: ListSource, detector: ScriptedDetector, outbox: ListOutbox, **kw: object) -> Pipeline:
    kw.setdefault("reader", FixedReader("AB12CDE"))
    kw.setdefault("formats", PassThroughFormats())
    kw.setdefault("verify_plates", False)  # blank frames and a fake reader: nothing to look at
    return Pipeline(
        source=source,
        detector=detector,
        tracker=PlateTracker(TrackConfig(max_gap_s=0.2, min_sightings=2)),
        privacy=JsonPrivacy(),
        outbox=outbox,
        **kw,  # type: ignore[arg-type]
    )


def test_one_vehicle_seen_in_many_frames_gives_one_message() -> None:
    script = {i: [Box(20 + i, 40, 40, 9)] for i in range(10)}
    outbox = ListOutbox()
    stats = _pipeline(ListSource(30), ScriptedDetector(script), outbox).run()
    assert stats.frames == 30
    assert stats.passes == 1
    assert [json.loads(m.payload)["plate"] for m in outbox.messages] == ["AB12CDE"]


def test_detections_are_cropped_from_the_full_resolution_frame() -> None:
    seen = []

    class Spy(FixedReader):
        def read(self, crop):  # type: ignore[no-untyped-def]
            seen.append(crop.shape)
            return super().read(crop)

    _pipeline(ListSource(3), ScriptedDetector({0: [Box(10, 10, 40, 10)]}), ListOutbox(), reader=Spy("AB12CDE")).run()
    # lores is half size: a 40x10 lores box is 80x20 at full resolution, plus the crop margin
    assert seen and seen[0][1] >= 80 and seen[0][0] >= 20


def test_detection_can_run_on_a_subset_of_frames() -> None:
    detector = ScriptedDetector({})
    _pipeline(ListSource(12), detector, ListOutbox(), detect_every=3).run()
    assert detector.calls == 4


def test_a_vanished_live_source_raises_after_open_tracks_are_flushed() -> None:
    script = {i: [Box(20, 40, 40, 9)] for i in range(5)}
    outbox = ListOutbox()
    pipe = _pipeline(ListSource(100, fail_after=5), ScriptedDetector(script), outbox, live=True)
    with pytest.raises(RuntimeError, match="camera vanished"):
        pipe.run()
    assert len(outbox.messages) == 1  # what was already captured is not lost


def test_low_confidence_reads_are_rejected_and_counted() -> None:
    script = {i: [Box(20, 40, 40, 9)] for i in range(5)}
    pipe = _pipeline(ListSource(5), ScriptedDetector(script), ListOutbox(), reader=FixedReader("AB12CDE", conf=0.2))
    stats = pipe.run()
    assert stats.reads == 0
    assert stats.reads_rejected == 5
    assert stats.passes == 0


def test_a_slow_loop_drops_live_frames_and_counts_every_drop() -> None:
    import time

    class SlowDetector(ScriptedDetector):
        def detect(self, image):  # type: ignore[no-untyped-def]
            time.sleep(0.005)
            return super().detect(image)

    pipe = _pipeline(ListSource(200), SlowDetector({}), ListOutbox(), live=True, queue_size=1)
    stats = pipe.run()
    assert stats.frames_dropped > 0
    assert stats.frames + stats.frames_dropped == 200


def test_privacy_worker_keeps_pass_order_and_drains_before_run_returns() -> None:
    import time

    class SlowPrivacy(JsonPrivacy):
        def prepare(self, vehicle_pass):  # type: ignore[no-untyped-def]
            time.sleep(0.02)  # a redaction takes much longer than a frame
            return super().prepare(vehicle_pass)

    # three vehicles one after another, each seen in 5 frames, with gaps that end their tracks
    script = {i: [Box(20, 40, 40, 9)] for i in [*range(0, 5), *range(20, 25), *range(40, 45)]}
    outbox = ListOutbox()
    pipe = _pipeline(ListSource(60), ScriptedDetector(script), outbox, privacy_thread=True)
    pipe.privacy = SlowPrivacy()
    pipe.tracker.config = TrackConfig(max_gap_s=0.2, min_sightings=2, repeat_gap_s=0)
    stats = pipe.run()
    assert stats.passes == 3
    assert [json.loads(m.payload)["seq"] for m in outbox.messages] == [1, 2, 3]


def test_a_failing_privacy_worker_stops_the_loop_with_its_error() -> None:
    class Broken(JsonPrivacy):
        def prepare(self, vehicle_pass):  # type: ignore[no-untyped-def]
            raise RuntimeError("policy bug")

    script = {i: [Box(20, 40, 40, 9)] for i in range(5)}
    pipe = _pipeline(ListSource(30), ScriptedDetector(script), ListOutbox(), privacy_thread=True)
    pipe.privacy = Broken()
    with pytest.raises(RuntimeError, match="policy bug"):
        pipe.run()


def test_a_plate_only_the_second_look_finds_still_makes_a_pass() -> None:
    script = {i: [Box(20, 40, 40, 9)] for i in range(10)}
    outbox = ListOutbox()
    second = ScriptedDetector(script)
    stats = _pipeline(ListSource(10), ScriptedDetector({}), outbox, second_look=second, second_look_every=1).run()
    assert second.calls == 10
    assert stats.passes == 1
    assert [json.loads(m.payload)["plate"] for m in outbox.messages] == ["AB12CDE"]


def test_the_second_look_rests_while_the_first_detector_reads_plates() -> None:
    script = {i: [Box(20, 40, 40, 9)] for i in range(10)}
    second = ScriptedDetector({})
    _pipeline(ListSource(10), ScriptedDetector(script), ListOutbox(), second_look=second).run()
    assert second.calls == 0


class _SevenCharFormats:
    """Fits seven-character reads only (a stand-in for a node's formats)."""

    def match(self, text: str, captured_on: object) -> FormatMatch:
        return FormatMatch(text, "seven" if len(text) == 7 else None, False, text)


@pytest.mark.parametrize("publish_unfitted", [False, True])
def test_a_read_that_fits_no_format_is_published_only_when_the_node_asks_and_is_counted_either_way(
    publish_unfitted: bool,
) -> None:
    # BU5 (a road marking read as text) fits no format of this node
    script = {i: [Box(20, 40, 40, 9)] for i in range(5)}
    outbox = ListOutbox()
    pipe = _pipeline(ListSource(5), ScriptedDetector(script), outbox, reader=FixedReader("BU5"),
                     formats=_SevenCharFormats(), publish_unfitted=publish_unfitted)
    stats = pipe.run()
    assert stats.passes == 1
    assert len(outbox.messages) == (1 if publish_unfitted else 0)
    assert (stats.passes_unfitted_published, stats.passes_unfitted_dropped) == ((1, 0) if publish_unfitted else (0, 1))


class _NumberedSource(ListSource):
    """Blank frames whose first lores pixel holds the frame's index (mod 256), for detectors that answer by frame."""

    def frames(self):  # type: ignore[no-untyped-def]
        for frame in super().frames():
            frame.lores[0, 0, 0] = frame.index % 256
            yield frame


class _ByFrame:
    """A detector that answers by the frame it is shown (safe on several threads, like OpenCV's detectors);
    ``fail_on``: that frame raises."""

    def __init__(self, script: dict[int, list[Box]], fail_on: int | None = None, delay_s: float = 0.0) -> None:
        self.script, self.fail_on, self.delay_s = script, fail_on, delay_s

    def detect(self, image):  # type: ignore[no-untyped-def]
        import time

        from edge.domain import PlateDetection

        index = int(image[0, 0, 0])
        if index == self.fail_on:
            raise RuntimeError(f"detector broke on frame {index}")
        time.sleep(self.delay_s)
        return [PlateDetection(b, 0.9) for b in self.script.get(index, [])]


_THREE_VEHICLES = {i: [Box(20 + i % 20, 40, 40, 9)] for i in [*range(0, 8), *range(30, 38), *range(60, 68)]}


def _payloads(workers: int, **kw: object) -> list[dict[str, object]]:
    outbox = ListOutbox()
    pipe = _pipeline(_NumberedSource(90), _ByFrame(_THREE_VEHICLES), outbox,  # type: ignore[arg-type]
                     extra_readers=[FixedReader("AB12CDE") for _ in range(workers - 1)], **kw)
    pipe.tracker.config = TrackConfig(max_gap_s=0.2, min_sightings=2, repeat_gap_s=0)
    stats = pipe.run()
    assert pipe.workers == workers
    assert stats.frames == 90 and stats.frames_detected == 90
    return [json.loads(m.payload) for m in outbox.messages]


@pytest.mark.parametrize("workers", [2, 3])
def test_frames_found_on_several_workers_give_the_passes_of_one_worker_in_the_same_order(workers: int) -> None:
    one = _payloads(1)
    assert len(one) == 3
    assert _payloads(workers) == one


def test_a_worker_that_fails_stops_the_loop_with_its_error_after_earlier_frames_are_kept() -> None:
    outbox = ListOutbox()
    pipe = _pipeline(_NumberedSource(90), _ByFrame(_THREE_VEHICLES, fail_on=50), outbox,  # type: ignore[arg-type]
                     extra_readers=[FixedReader("AB12CDE")])
    pipe.tracker.config = TrackConfig(max_gap_s=0.2, min_sightings=2, repeat_gap_s=0)
    with pytest.raises(RuntimeError, match="detector broke on frame 50"):
        pipe.run()
    assert pipe.stats.frames == 50  # every frame before the broken one went through, in order
    assert len(outbox.messages) == 2  # the two vehicles seen before it reached the outbox


def test_a_live_source_with_workers_drops_frames_it_cannot_keep_up_with_and_counts_them() -> None:
    # 50 ms a frame on each of two workers: 40 frames a second, far slower than the source gives them on any CPU
    # (4 ms was not: on an emulated aarch64 CPU the source and the loop were slower than the workers)
    pipe = _pipeline(_NumberedSource(60), _ByFrame({}, delay_s=0.05), ListOutbox(),  # type: ignore[arg-type]
                     live=True, queue_size=1, extra_readers=[FixedReader("AB12CDE")])
    stats = pipe.run()
    assert stats.frames_dropped > 0
    assert stats.frames + stats.frames_dropped == 60


def test_a_vanished_live_source_with_workers_raises_after_open_tracks_are_flushed() -> None:
    script = {i: [Box(20, 40, 40, 9)] for i in range(5)}
    outbox = ListOutbox()
    pipe = _pipeline(_NumberedSource(100, fail_after=5), _ByFrame(script), outbox,  # type: ignore[arg-type]
                     live=True, extra_readers=[FixedReader("AB12CDE")])
    with pytest.raises(RuntimeError, match="camera vanished"):
        pipe.run()
    assert len(outbox.messages) == 1


def test_stopping_a_run_with_workers_ends_it_and_keeps_what_was_seen() -> None:
    import threading

    stop = threading.Event()
    outbox = ListOutbox()
    pipe = _pipeline(_NumberedSource(10_000), _ByFrame(_THREE_VEHICLES), outbox,  # type: ignore[arg-type]
                     extra_readers=[FixedReader("AB12CDE")], on_frame=lambda f: stop.set() if f.index == 40 else None)
    pipe.tracker.config = TrackConfig(max_gap_s=0.2, min_sightings=2, repeat_gap_s=0)
    stats = pipe.run(stop)
    assert stats.frames == 41
    assert len(outbox.messages) == 2
