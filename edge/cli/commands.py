"""The built-in commands: check-config, run, replay, sample-scene."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.clock import iso_ms
from edge.config import Config, load_config
from edge.config.lab import lab_config
from edge.domain import Frame, OutgoingMessage, VehiclePass
from edge.errors import ConfigError
from edge.wording import counted

if TYPE_CHECKING:
    from edge.app import Node
    from edge.evaluate.progress import ReplayProgress
    from edge.evaluate.replay import TimedSource
    from edge.node.clocksync import ClockMonitor
    from edge.node.config_push import ConfigPushes, RestartRequest
    from edge.node.health import HealthReporter
    from edge.node.service import ServiceHooks, SocketNotifier

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 30.0


def check_config(args: argparse.Namespace) -> int:
    """Validate the file, then everything start-up would refuse on this machine (formats, models, state directory,
    hotlist, key files, a replay source); exit 2 naming each, change nothing."""
    from edge.clock import SystemClock
    from edge.node.preflight import check_config_file

    config, warnings = check_config_file(args.config, SystemClock().now(), schema_only=args.schema_only)
    for warning in warnings:
        print(f"{args.config}: warning: {warning}")
    mqtt = f"{config.mqtt.host}:{config.mqtt.port}" if config.mqtt else "none (reads stay in the outbox)"
    print(f"{args.config}: OK (site {config.node.site}, camera {config.node.camera}, "
          f"source {config.capture.source}, broker {mqtt}, image policy {config.privacy.image})")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the node as the systemd service does: READY after the first frame, watchdog pings from the frame loop.

    Health is published every ``health.interval_s`` and on ``SIGUSR1``. A live source that stops
    delivering frames is an error (exit 3), so the service manager restarts the node.
    """
    from edge.app import LIVE_SOURCES, open_node
    from edge.errors import EdgeError, SourceError, StateError
    from edge.node.clocksync import ClockMonitor, SystemClockProbe
    from edge.node.config_push import RESTART_EXIT, RestartRequest, watch_deadline
    from edge.node.service import ServiceHooks, SocketNotifier, Watchdog, watchdog_interval_s

    notifier = SocketNotifier.from_env()
    stop = threading.Event()
    restart = RestartRequest(stop)  # a pushed config was applied or rolled back: exit RESTART_EXIT, systemd restarts
    pushes = None
    try:
        config, config_path, pushes = _start_config(Path(args.config), restart)
        if config.mqtt is None:
            raise ConfigError(f"{args.config}: 'run' needs an mqtt section (the broker to publish to)")
        hooks = ServiceHooks(notifier, Watchdog(notifier, watchdog_interval_s()),
                             describe=lambda: f"site {config.node.site}, camera {config.node.camera}")
        hooks.status("starting: loading models, opening the camera")
        clock = ClockMonitor(SystemClockProbe(), config.clock)
        if pushes is not None:
            watch_deadline(pushes, stop)  # a pushed config on trial that is not healthy in time is rolled back
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        with open_node(config, on_frame=hooks.on_frame, clock_status=clock, config_pushes=pushes) as node:
            reporter = _health_reporter(node, clock, str(config_path), hooks, notifier, pushes=pushes)
            signal.signal(signal.SIGUSR1, lambda *_: reporter.request())
            hooks.on_ready.append(reporter.request)  # first health with real fps and latencies
            if node.fleet is not None:
                node.fleet.on_change = reporter.request  # an applied or refused push shows in health at once
            with reporter:
                try:
                    node.pipeline.run(stop)
                except StateError:
                    # A full (or failing) disk: say so in health at once, deliver what is stored, then exit 6 so
                    # systemd restarts the node and the centre sees it go offline.
                    hooks.stopping("stopping: the state directory refused a write")
                    reporter.report()
                    if node.publisher is not None and node.publisher.connected:
                        node.publisher.flush(hooks.last_ping_budget_s(FLUSH_TIMEOUT_S))
                    raise
            hooks.stopping()
            if not stop.is_set() and config.capture.source in LIVE_SOURCES:
                raise SourceError(f"capture source {config.capture.source!r} stopped delivering frames")
            if node.publisher is not None:
                node.publisher.flush(hooks.last_ping_budget_s(FLUSH_TIMEOUT_S))
    except EdgeError as exc:
        notifier.send(f"STATUS=failed: {' '.join(str(exc).split())[:180]}")
        if pushes is not None and pushes.start_failed(exc):
            log.error("stopping to start again with the last good config (exit %d)", RESTART_EXIT)
            return RESTART_EXIT
        raise
    return RESTART_EXIT if restart.requested else 0


def _start_config(path: Path, restart: RestartRequest) -> tuple[Config, Path, ConfigPushes | None]:
    """The config to run: the local file, or the centre's pushed config in its state directory (see
    :mod:`edge.node.config_push` for the precedence); the pushes only for a node with a control channel."""
    from edge.clock import SystemClock
    from edge.node.config_push import ConfigPushes

    local = load_config(path)
    if local.fleet is None or local.mqtt is None:
        return local, path, None
    pushes = ConfigPushes(path, local, restarter=restart, clock=SystemClock())
    selection = pushes.select()
    return selection.config, selection.path, pushes


def _health_reporter(
    node: Node, clock: ClockMonitor, config_path: str, hooks: ServiceHooks, notifier: SocketNotifier, *,
    pushes: ConfigPushes | None = None,
) -> HealthReporter:
    """Health for a running node: published retained over MQTT, shown by ``systemctl status``, kept in health.json."""

    from edge import __version__
    from edge.clock import SystemClock
    from edge.errors import ModelError
    from edge.node.health import HealthCollector, HealthReporter, HealthSink, Versions, summary
    from edge.runtime import load_manifest

    config = node.config
    manifest = load_manifest(config.read.manifest)
    models: dict[str, str] = {}
    for path in (config.read.model, config.privacy.face_model, config.privacy.face_check_model):
        try:
            entry = manifest.by_file(path)
        except ModelError:  # not in the manifest: the model check at start names it
            continue
        models[entry.name] = entry.sha256
    collector = HealthCollector(
        stats=lambda: node.pipeline.stats,
        fps_configured=config.capture.fps,
        state_dir=config.node.state_dir,
        versions=Versions(__version__, hashlib.sha256(Path(config_path).read_bytes()).hexdigest(), models),
        outbox=node.outbox,
        outbox_dropped=lambda: node.outbox.dropped.total,
        publisher=node.publisher,
        privacy_stats=node.privacy.stats.snapshot,
        clock=clock,
        max_offset_ms=config.clock.max_offset_ms,
        oldest=lambda: _oldest(node),
        extras=lambda: _faults(node, notifier),
        camera=lambda: _camera(node),
    )
    sinks: list[HealthSink] = [lambda body: hooks.status(summary(body))]
    if node.publisher is not None:
        publisher, wall = node.publisher, SystemClock()
        # Health is stamped with the wall clock, not a recording's: the process reports on itself now, and a
        # recording's times repeat after every restart (the centre keeps one health per node and time).
        sinks.append(lambda body: publisher.publish_health({"time": iso_ms(wall.now()), **body}))
        if pushes is not None:  # a pushed config on trial is confirmed by health published while started, connected
            sinks.append(lambda body: pushes.health_published(started=hooks.ready, connected=publisher.connected))
    return HealthReporter(
        collector, interval_s=config.health.interval_s, sinks=sinks, tick_s=config.clock.check_interval_s,
        clock=clock, max_offset_ms=config.clock.max_offset_ms,
        on_tick=node.clock_gate.release if node.clock_gate is not None else None,
        json_path=Path(config.node.state_dir) / "health.json",
    )


def _faults(node: Node, notifier: SocketNotifier) -> dict[str, Any]:
    """The audit chain's head, and the faults the node survived or is failing with, for health (a fault is left
    out while it is zero or absent)."""
    recorded = node.outbox.recorded()
    publisher = node.publisher
    faults: dict[str, Any] = {
        "notify_dropped": notifier.dropped,
        "decode_failures": int(getattr(node.pipeline.source, "decode_failures", 0)),
        "frames_refused": int(getattr(node.pipeline.source, "frames_refused", 0)),
        "storage_error": node.ledger.last_error or (publisher.state_error if publisher is not None else None),
        "passes_unstored": node.pipeline.stats.passes_unstored,
        "acks_unsaved": publisher.acks_unsaved if publisher is not None else 0,
        "outbox_set_aside": ", ".join(node.outbox.set_aside_files())[:200],
        "audit_breaks": recorded.audit_breaks,
        "audit_unwritten": node.audit.unwritten,
        "hotlist_problem": _hotlist_problem(node),
    }
    body = {k: v for k, v in faults.items() if v}
    if node.fleet is not None:
        body["fleet"] = node.fleet.health()
    if node.config.update is not None:  # the release it runs, an update in flight, the last failure (edge-anpr update)
        from edge.node.update_state import health_fields

        body["update"] = health_fields(Path(node.config.update.install_root))
    if recorded.audit_head is not None:
        body["audit_head"] = {"n": recorded.audit_head[0], "hash": recorded.audit_head[1]}
    return body


def _camera(node: Node) -> dict[str, Any]:
    """The plate camera's exposure profile and switches, and how the overview camera's frames paired, for health."""
    body: dict[str, Any] = {}
    for part in (node.pipeline.source, node.pipeline.overview):
        report = getattr(part, "camera_health", None)
        if callable(report):
            body.update(report())
    return body


def _hotlist_problem(node: Node) -> str | None:
    from edge.clock import SystemClock

    if node.hotlist is not None and node.hotlist.expired(SystemClock().now()):
        return f"hotlist {node.hotlist.list_id} expired at {iso_ms(node.hotlist.expires_at)}; running without it"
    return node.hotlist_problem


def _oldest(node: Node) -> dict[str, float]:
    """Age of the oldest item per retention class, and of the oldest read held for the clock."""
    from edge.clock import SystemClock

    ages: dict[str, float] = {str(k): v for k, v in node.retention.oldest(SystemClock().now()).items()}
    held = node.clock_gate.oldest_held_s() if node.clock_gate is not None else None
    if held is not None:
        ages["clock_held"] = held
    return ages


def replay_config(args: argparse.Namespace) -> Config:
    """The config for a replay: the given file (or the lab defaults) with the source and broker from the command
    line."""
    from edge.capture.video import recording_offset_s

    overview = getattr(args, "overview", None)
    offset = getattr(args, "overview_offset", None)
    if overview and offset is None and "://" not in overview and "://" not in str(args.source):
        offset = recording_offset_s(args.source, overview)  # two scene recordings say when each started
    return lab_config(str(args.source), config_file=args.config, start=args.start, fps=args.fps,
                      realtime=args.realtime, state_dir=args.state_dir, broker=args.broker, overview=overview,
                      overview_offset=offset, workers=getattr(args, "workers", None))


def replay(args: argparse.Namespace) -> int:
    from edge.app import LIVE_SOURCES, build_source, open_node, recording_clock
    from edge.clock import SystemClock
    from edge.evaluate.progress import ReplayProgress, frame_count, recording_length_s
    from edge.evaluate.replay import (
        PassRecorder,
        TimedSource,
        load_truth,
        score,
        table,
        video_frame_at,
        write_report,
    )

    config = replay_config(args)
    truth = load_truth(args.truth) if args.truth else None
    show_progress = sys.stderr.isatty() and not args.quiet
    progress = ReplayProgress(frame_count(config.capture.source, config.capture.path), enabled=show_progress)
    printer = _PassPrinter(quiet=args.quiet or args.json, progress=progress)
    # a live stream keeps the node's own threaded capture; files and folders are timed as they are read
    source = None if config.capture.source in LIVE_SOURCES else TimedSource(build_source(config, SystemClock()))
    recorder = PassRecorder(source, then=printer, keep_crops=bool(args.report))
    started = time.monotonic()

    def count(frame: Frame) -> None:
        progress.frame(recorder.passes, frame.index)

    # a recording is aged, expired and stamped by its own time from its start (also before its first frame, and
    # on a replay that continues an earlier one's outbox), so old recordings replay like live ones; as `run` does
    replay_clock, on_frame = recording_clock(source, count) if source is not None else (None, count)
    with open_node(config, source=source, on_pass=recorder, clock=replay_clock, on_frame=on_frame) as node:
        earlier = node.outbox.depth()
        if earlier and not args.json:
            print(f"replay: the outbox in {config.node.state_dir} already holds {earlier} reads from an earlier "
                  f"replay of this source; they are sent too (--state-dir NEW_DIR to start empty)", file=sys.stderr)
        stats = node.pipeline.run()
        progress.done()
        elapsed = time.monotonic() - started
        publisher = node.publisher
        if publisher is not None:  # wait for the broker's acknowledgements (briefly when it never answered)
            publisher.flush(FLUSH_TIMEOUT_S if publisher.connected else min(FLUSH_TIMEOUT_S, 5.0))
        published = publisher.reads_published if publisher is not None else 0
        summary: dict[str, Any] = {
            "source": str(args.source),
            "state_dir": config.node.state_dir,
            "frames": stats.frames,
            "recording_s": _recording_s(source, recording_length_s(config.capture.source, config.capture.path,
                                                                   config.capture.fps)),
            "frames_dropped": stats.frames_dropped + (source.skipped if source is not None else 0),
            "fps": round(stats.frames / elapsed, 2) if elapsed > 0 else None,
            "workers": node.pipeline.workers,
            "detect_every": config.detect.every_n_frames,
            "latency_p95_ms": recorder.latency_p95_ms,
            "passes": stats.passes - recorder.previews,
            "previews": recorder.previews,
            "unfitted_dropped": stats.passes_unfitted_dropped,
            "repeats_suppressed": node.pipeline.tracker.suppressed_repeats,
            "weak_tracks": node.pipeline.tracker.weak_passes,
            "fragments": node.pipeline.tracker.fragments,
            "sightings_excluded": node.pipeline.tracker.excluded,
            "messages": stats.messages,
            "decode_failures": int(getattr(source.source if source else None, "decode_failures", 0)),
            "frames_refused": int(getattr(source.source if source else None, "frames_refused", 0)),
            "broker": f"{config.mqtt.host}:{config.mqtt.port}" if config.mqtt else None,
            "broker_connected": publisher.connected if publisher is not None else False,
            "published": published,
            "outbox_depth": node.outbox.depth(),
        }
        summary["published_all"] = publisher is not None and summary["outbox_depth"] == 0
        if node.pipeline.overview is not None:  # a second camera: how its frames paired with the reads
            summary.update(node.pipeline.overview.stats.health())
    result = score(truth, recorder.found) if truth is not None else None
    if result is not None:
        summary.update(result.as_dict())
    if args.report:
        frame_at = video_frame_at(args.source) if config.capture.source == "video" else None
        summary["report"] = str(write_report(args.report, summary, title=f"Replay of {args.source}",
                                             found=recorder.found, result=result, frame_at=frame_at,
                                             recording_s=summary["recording_s"]))
    if result is not None and not args.json:
        print(table(result))
    summary["reads"] = printer.reads
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{counted(stats.frames, 'frame')} at {summary['fps']} fps ({summary['frames_dropped']} dropped), "
              f"{counted(summary['passes'], 'vehicle pass')}, p95 latency {summary['latency_p95_ms']} ms, "
              f"{counted(stats.messages, 'read')} queued; {_delivery(summary)}"
              + (f"; report {summary['report']}" if "report" in summary else ""), file=sys.stderr)
    if not progress.enabled and (short := progress.short_end()):
        print(f"replay: {short}", file=sys.stderr)
    if summary["decode_failures"] or summary["frames_refused"]:
        print(f"replay: WARNING: {counted(summary['decode_failures'], 'frame')} could not be decoded and "
              f"{summary['frames_refused']} refused as too large (capture.max_pixels): the source is damaged "
              f"or not what the node expects", file=sys.stderr)
    return 0


def _recording_s(source: TimedSource | None, announced_s: float | None) -> float | None:
    """How long the recording is: what the file announces, or up to its last frame when that is later."""
    seen = (source.last - source.start).total_seconds() if source and source.last and source.start else 0.0
    length = max(announced_s or 0.0, seen)
    return round(length, 2) if length > 0 else None


def _delivery(summary: dict[str, Any]) -> str:
    """Where the reads went, saying "published" only of what a broker acknowledged."""
    depth = summary["outbox_depth"]
    if summary["broker"] is None:
        return f"no broker given: outbox now holds {depth} ({summary['state_dir']})"
    if not summary["broker_connected"] and not summary["published"]:
        return f"broker {summary['broker']} not reachable, nothing published: outbox now holds {depth}"
    return f"{summary['published']} published to {summary['broker']}; outbox now holds {depth}"


class _PassPrinter:
    """Prints one line per vehicle pass as it completes, and keeps a summary for --json."""

    def __init__(self, *, quiet: bool, progress: ReplayProgress) -> None:
        self.quiet = quiet
        self.progress = progress
        self.reads: list[dict[str, Any]] = []

    def __call__(self, p: VehiclePass, message: OutgoingMessage | None) -> None:
        self.reads.append({
            "plate": p.plate,
            "first_seen": iso_ms(p.first_seen),
            "last_seen": iso_ms(p.last_seen),
            "confidence": round(p.confidence, 3),
            "format": p.format_name,
            "unconstrained": p.unconstrained,  # node-side only (the reader's own path where a format bent it)
            "direction": p.direction,
            "sightings": p.sightings,
            "preview": p.preview,
            "message_id": message.message_id if message else None,
        })
        if not self.quiet:
            self.progress.clear()
            print(f"node: first seen {iso_ms(p.first_seen)}  {p.display:<10} conf {p.confidence:.2f}  "
                  f"{p.format_name or 'no format':<20} {p.direction or 'direction unknown':<17} "
                  f"{counted(p.sightings, 'sighting'):>13}  "
                  f"{'queued ' + message.message_id if message else 'not sent (policy)'}", flush=True)


def sample_scene(args: argparse.Namespace) -> int:
    from edge.sample.overview import overview_path, write_overview
    from edge.sample.scene import default_scene, scenario, write_scene

    scenario_name = getattr(args, "scenario", None)
    spec = scenario(scenario_name, args.seed) if scenario_name else default_scene(args.seed, args.vehicles)
    video, sidecar, truth = write_scene(spec, args.output)
    print(f"wrote {video} (scene: {sidecar}, truth: {truth})")
    if getattr(args, "overview", False):
        offset = float(getattr(args, "overview_offset", 0.0) or 0.0)
        if not 0.0 <= offset < spec.duration_s:
            raise ConfigError(f"--overview-offset {offset}: must be from 0 to under the scene's {spec.duration_s} s")
        wide, wide_sidecar = write_overview(spec, overview_path(video), offset_s=offset)
        print(f"wrote {wide} (overview camera, colour, {offset:g} s after the plate camera; sidecar {wide_sidecar}); "
              f"replay both: edge-anpr replay {video} --overview {wide}")
    return 0
