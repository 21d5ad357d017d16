"""Node health: what the centre needs to know about a unit on a pole, measured, never invented.

:class:`HealthCollector` builds the body of an ``anpr.health/1`` message (the publisher adds schema,
site, camera and time). A measure this platform does not have (no thermal zone, no ``get_throttled``,
no ``/proc``) is left out. :class:`HealthReporter` publishes it (retained) every
``health.interval_s``, at once when asked (:meth:`HealthReporter.request`, wired to ``SIGUSR1``) and
when the clock verdict changes; the latest body is also written to ``<state_dir>/health.json``.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from edge.files import os_error_text, write_atomic
from edge.node.clocksync import ClockState, state_is_bad
from edge.pipeline import PipelineStats

log = logging.getLogger(__name__)

MIB = 1024 * 1024
VCGENCMD_TIMEOUT_S = 2.0
CPU_ZONE_HINTS = ("cpu", "soc", "x86_pkg", "pkg-temp")


# -- platform measures (each returns None where the platform does not have it) -------------------


@dataclass(frozen=True, slots=True)
class PlatformPaths:
    """Where the platform measures are read; tests point these at a temporary tree."""

    thermal_root: Path = Path("/sys/class/thermal")
    throttled_file: Path = field(default_factory=lambda: firmware_throttled_file(Path("/sys/devices/platform")))
    proc_status: Path = Path("/proc/self/status")
    vcgencmd: str | None = "vcgencmd"  # looked up on PATH; None: never run it


def firmware_throttled_file(platform: Path) -> Path:
    """The Pi firmware's ``get_throttled`` sysfs file (``soc/soc:firmware`` on a Pi 4, ``soc@.../...`` on a Pi 5)."""
    for found in sorted(platform.glob("soc*/*firmware/get_throttled")):
        return found
    return platform / "soc" / "soc:firmware" / "get_throttled"


def cpu_temp_c(thermal_root: Path) -> float | None:
    """The CPU (SoC) thermal zone in degrees C; None when no zone says it is the CPU's."""
    try:
        zones = sorted(thermal_root.glob("thermal_zone*"))
    except OSError:
        return None
    for zone in zones:
        try:
            kind = (zone / "type").read_text().strip().lower()
            if not any(hint in kind for hint in CPU_ZONE_HINTS):
                continue
            return round(int((zone / "temp").read_text().strip()) / 1000.0, 1)
        except (OSError, ValueError):
            continue
    return None


def throttled(throttled_file: Path, vcgencmd: str | None) -> int | None:
    """The Raspberry Pi ``get_throttled`` bit mask (0: never throttled or under-voltage); None elsewhere.

    The firmware's sysfs file works inside the service sandbox; ``vcgencmd`` (needs /dev/vcio) is the
    fallback when the node runs outside it (selftest from a shell).
    """
    try:
        return int(throttled_file.read_text().strip(), 16)
    except (OSError, ValueError):
        pass
    exe = shutil.which(vcgencmd) if vcgencmd else None
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, "get_throttled"], capture_output=True, text=True, timeout=VCGENCMD_TIMEOUT_S,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = done.stdout.strip()
    if done.returncode != 0 or not text.startswith("throttled="):
        return None
    try:
        return int(text.split("=", 1)[1], 16)
    except ValueError:
        return None


def disk_free_mb(path: str | Path) -> float | None:
    """Free space (MiB) for this user on the filesystem holding ``path``."""
    try:
        return round(shutil.disk_usage(path).free / MIB, 1)
    except OSError:
        return None


def mem_rss_mb(proc_status: Path) -> float | None:
    """Resident set size (MiB) of this process from ``/proc/self/status``; None without procfs."""
    try:
        for line in proc_status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100, nearest rank); None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return round(ordered[rank - 1], 2)


def _snapshot(values: Iterable[float]) -> list[float]:
    """A copy of a deque the frame loop appends to (retried if it changed while being copied)."""
    for _ in range(3):
        try:
            return list(values)
        except RuntimeError:
            continue
    return []


# -- what the collector reads ----------------------------------------------------------------------


class OutboxView(Protocol):
    def depth(self) -> int: ...

    def oldest_age_s(self) -> float | None: ...


class PublishedCounter(Protocol):
    @property
    def reads_published(self) -> int: ...


class ClockView(Protocol):
    def state(self) -> ClockState: ...


@dataclass(frozen=True, slots=True)
class Versions:
    software: str
    config_sha256: str | None = None
    models: Mapping[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"software": self.software}
        if self.config_sha256:
            out["config_sha256"] = self.config_sha256
        if self.models:
            out["models"] = dict(self.models)
        return out


class HealthCollector:
    """Builds one health body from the live parts of the node. ``collect`` is called from one thread."""

    def __init__(
        self,
        *,
        stats: Callable[[], PipelineStats],
        fps_configured: float | None,
        state_dir: str | Path,
        versions: Versions,
        outbox: OutboxView | None = None,
        outbox_dropped: Callable[[], int] | None = None,
        publisher: PublishedCounter | None = None,
        privacy_stats: Callable[[], Mapping[str, int]] | None = None,
        clock: ClockView | None = None,
        max_offset_ms: float = 1000.0,
        oldest: Callable[[], Mapping[str, float]] | None = None,
        extras: Callable[[], Mapping[str, Any]] | None = None,
        camera: Callable[[], Mapping[str, Any]] | None = None,
        paths: PlatformPaths | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stats = stats
        self._fps_configured = fps_configured
        self._state_dir = Path(state_dir)
        self._versions = versions
        self._outbox = outbox
        self._outbox_dropped = outbox_dropped
        self._publisher = publisher
        self._privacy_stats = privacy_stats
        self._clock = clock
        self._max_offset_ms = max_offset_ms
        self._oldest = oldest
        self._extras = extras
        self._camera = camera  # the plate camera's exposure profile and the overview camera's pairing
        self._paths = paths or PlatformPaths()
        self._monotonic = monotonic
        self._started = monotonic()
        self._last: tuple[PipelineStats, int, float] | None = None

    def collect(self) -> dict[str, Any]:
        """The health body: every measure this platform has, and nothing it does not."""
        body: dict[str, Any] = {}
        self._pipeline(body)
        self._queues(body)
        if self._camera is not None:
            body.update(self._camera())
        self._platform(body)
        self._clock_fields(body)
        body["uptime_s"] = round(self._monotonic() - self._started, 1)
        body["versions"] = self._versions.as_dict()
        return {k: v for k, v in body.items() if v is not None}

    def _pipeline(self, body: dict[str, Any]) -> None:
        stats = self._stats()
        now = self._monotonic()
        if self._last is not None and self._last[0] is stats and now > self._last[2]:
            fps = (stats.frames - self._last[1]) / (now - self._last[2])  # over the last interval
        else:
            fps = stats.fps  # first report, or the loop restarted: since the loop started
        self._last = (stats, stats.frames, now)
        body["fps"] = round(max(0.0, fps), 2)
        body["fps_configured"] = self._fps_configured
        body["frames_dropped"] = stats.frames_dropped
        body["workers"] = stats.workers
        body["passes_unfitted_dropped"] = stats.passes_unfitted_dropped
        body["passes_unfitted_published"] = stats.passes_unfitted_published
        detect, ocr = _snapshot(stats.detect_ms), _snapshot(stats.ocr_ms)
        body["detect_ms_p50"], body["detect_ms_p95"] = percentile(detect, 50), percentile(detect, 95)
        body["ocr_ms_p50"], body["ocr_ms_p95"] = percentile(ocr, 50), percentile(ocr, 95)

    def _queues(self, body: dict[str, Any]) -> None:
        oldest: dict[str, float] = {}
        if self._outbox is not None:
            body["outbox_depth"] = self._outbox.depth()
            age = self._outbox.oldest_age_s()
            if age is not None:
                body["outbox_oldest_s"] = round(max(0.0, age), 1)
                oldest["outbox"] = body["outbox_oldest_s"]
        if self._outbox_dropped is not None:
            body["outbox_dropped"] = self._outbox_dropped()
        if self._publisher is not None:
            body["reads_published"] = self._publisher.reads_published
        if self._privacy_stats is not None:
            privacy = self._privacy_stats()
            for key in ("redaction_failures", "images_dropped"):
                if key in privacy:
                    body[key] = int(privacy[key])
        if self._oldest is not None:
            oldest.update({k: round(max(0.0, v), 1) for k, v in self._oldest().items()})
        if oldest:
            body["oldest"] = oldest
        if self._extras is not None:
            body.update(self._extras())  # the audit head, and what went wrong (dropped notifications, a full disk...)

    def _platform(self, body: dict[str, Any]) -> None:
        paths = self._paths
        body["cpu_temp_c"] = cpu_temp_c(paths.thermal_root)
        body["throttled"] = throttled(paths.throttled_file, paths.vcgencmd)
        body["disk_free_mb"] = disk_free_mb(self._state_dir)
        body["mem_rss_mb"] = mem_rss_mb(paths.proc_status)

    def _clock_fields(self, body: dict[str, Any]) -> None:
        if self._clock is None:
            return
        state = self._clock.state()
        if state.synced is None:
            return  # this platform cannot tell: leave it out
        # clock_synced is the verdict the reads carry: synchronised AND within clock.max_offset_ms.
        body["clock_synced"] = not state_is_bad(state, self._max_offset_ms)
        if state.offset_ms is not None:
            body["clock_offset_ms"] = round(state.offset_ms, 3)


def summary(body: Mapping[str, Any]) -> str:
    """One line for ``systemctl status`` (sd_notify STATUS=)."""
    parts = [f"{body.get('fps', 0):.1f} fps"]
    if "outbox_depth" in body:
        parts.append(f"outbox {body['outbox_depth']}")
    if "reads_published" in body:
        parts.append(f"{body['reads_published']} published")
    if "clock_synced" in body:
        parts.append("clock synced" if body["clock_synced"] else "CLOCK NOT SYNCED")
    if "cpu_temp_c" in body:
        parts.append(f"{body['cpu_temp_c']} C")
    return ", ".join(parts)


# -- the schedule ---------------------------------------------------------------------------------


class HealthSink(Protocol):
    """Takes one health body (the MQTT publisher's ``publish_health``)."""

    def __call__(self, payload: dict[str, Any]) -> None: ...


def write_json_atomic(path: Path, body: Mapping[str, Any]) -> None:
    write_atomic(path, (json.dumps(body, indent=1, sort_keys=True) + "\n").encode(), mode=0o600)


class HealthReporter:
    """Publishes health every ``interval_s`` (and on :meth:`request`) from its own thread (context manager).

    ``tick`` callbacks run on every wake-up (at least every ``tick_s``): the clock hold's release and the
    clock check; a change in the clock verdict publishes at once.
    """

    def __init__(
        self,
        collector: HealthCollector,
        *,
        interval_s: float,
        sinks: Iterable[HealthSink] = (),
        tick_s: float = 10.0,
        clock: ClockView | None = None,
        max_offset_ms: float = 1000.0,
        on_tick: Callable[[], object] | None = None,
        json_path: Path | None = None,
    ) -> None:
        if interval_s <= 0 or tick_s <= 0:
            raise ValueError(f"interval_s {interval_s} and tick_s {tick_s} must be > 0")
        self._collector = collector
        self._interval = interval_s
        self._sinks = tuple(sinks)
        self._tick = min(tick_s, interval_s)
        self._clock = clock
        self._max_offset_ms = max_offset_ms
        self._on_tick = on_tick
        self._json_path = json_path
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._clock_bad: bool | None = None
        self._json_failing = False
        self.failures = 0

    def request(self) -> None:
        """Publish as soon as possible (safe from a signal handler: it only sets an event)."""
        self._wake.set()

    def report(self) -> dict[str, Any]:
        """Collect and hand the body to every sink now; a failing sink is logged and counted, never raised."""
        body = self._collector.collect()
        for sink in self._sinks:
            try:
                sink(body)
            except Exception:  # health must never take the node down (log.exception keeps the trace)
                self.failures += 1
                log.exception("health: a sink failed; the next interval tries again")
        if self._json_path is not None:
            try:
                write_json_atomic(self._json_path, body)
            except OSError as exc:
                self.failures += 1
                if not self._json_failing:  # said once until it works again (a full disk fails every interval)
                    log.warning("health: cannot write %s: %s", self._json_path, os_error_text(exc))
                self._json_failing = True
            else:
                self._json_failing = False
        return body

    def _clock_changed(self) -> bool:
        if self._clock is None:
            return False
        state = self._clock.state()
        bad = None if state.synced is None else state_is_bad(state, self._max_offset_ms)
        changed = self._clock_bad is not None and bad != self._clock_bad
        self._clock_bad = bad
        return changed

    def run(self) -> None:
        next_due = time.monotonic()
        while not self._stop.is_set():
            if self._on_tick is not None:
                try:
                    self._on_tick()
                except Exception:  # keep reporting
                    log.exception("health: tick callback failed")
            now = time.monotonic()
            if self._wake.is_set() or now >= next_due or self._clock_changed():
                self._wake.clear()
                self.report()
                next_due = time.monotonic() + self._interval
            self._wake.wait(max(0.0, min(self._tick, next_due - time.monotonic())))

    def __enter__(self) -> HealthReporter:
        self._thread = threading.Thread(target=self.run, name="health", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
