"""The composition root: the one place that builds concrete classes from the config and joins them.

Everything else receives its collaborators through its constructor.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from edge import __version__
from edge.capture import FrameSource
from edge.capture.overview import OverviewFeed
from edge.capture.picam import PicameraSource
from edge.capture.video import ImageFolderSource, StreamSource, VideoFileSource
from edge.clock import Clock, ReplayClock, SystemClock
from edge.config import Config
from edge.detect.factory import build_detector, build_fine_look, build_second_look
from edge.domain import Frame
from edge.errors import ModelError, StateError
from edge.node.clocksync import ClockGate, ClockStatus
from edge.node.config_push import ConfigPushes
from edge.node.fleet import FleetNode, HotlistSet
from edge.node.memory import limit_malloc_arenas
from edge.node.preflight import CHECKS, first_error, preflight
from edge.node.sequence import SequenceFile
from edge.outbox.ledger import Ledger
from edge.outbox.store import Outbox
from edge.pipeline import PassObserver, Pipeline
from edge.privacy.audit import AuditDraft, AuditLog
from edge.privacy.faces import RedactorSettings, build_redactor
from edge.privacy.hotlist import Hotlist, open_hotlist
from edge.privacy.redact import Redactor
from edge.privacy.retention import DataClass, Retention, RetentionStore
from edge.privacy.stage import PrivacyStage
from edge.publish.mqtt import MqttPublisher
from edge.publish.topics import Topics
from edge.read.factory import build_readers
from edge.read.formats import FormatSet
from edge.read.locate import PlateLocator
from edge.track import PlateTracker

log = logging.getLogger(__name__)

LIVE_SOURCES = ("picamera", "stream")


@dataclass
class Node:
    """The running node's parts, open for the lifetime of the ``open_node`` block."""

    config: Config
    pipeline: Pipeline
    outbox: Outbox
    publisher: MqttPublisher | None
    privacy: PrivacyStage
    retention: Retention
    ledger: Ledger[AuditDraft]
    audit: AuditLog
    clock_gate: ClockGate | None = None  # set when reads are checked against clock synchronisation
    hotlist: Hotlist | None = None
    hotlist_problem: str | None = None  # why the node runs without the hotlist its config names
    fleet: FleetNode | None = None  # the control channel from the centre (config.fleet)


def build_source(config: Config, clock: Clock) -> FrameSource:
    cap = config.capture
    if cap.source == "picamera":
        return PicameraSource(main_size=cap.main_size, lores_size=cap.lores_size, fps=cap.fps, clock=clock,
                              camera_index=cap.camera_index, exposure=cap.exposure)
    assert cap.path is not None  # guaranteed by CaptureConfig's validator
    if cap.source == "video":
        return VideoFileSource(cap.path, lores_size=cap.lores_size, start=cap.start_time, realtime=cap.realtime,
                               max_pixels=cap.max_pixels)
    if cap.source == "images":
        return ImageFolderSource(cap.path, lores_size=cap.lores_size, fps=cap.fps, start=cap.start_time,
                                 max_pixels=cap.max_pixels)
    return StreamSource(cap.path, lores_size=cap.lores_size, clock=clock, max_pixels=cap.max_pixels)


def build_overview(config: Config, clock: Clock, plate: FrameSource) -> OverviewFeed | None:
    """The overview camera (capture.overview), or None: the plate camera's frame is the overview. A recording's
    frames are timed from the plate recording's start (``offset_s`` later)."""
    cap, ov = config.capture, config.capture.overview
    if ov is None:
        return None
    source: FrameSource
    if ov.source == "picamera":
        source = PicameraSource(main_size=ov.size, lores_size=None, fps=ov.fps, clock=clock,
                                camera_index=ov.camera_index)
    elif ov.source == "video":
        assert ov.path is not None  # guaranteed by OverviewConfig's validator
        start = getattr(plate, "start", None)
        source = VideoFileSource(ov.path, lores_size=None, start=start if isinstance(start, datetime) else None,
                                 max_pixels=cap.max_pixels)
    else:
        assert ov.path is not None
        source = StreamSource(ov.path, lores_size=None, clock=clock, max_pixels=cap.max_pixels)
    return OverviewFeed(source, offset_s=ov.offset_s, tolerance_s=ov.tolerance_s, buffer_frames=ov.buffer_frames,
                        live=ov.source != "video")


def recording_clock(
    source: FrameSource, on_frame: Callable[[Frame], None] | None
) -> tuple[ReplayClock, Callable[[Frame], None]]:
    """The clock of a recording (from its start, following its frames) and the ``on_frame`` hook that moves it."""
    start = getattr(source, "start", None)
    clock = ReplayClock(start if isinstance(start, datetime) else None)

    def observe(frame: Frame) -> None:
        clock.observe(frame.timestamp)
        if on_frame is not None:
            on_frame(frame)

    return clock, observe


MAX_AUTO_WORKERS = 4


def finder_workers(configured: int) -> int:
    """How many threads detect and read: ``detect.workers``, or (0) one per core this process may use, at most 4."""
    if configured:
        return configured
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_AUTO_WORKERS, cores))


def ensure_state_dir(path: str) -> Path:
    state = Path(path)
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(f"cannot create state directory {path!r}: {exc.strerror or exc}") from exc
    if not os.access(state, os.W_OK):
        raise StateError(f"state directory {path!r} is not writable by this user")
    return state


OVERVIEW_VIEWS = 2  # earlier frames a pass keeps so faces seen there are covered in its overview


def _overview_may_leave(config: Config) -> bool:
    return "redacted_overview" in (config.privacy.image, config.privacy.hit_image)


def tracker_views(config: Config) -> int:
    """Earlier plate-camera frames each track keeps to carry faces into its overview: none when no overview may
    leave, or when the overview comes from the overview camera (another camera's geometry: it never takes them)."""
    return OVERVIEW_VIEWS if _overview_may_leave(config) and config.capture.overview is None else 0


def _plate_locator(config: Config) -> PlateLocator | None:
    """The overview's other plates, for their occupants' look: the fine look's detectors (none when it is off)."""
    fine = build_fine_look(config.detect) if _overview_may_leave(config) else None
    if fine is None:
        return None
    width, height = config.capture.lores_size
    return PlateLocator(fine, work_size=(2 * width, 2 * height))


def node_redactor(config: Config) -> Redactor | None:
    """The face redactor, or None when it cannot run (then no image ever leaves: fail closed)."""
    privacy = config.privacy
    settings = RedactorSettings(
        model=privacy.face_model,
        check_model=privacy.face_check_model,
        manifest=config.read.manifest,
        threshold=privacy.face_threshold,
        night_threshold=privacy.face_night_threshold,
        margin=privacy.redaction_margin,
    )
    try:
        return build_redactor(settings, threads=config.read.threads)
    except ModelError as exc:
        log.error("face redaction cannot run, so no image will leave this node: %s", exc)
        return None


def _fleet_node(
    config: Config, state: Path, clock: Clock, privacy: PrivacyStage, local: Hotlist | None, *,
    configs: ConfigPushes | None = None,
) -> FleetNode | None:
    """The control channel (config.fleet, over the node's MQTT session); pushed hotlists join the local one."""
    if config.fleet is None or config.mqtt is None:
        return None

    def swap(pushed: list[Hotlist]) -> None:
        lists = ([local] if local is not None else []) + pushed
        privacy.replace_hotlist(HotlistSet(lists) if lists else None)

    return FleetNode(config.fleet, config.node, config.privacy, prefix=config.mqtt.topic_prefix, state_dir=state,
                     clock=clock, on_hotlists=swap, configs=configs)


@contextmanager
def open_node(
    config: Config,
    *,
    source: FrameSource | None = None,
    clock: Clock | None = None,
    on_pass: PassObserver | None = None,
    on_frame: Callable[[Frame], None] | None = None,
    clock_status: ClockStatus | None = None,
    config_pushes: ConfigPushes | None = None,
) -> Iterator[Node]:
    """Build and open every part; close them in reverse order (offline status, outbox) on exit.

    ``on_frame`` runs after every processed frame (the service's READY and watchdog pings);
    ``clock_status`` flags or holds reads stamped while the clock is not synchronised (config.clock).
    A recording (a video file or image folder, not a camera or stream) keeps its own time, as in a replay:
    the clock starts at the recording's start and follows its frames, so its reads are not aged out by the
    wall clock, before the first frame or after a restart.
    """
    checks = tuple(c for c in CHECKS if (c != "source" or source is None) and c != "outbox")  # Outbox.open checks
    refused = first_error(preflight(config, (clock or SystemClock()).now(), checks))  # check-config's words
    if refused is not None:
        raise refused
    if source is None and clock is None and config.capture.source not in LIVE_SOURCES:
        source = build_source(config, SystemClock())
        clock, on_frame = recording_clock(source, on_frame)
    clock = clock or SystemClock()
    state = ensure_state_dir(config.node.state_dir)
    limit_malloc_arenas()  # before the pipeline's threads: freed frames are reused across them
    formats = FormatSet.load(config.read.formats, config.read.formats_file, config.read.country)
    # one reader per worker, the backend the manifest task of read.model names
    reader, *extra_readers = build_readers(config.read, finder_workers(config.detect.workers), formats)
    detector = build_detector(config.detect)
    second_look = build_second_look(config.detect)
    topics = Topics(config.mqtt.topic_prefix if config.mqtt else "anpr", config.node.site, config.node.camera)
    redactor = node_redactor(config) if config.privacy.images_may_leave else None
    hotlist, hotlist_problem = open_hotlist(config.privacy, state, clock.now())
    if hotlist_problem is not None:
        log.error("running WITHOUT a hotlist: %s (health: hotlist_problem)", hotlist_problem)
    with ExitStack() as stack:
        outbox = stack.enter_context(Outbox(state / "outbox.sqlite", config.outbox, clock))
        audit = AuditLog(state / config.privacy.audit_file)
        ledger = Ledger(outbox, sequence=SequenceFile(state / "seq"), audit=audit, clock=clock)
        privacy = PrivacyStage(
            config.privacy,
            config.node,
            topics.reads,
            redactor=redactor,
            clock=clock,
            hotlist=hotlist,
            seq_start=ledger.open(),
            locator=_plate_locator(config),
        )
        stores: dict[DataClass, RetentionStore] = {"logs": audit}
        for data_class, store in outbox.retention_stores().items():  # reads, hits and images in the outbox
            stores[data_class] = store
        retention = Retention(config.privacy.retention, stores)
        stop_retention = threading.Event()
        stack.callback(stop_retention.set)
        threading.Thread(
            target=retention.run, args=(clock, stop_retention), name="retention", daemon=True
        ).start()
        fleet = _fleet_node(config, state, clock, privacy, hotlist, configs=config_pushes)
        publisher = None
        if config.mqtt is not None:
            publisher = stack.enter_context(
                MqttPublisher(config.mqtt, config.node, outbox, clock, software_version=__version__, control=fleet)
            )
            ledger.on_commit = publisher.notify
        gate = None
        if clock_status is not None:
            gate = ClockGate(privacy, clock_status, ledger, mode=config.clock.on_unsynced,
                             max_held=config.clock.max_held)
            stack.callback(gate.close)  # held reads reach the outbox before it closes
        plate_source = source or build_source(config, clock)
        pipeline = Pipeline(
            source=plate_source,
            detector=detector,
            reader=reader,
            formats=formats,
            tracker=PlateTracker(config.track, formats, views=tracker_views(config)),
            privacy=gate or privacy,
            outbox=ledger,
            detect_every=config.detect.every_n_frames,
            min_read_confidence=config.read.min_confidence,
            second_look=second_look,
            second_look_every=config.detect.second_look_every,
            fine_look=build_fine_look(config.detect),
            fine_look_every=config.detect.fine_look_every,
            maybe_every=config.read.maybe_every,
            live=source is None and config.capture.source in LIVE_SOURCES,
            queue_size=config.capture.queue_size,
            on_pass=on_pass,
            on_frame=on_frame,
            privacy_thread=True,  # redaction must not stall the camera
            # a node with formats publishes only reads that fit one (with none, there is nothing to fit)
            publish_unfitted=config.read.publish_unfitted or not formats.formats,
            overview=build_overview(config, clock, plate_source),
            extra_readers=extra_readers,
        )
        yield Node(config=config, pipeline=pipeline, outbox=outbox, publisher=publisher, privacy=privacy,
                   retention=retention, clock_gate=gate, ledger=ledger, audit=audit, hotlist=hotlist,
                   hotlist_problem=hotlist_problem, fleet=fleet)
