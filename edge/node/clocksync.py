"""Clock synchronisation: is the wall clock that stamps reads synchronised, and by how much is it off?

SI 2022/71 wants approved devices within +-10 s of a national standard clock; a read stamped while the
clock is not synchronised (or off by more than ``clock.max_offset_ms``) is flagged ``clock_unsynced:
true`` or held back until the clock is good again (``clock.on_unsynced``), and health says so.

Where the answer comes from, best first:

- ``chronyc tracking`` (when chrony is installed): leap status and the estimated offset of the system
  clock from NTP time ("fast"/"slow"), measured by chronyd.
- ``adjtimex(2)`` with ``modes = 0`` (read only, no privilege): the kernel's NTP state, the same flag
  ``timedatectl show -p NTPSynchronized`` reports through D-Bus, and the offset the kernel is still
  slewing away (systemd-timesyncd's view).
- Neither (not Linux): unknown. Then reads are not flagged and health leaves the clock fields out,
  rather than invent an answer.

Offsets here are "system clock minus reference", in milliseconds: positive means the clock is fast.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from edge.config.model import ClockConfig
from edge.domain import OutgoingMessage, VehiclePass

log = logging.getLogger(__name__)

CHRONYC_TIMEOUT_S = 2.0
TIME_ERROR = 5  # adjtimex return value: clock not synchronised
STA_UNSYNC = 0x0040
STA_NANO = 0x2000


@dataclass(frozen=True, slots=True)
class ClockState:
    """One reading of the clock's synchronisation. ``synced`` None: this platform cannot tell."""

    synced: bool | None
    offset_ms: float | None  # system clock minus reference; None when unknown
    source: str  # "chronyc" | "adjtimex" | "none" | a test's name
    detail: str = ""
    unsynced_because: str = ""  # when ``synced`` is False: why, in words (the offset then means nothing)


UNKNOWN = ClockState(None, None, "none", "no chronyc and no adjtimex on this platform")


class ClockProbe(Protocol):
    """Reads the current synchronisation state (one backend: chronyc, adjtimex, or a fake)."""

    def read(self) -> ClockState: ...


class ClockStatus(Protocol):
    """What the privacy stage (through :class:`ClockGate`) asks: must reads be flagged right now?"""

    def clock_unsynced(self) -> bool: ...


# -- backends ---------------------------------------------------------------------------------


_SYSTEM_TIME = re.compile(r"^System time\s*:\s*([0-9.eE+-]+)\s+seconds\s+(fast|slow)\s+of NTP time", re.M)
_LEAP = re.compile(r"^Leap status\s*:\s*(.+?)\s*$", re.M)


def parse_chronyc_tracking(text: str) -> ClockState:
    """Parse the text report of ``chronyc tracking`` ("0.000012 seconds fast of NTP time", "Leap status")."""
    leap = _LEAP.search(text)
    offset = _SYSTEM_TIME.search(text)
    if leap is None:
        raise ValueError("chronyc tracking output has no 'Leap status' line")
    synced = leap.group(1).lower() != "not synchronised"
    offset_ms = None
    if offset is not None:
        seconds = abs(float(offset.group(1)))
        offset_ms = seconds * 1000.0 if offset.group(2) == "fast" else -seconds * 1000.0
    because = "" if synced else "chronyd's leap status is 'Not synchronised': it has no usable time source"
    return ClockState(synced, offset_ms, "chronyc", f"leap status: {leap.group(1)}", because)


class ChronycProbe:
    """``chronyc tracking`` (text report; the signs of the CSV report are easy to get backwards)."""

    def __init__(self, chronyc: str) -> None:
        self._chronyc = chronyc

    def read(self) -> ClockState:
        try:
            done = subprocess.run(
                [self._chronyc, "-n", "tracking"], capture_output=True, text=True, timeout=CHRONYC_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise OSError(f"chronyc tracking did not answer: {exc}") from exc
        if done.returncode != 0:
            raise OSError(f"chronyc tracking exited {done.returncode}: {done.stderr.strip()[:200]}")
        try:
            return parse_chronyc_tracking(done.stdout)
        except ValueError as exc:
            raise OSError(str(exc)) from exc


class _Timeval(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long))


class _Timex(ctypes.Structure):
    """``struct timex`` of ``<sys/timex.h>`` (Linux, glibc and musl alike)."""

    _fields_ = (
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
        ("time", _Timeval), ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int), ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int), ("_pad", ctypes.c_int * 11),
    )


def timex_state(state: int, status: int, offset: int) -> ClockState:
    """Interpret an ``adjtimex`` result: synchronised unless TIME_ERROR or STA_UNSYNC (systemd's ntp_synced)."""
    synced = state != TIME_ERROR and not status & STA_UNSYNC
    offset_ms = offset / 1e6 if status & STA_NANO else offset / 1e3
    if status & STA_UNSYNC:
        because = "the kernel's unsynchronised flag (STA_UNSYNC) is set: no time service is keeping the clock in step"
    elif state == TIME_ERROR:
        because = "the kernel reports the clock in error (TIME_ERROR): its time service lost synchronisation"
    else:
        because = ""
    return ClockState(synced, offset_ms, "adjtimex", f"kernel state {state}, status 0x{status:04x}", because)


class AdjtimexProbe:
    """The kernel's NTP state through ``adjtimex(2)`` with ``modes = 0`` (reads only, needs no capability)."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("c")
        if not sys.platform.startswith("linux") or name is None:
            raise OSError("adjtimex is only available on Linux")
        self._libc = ctypes.CDLL(name, use_errno=True)

    def read(self) -> ClockState:
        tx = _Timex()
        state = int(self._libc.adjtimex(ctypes.byref(tx)))
        if state < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"adjtimex failed (errno {errno})")
        return timex_state(state, int(tx.status), int(tx.offset))


class SystemClockProbe:
    """chronyc when installed and answering, else adjtimex, else :data:`UNKNOWN`."""

    def __init__(self, chronyc: str | None = None, adjtimex: ClockProbe | None = None) -> None:
        found = chronyc if chronyc is not None else shutil.which("chronyc")
        self._chrony = ChronycProbe(found) if found else None
        self._adjtimex = adjtimex
        if self._adjtimex is None:
            try:
                self._adjtimex = AdjtimexProbe()
            except OSError:
                self._adjtimex = None

    def read(self) -> ClockState:
        if self._chrony is not None:
            try:
                return self._chrony.read()
            except OSError as exc:
                log.debug("clock: %s; falling back to adjtimex", exc)
        if self._adjtimex is not None:
            try:
                return self._adjtimex.read()
            except OSError as exc:
                log.debug("clock: %s", exc)
        return UNKNOWN


# -- the monitor the node queries ---------------------------------------------------------------


def state_is_bad(state: ClockState, max_offset_ms: float) -> bool:
    """True when reads stamped now must be flagged: not synchronised, or off by more than the limit."""
    return why_bad(state, max_offset_ms) is not None


def why_bad(state: ClockState, max_offset_ms: float) -> str | None:
    """Why reads stamped now must be flagged, in words (the cause, not a limit it did not break), or None."""
    if state.synced is False:
        return f"not synchronised: {state.unsynced_because or state.source + ' says so'}"
    if state.offset_ms is not None and abs(state.offset_ms) > max_offset_ms:
        return (f"synchronised, but off by {state.offset_ms:+.1f} ms, more than clock.max_offset_ms "
                f"({max_offset_ms:.0f} ms)")
    return None


class ClockMonitor:
    """Caches the probe's answer for ``check_interval_s`` and logs every change of verdict. Thread-safe."""

    def __init__(self, probe: ClockProbe, config: ClockConfig, *, monotonic: Callable[[], float] = time.monotonic):
        self._probe = probe
        self._config = config
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._state: ClockState | None = None
        self._read_at = 0.0
        self._bad: bool | None = None

    @property
    def config(self) -> ClockConfig:
        return self._config

    def state(self) -> ClockState:
        """The last reading, refreshed when older than ``check_interval_s``."""
        with self._lock:
            if self._state is None or self._monotonic() - self._read_at >= self._config.check_interval_s:
                self._refresh_locked()
            assert self._state is not None
            return self._state

    def refresh(self) -> ClockState:
        with self._lock:
            self._refresh_locked()
            assert self._state is not None
            return self._state

    def clock_unsynced(self) -> bool:
        return state_is_bad(self.state(), self._config.max_offset_ms)

    def _refresh_locked(self) -> None:
        state = self._probe.read()
        self._state, self._read_at = state, self._monotonic()
        why = why_bad(state, self._config.max_offset_ms)
        bad = why is not None
        if bad != self._bad:
            if bad:
                log.warning("clock %s (%s: %s): reads will be %s", why, state.source, state.detail,
                            "held back" if self._config.on_unsynced == "hold" else "flagged")
            elif self._bad is not None:
                log.warning("clock synchronised again (%s, offset %s ms)", state.source, _ms(state.offset_ms))
            self._bad = bad


def _ms(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.1f}"


# -- flag or hold reads -------------------------------------------------------------------------


class ClockedPreparer(Protocol):
    """The privacy stage's ``prepare`` with the clock flag (``edge.privacy.stage.PrivacyStage``)."""

    def prepare(self, vehicle_pass: VehiclePass, *, clock_unsynced: bool = False) -> OutgoingMessage | None: ...


class HeldStore(Protocol):
    """Where held reads go once the clock is good again (the outbox)."""

    def put(self, message: OutgoingMessage) -> None: ...


class ClockGate:
    """The pipeline's ``PassPreparer``: asks the clock, then the privacy stage, with ``clock_unsynced`` set.

    ``mode`` "flag": the read leaves at once, flagged. "hold": a read stamped while the clock is bad is
    kept in memory (bounded by ``max_held``; the oldest is dropped and counted beyond that) and put in
    the store, still flagged, as soon as the clock is good again, or at shutdown, so it is never lost
    to a clean stop.
    """

    def __init__(
        self,
        stage: ClockedPreparer,
        status: ClockStatus,
        store: HeldStore,
        *,
        mode: Literal["flag", "hold"] = "flag",
        max_held: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_held < 1:
            raise ValueError(f"max_held {max_held} must be >= 1")
        self._stage = stage
        self._status = status
        self._store = store
        self._mode = mode
        self._max_held = max_held
        self._monotonic = monotonic
        self._held: deque[tuple[float, OutgoingMessage]] = deque()
        self._lock = threading.Lock()
        self.flagged = 0
        self.held_dropped = 0

    def prepare(self, vehicle_pass: VehiclePass) -> OutgoingMessage | None:
        unsynced = self._status.clock_unsynced()
        with self._lock:
            if not unsynced:
                self._release_locked()
            message = self._stage.prepare(vehicle_pass, clock_unsynced=unsynced)
            if message is None or not unsynced:
                return message
            self.flagged += 1
            if self._mode == "flag":
                return message
            self._held.append((self._monotonic(), message))
            if len(self._held) > self._max_held:
                self._held.popleft()
                self.held_dropped += 1
                log.error("clock hold: more than %d reads held while the clock is not synchronised; the oldest "
                          "was dropped (%d so far)", self._max_held, self.held_dropped)
            return None

    def release(self) -> int:
        """Put held reads in the store if the clock is good now (the health tick calls this); returns how many."""
        if not self._held or self._status.clock_unsynced():
            return 0
        with self._lock:
            return self._release_locked()

    def close(self) -> None:
        """At shutdown: held reads go to the store anyway (they carry the flag), so a clean stop loses none."""
        with self._lock:
            n = self._release_locked()
        if n:
            log.warning("clock hold: %d read(s) stamped while the clock was not synchronised were queued, flagged, "
                        "at shutdown", n)

    @property
    def held(self) -> int:
        return len(self._held)

    def oldest_held_s(self) -> float | None:
        with self._lock:
            return self._monotonic() - self._held[0][0] if self._held else None

    def _release_locked(self) -> int:
        n = 0
        while self._held:
            _, message = self._held[0]
            self._store.put(message)  # durable before it leaves the hold
            self._held.popleft()
            n += 1
        return n
