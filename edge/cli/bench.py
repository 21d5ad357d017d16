"""``edge-anpr bench pipeline``: whole-pipeline throughput, pass latency and memory on chosen cores.

Replays a 1920x1080 recording (by default the generated ``mixed`` scene, rendered at 1920x1080 and
30 fps) through the production pipeline built by :func:`edge.app.open_node`: detection on the
640x360 stream every ``detect.every_n_frames`` frames, OCR of each plate on the full frame,
tracking and voting, the privacy stage, the durable outbox. The process is pinned to ``--cpus`` (by default
one core; ``os.sched_setaffinity``: every thread, OpenCV's and LiteRT's included, shares them), and detection
and reading run on ``--workers`` threads (by default one per pinned core, as on a node).

Figures:

- ``fps``: frames of camera input handled per second of wall time, from the first frame to the last one leaving
  the frame loop, decoding the file included (a camera delivers decoded frames, so ``fps_without_decode`` leaves
  the decoding out: with one worker only, as with more it runs beside them); ``drain_ms``: the time after the last
  frame, while the passes still open when the recording ends are ended, redacted and stored (a camera has no end);
- ``latency_p95_ms``: from the arrival of the frame that ends a track (or reaches ``max_delay_s``)
  to its message being durable in the outbox;
- ``rss_mb``: peak resident memory of the process while the node runs (``VmHWM``, reset after any
  scene rendering);
- with ``--realtime`` the file is paced at its frame rate and frames the node cannot keep up with
  are dropped, as a live camera would (``frames_dropped``);
- with ``--overview`` a second, overview camera's recording of the same scene (1920x1080, colour, wider; the
  rendered scene's, at ``--overview-fps``) is paired with the reads and is the overview image: its decoding runs
  in the frame loop, as far as the reads' times ask (``overview_frames``, ``overview_missing``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edge.capture import FrameSource
from edge.config import Config, parse_config
from edge.domain import Frame
from edge.errors import ConfigError, SourceError

log = logging.getLogger(__name__)

BENCH_SIZE = (1920, 1080)
BENCH_FPS = 30.0


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--video", metavar="FILE", help="recording to replay (default: render --scene at 1920x1080, 30 fps)")
    p.add_argument("--scene", default="mixed", help="generated scene to render when no --video (default: %(default)s)")
    p.add_argument("--save", metavar="FILE", help="keep the rendered scene here (reused when it exists)")
    p.add_argument("--config", "-c", help="node config (default: the replay lab config)")
    p.add_argument("--detect-every", type=int, metavar="N", help="run detection on every N-th frame (1..30)")
    p.add_argument("--image", choices=("none", "plate_patch", "redacted_overview"),
                   help="image policy to bench with (default: the config's)")
    p.add_argument("--realtime", action="store_true", help="pace at the recording's rate, dropping like a camera")
    p.add_argument("--overview", action="store_true",
                   help="two cameras: also render (or take --overview-video) the scene's 1920x1080 overview camera")
    p.add_argument("--overview-video", metavar="FILE", help="the overview camera's recording (with --overview)")
    p.add_argument("--overview-fps", type=float, default=BENCH_FPS,
                   help="frame rate of the rendered overview (default: %(default)s)")
    p.add_argument("--cpus", type=_cores, default=None, metavar="LIST",
                   help="cores to pin the process to, e.g. 0 or 0,1 or 0-3 (default: the last allowed core; "
                   "-1: do not pin)")
    p.add_argument("--cpu", type=_cores, dest="cpus", help=argparse.SUPPRESS)  # the earlier name, one core
    p.add_argument("--workers", type=int, metavar="N",
                   help="threads that detect and read (detect.workers; default: one per pinned core, at most 4)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def main(args: argparse.Namespace) -> int:
    from edge.app import build_source, open_node
    from edge.clock import ReplayClock, SystemClock
    from edge.evaluate.replay import PassRecorder, TimedSource, load_truth, score

    cpus = _pin(args.cpus)
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        video = _video(args, Path(tmp))
        overview = _overview(args, video) if args.overview else None
        config = _config(args, video, Path(tmp) / "state", overview)
        _reset_peak_rss()  # the figure is the node's, not the scene rendering's
        source = TimedSource(build_source(config, SystemClock()))
        timed = _SourceTimer(source)
        recorder = PassRecorder(source, keep_crops=False)
        # stamped, aged and expired by the recording's own time, as in `edge-anpr replay`
        clock = ReplayClock()
        last: list[float] = []  # when each frame left the frame loop
        with open_node(config, source=timed, on_pass=recorder, clock=clock,
                       on_frame=lambda f: _observe(clock, f, last)) as node:
            started = time.monotonic()
            stats = node.pipeline.run()
            elapsed = time.monotonic() - started
            looped = (last[-1] if last else started) - started  # to the last frame: no end of recording's drain
            queued = node.outbox.depth()  # every pass reached the durable outbox (none aged out)
            paired = node.pipeline.overview.stats.health() if node.pipeline.overview is not None else {}
            node_workers = node.pipeline.workers
        truth_file = video.with_name(video.stem + ".truth.csv")
        scored = score(load_truth(truth_file), recorder.found).as_dict() if truth_file.is_file() else {}
    frames = stats.frames
    # in realtime the time inside the source includes waiting for the next frame, and with workers the decoding
    # runs beside them: no decode figure then
    paced_ok = frames > 0 and not args.realtime and node_workers == 1
    result: dict[str, Any] = {
        "video": str(video),
        "size": list(config.capture.main_size) if args.video else list(BENCH_SIZE),
        "frames": frames,
        "frames_dropped": max(source.skipped + stats.frames_dropped, _frame_count(video) - frames),
        "detect_every": config.detect.every_n_frames,
        "fps": round(frames / looped, 1) if looped > 0 else None,
        "drain_ms": round(1000.0 * (elapsed - looped), 1),
        "fps_without_decode": round(frames / max(1e-9, elapsed - timed.seconds), 1) if paced_ok else None,
        "decode_ms_mean": round(1000.0 * timed.seconds / frames, 2) if paced_ok else None,
        "detect_ms_mean": _mean(stats.detect_ms),
        "ocr_ms_mean": _mean(stats.ocr_ms),
        "passes": len(recorder.found),
        "outbox_depth": queued,
        "latency_p95_ms": recorder.latency_p95_ms,
        "latency_max_ms": round(max(recorder.latency_ms), 1) if recorder.latency_ms else None,
        "rss_mb": _peak_rss_mb(),
        "cpus": cpus,
        "workers": node_workers,
        "realtime": bool(args.realtime),
        "image": config.privacy.image,
        "overview": str(overview) if overview is not None else None,
        **paired,
    }
    result.update({k: scored[k] for k in ("passes_true", "matched", "exact", "duplicates", "false_passes")
                   if k in scored})
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:<20} {value}")
    return 0


def _observe(clock: Any, frame: Frame, last: list[float]) -> None:
    """Move the recording's clock to ``frame`` and note when it left the frame loop."""
    clock.observe(frame.timestamp)
    last[:] = [time.monotonic()]


class _SourceTimer:
    """Adds up the time spent inside the source (reading and decoding the file, making the lores frame)."""

    def __init__(self, source: FrameSource) -> None:
        self.source = source
        self.seconds = 0.0

    def frames(self) -> Iterator[Frame]:
        it = iter(self.source.frames())
        while True:
            t0 = time.perf_counter()
            try:
                frame = next(it)
            except StopIteration:
                return
            finally:
                self.seconds += time.perf_counter() - t0
            yield frame


def _cores(text: str) -> list[int]:
    """``0``, ``0,1``, ``0-3`` or ``-1`` (do not pin) as a list of cores."""
    if text.strip() == "-1":
        return []
    cores: set[int] = set()
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            cores.update(range(int(first), int(last or first) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of cores (like 0 or 0,1 or 0-3)") from None
    if not cores:
        raise argparse.ArgumentTypeError(f"{text!r} names no core")
    return sorted(cores)


def _pin(cpus: list[int] | None) -> list[int] | None:
    """Pin the process to ``cpus`` (None: the last allowed core; []: do not pin); the cores pinned to."""
    allowed = sorted(os.sched_getaffinity(0))
    if cpus == []:
        return None
    chosen = [allowed[-1]] if cpus is None else cpus
    if not set(chosen) <= set(allowed):
        raise ConfigError(f"--cpus {','.join(map(str, chosen))}: this process may run on cores {allowed}")
    os.sched_setaffinity(0, set(chosen))
    import cv2

    cv2.setNumThreads(1)  # OpenCV sized its thread pool by the cores it saw when imported: more threads than cores
    return chosen


def _video(args: argparse.Namespace, tmp: Path) -> Path:
    if args.video:
        video = Path(args.video)
        if not video.is_file():
            raise SourceError(f"--video {args.video!r} does not exist")
        return video
    from dataclasses import replace

    from edge.sample.scene import scenario, write_scene

    target = Path(args.save) if args.save else tmp / f"{args.scene}-1080p.mp4"
    if target.is_file():
        return target
    try:
        spec = scenario(args.scene)
    except ValueError as exc:
        raise ConfigError(f"--scene: {exc}") from exc
    log.info("rendering scene %r at %dx%d, %.0f fps into %s", args.scene, *BENCH_SIZE, BENCH_FPS, target)
    write_scene(replace(spec, width=BENCH_SIZE[0], height=BENCH_SIZE[1], fps=BENCH_FPS), target)
    return target


def _overview(args: argparse.Namespace, video: Path) -> Path:
    """The overview camera's recording: given, beside the scene already rendered, or rendered now (1080p)."""
    if args.overview_video:
        given = Path(args.overview_video)
        if not given.is_file():
            raise SourceError(f"--overview-video {args.overview_video!r} does not exist")
        return given
    from dataclasses import replace

    from edge.sample.overview import overview_path, write_overview
    from edge.sample.scene import scenario

    target = overview_path(video)
    if target.is_file():
        return target
    if args.video:
        raise ConfigError("--overview with --video needs --overview-video (the overview camera's recording)")
    spec = replace(scenario(args.scene), width=BENCH_SIZE[0], height=BENCH_SIZE[1], fps=BENCH_FPS)
    log.info("rendering the overview of %r at %dx%d, %.0f fps into %s", args.scene, *BENCH_SIZE, args.overview_fps,
             target)
    write_overview(spec, target, fps=args.overview_fps, size=BENCH_SIZE)
    return target


def _config(args: argparse.Namespace, video: Path, state: Path, overview: Path | None = None) -> Config:
    from edge.config.lab import lab_config

    data = lab_config(str(video), config_file=args.config, realtime=args.realtime, state_dir=str(state),
                      overview=str(overview) if overview is not None else None,
                      overview_offset=0.0 if overview is not None else None,
                      workers=args.workers).model_dump(mode="json", exclude_none=True)
    if args.detect_every is not None:
        data["detect"] = {**data.get("detect", {}), "every_n_frames": args.detect_every}
    if args.image is not None:
        data["privacy"] = {**data.get("privacy", {}), "image": args.image}
    data.pop("mqtt", None)  # the bench measures the node up to the outbox; publishing runs beside it
    return parse_config(data, origin="bench")


def _reset_peak_rss() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")  # Linux: resets VmHWM
    except OSError:
        log.debug("cannot reset the peak RSS; rss_mb includes everything before the run")


def _peak_rss_mb() -> float:
    """Peak resident memory (VmHWM, since the reset) in MB; ru_maxrss where /proc is not there."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def _frame_count(video: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(video))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        cap.release()


def _mean(values: Iterable[float]) -> float | None:
    listed = list(values)
    return round(float(np.mean(listed)), 2) if listed else None
