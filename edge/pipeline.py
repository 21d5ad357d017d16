"""The frame loop: capture -> detect -> read -> track -> privacy -> outbox.

Publishing runs beside it (the publisher drains the outbox), so a slow or absent network never
stalls the loop. With a live source, capture runs in its own thread into a bounded queue: when the
loop falls behind, frames are dropped at the queue and counted, never silently.

With more than one reader (``extra_readers``: ``detect.workers``), detecting and reading run on that
many threads (LiteRT and OpenCV release the GIL while they work), each taking the next frame to detect
when it is free, each with its own reader (the second look's model is taken in turn). A feeder thread
takes the frames from the source (decoding a file there); the loop takes the findings back in frame
order, then tracks, pairs the overview and hands passes to the privacy worker. The fine and second looks
are due by a frame's index k, so they fall on the same frames however many workers there are.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from edge.capture import FrameSource
from edge.capture.overview import OverviewFeed
from edge.detect import InTurn, PlateDetector
from edge.domain import Frame, OutgoingMessage, PlateRead, VehiclePass
from edge.errors import EdgeError
from edge.read import PlateReader
from edge.read.crop import FormatMatcher
from edge.read.finder import Finding, PlateFinder
from edge.track import PlateTracker

log = logging.getLogger(__name__)

__all__ = ["MessageStore", "PassObserver", "PassPreparer", "Pipeline", "PipelineStats"]


class PassPreparer(Protocol):
    """The privacy stage: turns a pass into the message that may leave (or None: nothing leaves)."""

    def prepare(self, vehicle_pass: VehiclePass) -> OutgoingMessage | None: ...


class MessageStore(Protocol):
    """The outbox: a message is durable once ``put`` returns."""

    def put(self, message: OutgoingMessage) -> None: ...


@dataclass
class PipelineStats:
    frames: int = 0
    frames_dropped: int = 0
    frames_detected: int = 0
    detections: int = 0
    reads: int = 0
    reads_rejected: int = 0
    passes: int = 0
    passes_unfitted_dropped: int = 0  # passes whose read fits no allowed format, not published
    passes_unfitted_published: int = 0  # ... published all the same (read.publish_unfitted)
    passes_unstored: int = 0  # passes lost because the outbox refused to store (a full disk); the node then stops
    messages: int = 0
    workers: int = 1  # threads that detect and read
    detect_ms: deque[float] = field(default_factory=lambda: deque(maxlen=2048))
    ocr_ms: deque[float] = field(default_factory=lambda: deque(maxlen=2048))
    started: float = field(default_factory=time.monotonic)

    @property
    def fps(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.frames / elapsed if elapsed > 0 else 0.0


PassObserver = Callable[[VehiclePass, OutgoingMessage | None], None]


class Pipeline:
    """Runs the stages over every frame of a source. Built only by the composition root."""

    def __init__(
        self,
        *,
        source: FrameSource,
        detector: PlateDetector,
        reader: PlateReader,
        formats: FormatMatcher,
        tracker: PlateTracker,
        privacy: PassPreparer,
        outbox: MessageStore,
        detect_every: int = 1,
        min_read_confidence: float = 0.5,
        second_look: PlateDetector | None = None,
        second_look_every: int = 1,
        fine_look: PlateDetector | None = None,
        fine_look_every: int = 1,
        maybe_every: int = 1,
        verify_plates: bool = True,
        live: bool = False,
        queue_size: int = 4,
        on_pass: PassObserver | None = None,
        on_frame: Callable[[Frame], None] | None = None,
        privacy_thread: bool = False,
        privacy_queue_size: int = 16,
        publish_unfitted: bool = False,
        overview: OverviewFeed | None = None,
        extra_readers: Sequence[PlateReader] = (),
        worker_queue_size: int = 1,
    ) -> None:
        self.source = source
        self.tracker = tracker
        self.privacy = privacy
        self.outbox = outbox
        self.detect_every = detect_every
        self.live = live
        self.queue_size = queue_size
        self.on_pass = on_pass
        self.on_frame = on_frame
        self.privacy_thread = privacy_thread
        self.privacy_queue_size = privacy_queue_size
        self.publish_unfitted = publish_unfitted
        self.overview = overview  # a second camera gives the overview image (None: the plate camera's own frame)
        self.stats = PipelineStats()
        self._worker: _PassWorker | None = None
        if extra_readers and second_look is not None:
            second_look = InTurn(second_look)  # one model (about 100 MB) that the workers take in turn
        self._finder = PlateFinder(detector, reader, formats, min_confidence=min_read_confidence,
                                   second_look=second_look, second_look_every=second_look_every,
                                   fine_look=fine_look, fine_look_every=fine_look_every, verify=verify_plates,
                                   maybe_every=maybe_every)
        # one finder per worker, each its own reader (LiteRT interpreters are not thread-safe)
        self._finders = (self._finder, *(self._finder.twin(r) for r in extra_readers))
        self.worker_queue_size = worker_queue_size

    @property
    def workers(self) -> int:
        """Threads that detect and read (1: the frame loop itself)."""
        return len(self._finders)

    def run(self, stop: threading.Event | None = None) -> PipelineStats:
        """Process frames until the source ends or ``stop`` is set; then end every open track."""
        stop = stop or threading.Event()
        self.stats = PipelineStats(workers=self.workers)
        frames = self._live_frames(stop) if self.live else self.source.frames()
        if self.privacy_thread:
            self._worker = _PassWorker(self._finish, self.privacy_queue_size, self.stats)
        if self.overview is not None:
            self.overview.open()
        found = _FindWorkers(self._finders, frames, self._detects, self.worker_queue_size, stop) \
            if len(self._finders) > 1 else None
        try:
            for frame, finding in (found.results() if found is not None else ((f, None) for f in frames)):
                self.process(frame, finding)
                if self._worker is not None:
                    self._worker.raise_if_failed()  # a read that could not be stored stops the node at once
                if stop.is_set():
                    break
        finally:
            if found is not None:
                found.close()
            self._emit(self.tracker.flush())
            worker, self._worker = self._worker, None
            if worker is not None:
                worker.close()  # every pass reaches the outbox before run() returns
            if self.overview is not None:
                self.overview.close()
        return self.stats

    def process(self, frame: Frame, finding: Finding | None = None) -> list[VehiclePass]:
        """One frame through every stage (``finding``: what a worker found in it already); returns the passes it
        completed."""
        self.stats.frames += 1
        reads: list[PlateRead] = []
        keep = frame.image  # what a track keeps of this frame, should a read here become its best
        if self.overview is not None:
            self.overview.observe(frame.timestamp)
        if self._detects(frame):
            reads = self._reads(frame, finding)
            if reads and self.overview is not None:
                keep = self.overview.pair(frame)  # the overview camera's frame nearest this one, kept in its place
        passes = self.tracker.update(frame.timestamp, reads, frame.image, keep)
        self._emit(passes)
        if self.on_frame is not None:
            self.on_frame(frame)
        return passes

    def _detects(self, frame: Frame) -> bool:
        return frame.index % self.detect_every == 0

    def _reads(self, frame: Frame, finding: Finding | None = None) -> list[PlateRead]:
        self.stats.frames_detected += 1
        if finding is None:
            finding = _find(self._finder, frame)
        self.stats.detect_ms.append(finding.detect_ms)
        self.stats.detections += len(finding.sightings)
        reads = []
        for seen in finding.sightings:
            got = seen.read
            if got is None:
                continue
            if got.match is None:
                self.stats.reads_rejected += 1
                continue
            self.stats.reads += 1
            reads.append(PlateRead(frame.index, frame.timestamp, seen.detection, got.text, got.match, got.crop,
                                   got.whole))
        if finding.sightings:
            self.stats.ocr_ms.append(finding.read_ms / len(finding.sightings))
        return reads

    def _emit(self, passes: list[VehiclePass]) -> None:
        """Hand each pass on to privacy and the outbox; one whose read fits no allowed format only when
        ``publish_unfitted`` (either way it is counted)."""
        for vehicle_pass in passes:
            self.stats.passes += 1
            if vehicle_pass.format_name is None:
                if not self.publish_unfitted:
                    self.stats.passes_unfitted_dropped += 1
                    continue
                self.stats.passes_unfitted_published += 1
            # a second camera: the overview camera's frame paired with the best read's frame
            outgoing = self.overview.attach(vehicle_pass) if self.overview is not None else vehicle_pass
            if self._worker is not None:
                self._worker.submit(outgoing)  # blocks when full: back-pressure, never a lost pass
            else:
                self._finish(outgoing)

    def _finish(self, vehicle_pass: VehiclePass) -> None:
        """Privacy (redaction, allow-list payload), then the durable outbox."""
        message = self.privacy.prepare(vehicle_pass)
        if message is not None:
            self.outbox.put(message)  # durable before anything is published
            self.stats.messages += 1
        if self.on_pass is not None:
            self.on_pass(vehicle_pass, message)

    def _live_frames(self, stop: threading.Event) -> Iterator[Frame]:
        """Capture in a thread; a full queue drops the newest frame and counts it (capture never waits)."""
        frames: queue.Queue[Frame | BaseException | None] = queue.Queue(maxsize=self.queue_size)

        def capture() -> None:
            try:
                for frame in self.source.frames():
                    if stop.is_set():
                        break
                    try:
                        frames.put_nowait(frame)
                    except queue.Full:
                        self.stats.frames_dropped += 1
            except Exception as exc:  # noqa: BLE001 - handed to the frame loop, which re-raises it
                frames.put(exc)
                return
            frames.put(None)

        thread = threading.Thread(target=capture, name="capture", daemon=True)
        thread.start()
        while True:
            item = frames.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


class _PassWorker:
    """Runs the privacy stage and the outbox put beside the frame loop, in pass order.

    Redacting an image takes far longer than a frame; on a multi-core Pi this keeps the frame loop
    (and the camera) going meanwhile. The queue is bounded: when it is full the loop waits, so a
    pass is never dropped (frames are, at capture, and counted). A failure in the worker is raised
    in the frame loop at the next submit, or at close.
    """

    def __init__(self, finish: Callable[[VehiclePass], None], size: int, stats: PipelineStats) -> None:
        self._finish = finish
        self._stats = stats
        self._queue: queue.Queue[VehiclePass | None] = queue.Queue(maxsize=size)
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._loop, name="privacy", daemon=True)
        self._thread.start()

    def submit(self, vehicle_pass: VehiclePass) -> None:
        self.raise_if_failed()
        self._queue.put(vehicle_pass)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self.raise_if_failed()

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                self._stats.passes_unstored += 1
                continue  # keep draining so the frame loop never blocks on a dead worker
            try:
                self._finish(item)
            except EdgeError as exc:  # an expected failure (the disk refused the outbox): one line, no traceback
                log.error("privacy/outbox worker stopped: %s", exc)
                self._stats.passes_unstored += 1
                self._error = exc
            except Exception as exc:
                log.exception("privacy/outbox worker failed")
                self._stats.passes_unstored += 1
                self._error = exc

    def raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error


def _find(finder: PlateFinder, frame: Frame, index: int | None = None) -> Finding:
    return finder.find(frame.image, frame.lores, frame.timestamp.date(), index)


class _FindWorkers:
    """Detect and read frames on one thread per finder, handing the findings back in frame order.

    A feeder thread takes frames from ``frames`` (decoding a file, or the capture queue of a live source) and puts
    each frame to detect, with its index among them, in one bounded queue that the workers take from as each is
    free; a ticket per frame, in a bounded queue, holds where its finding will be. When the workers fall behind,
    the feeder waits (so a live source's capture queue fills and drops, counted there). An error in the feeder or
    a worker is raised in the frame loop, in its frame's place.
    """

    def __init__(self, finders: Sequence[PlateFinder], frames: Iterator[Frame], detects: Callable[[Frame], bool],
                 depth: int, stop: threading.Event) -> None:
        self._finders = finders
        self._frames = frames
        self._detects = detects
        self._stop = stop
        self._closed = threading.Event()
        self._inbox: queue.Queue[tuple[Frame, int, Future[Finding]] | None] = queue.Queue(maxsize=len(finders) * depth)
        self._tickets: queue.Queue[tuple[Frame, Future[Finding] | None] | BaseException | None] = queue.Queue(
            maxsize=len(finders) * (depth + 1))
        self._threads = [threading.Thread(target=self._feed, name="feeder", daemon=True)]
        self._threads += [threading.Thread(target=self._work, args=(finder,), name=f"finder-{i}", daemon=True)
                          for i, finder in enumerate(finders)]
        for thread in self._threads:
            thread.start()

    def results(self) -> Iterator[tuple[Frame, Finding | None]]:
        while (ticket := self._tickets.get()) is not None:
            if isinstance(ticket, BaseException):
                raise ticket
            frame, finding = ticket
            yield frame, finding.result() if finding is not None else None  # a worker's error is raised here

    def close(self) -> None:
        """Stop feeding and end the threads (a frame being found is finished first)."""
        self._closed.set()
        _drain(self._tickets)  # unblock a feeder waiting to put
        _drain(self._inbox)
        for thread in self._threads:
            thread.join(timeout=5.0)

    def _put(self, q: queue.Queue[Any], item: object) -> bool:
        """Put ``item`` unless closed meanwhile; False when closed."""
        while not self._closed.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _feed(self) -> None:
        detected = 0
        try:
            for frame in self._frames:
                finding: Future[Finding] | None = None
                if self._detects(frame):
                    finding = Future()
                    if not self._put(self._inbox, (frame, detected, finding)):
                        return
                    detected += 1
                if not self._put(self._tickets, (frame, finding)):
                    return
                if self._stop.is_set():
                    break
        except BaseException as exc:  # noqa: BLE001 - raised in the frame loop, in its frame's place
            self._put(self._tickets, exc)
        else:
            self._put(self._tickets, None)
        finally:
            for _ in self._finders:
                self._put(self._inbox, None)

    def _work(self, finder: PlateFinder) -> None:
        while not self._closed.is_set():
            try:
                item = self._inbox.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is None:
                return
            frame, index, finding = item
            try:
                finding.set_result(_find(finder, frame, index))
            except BaseException as exc:  # raised in the frame loop, in its frame's place
                finding.set_exception(exc)  # never left unset: the loop waits for it
                if not isinstance(exc, Exception):
                    raise


def _drain(q: queue.Queue[Any]) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return
