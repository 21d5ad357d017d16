"""The systemd side of the node: ``sd_notify`` (READY, STATUS, WATCHDOG, STOPPING) and the frame-loop watchdog.

The protocol is small enough to implement here (see ``sd_notify(3)``): one AF_UNIX datagram with
newline-separated ``KEY=VALUE`` assignments, sent to the socket named in ``$NOTIFY_SOCKET`` (a
leading ``@`` means the Linux abstract namespace). No library is needed for that, and no dependency
is added to the Pi image; ``python-systemd`` would pull in libsystemd bindings for one ``sendto``.

READY=1 is sent only once the first frame went through the whole pipeline (so ``systemctl start``
returns when the node really reads plates). WATCHDOG=1 is sent from the frame loop itself, at most
every ``WATCHDOG_USEC / 2``: if the camera hangs or a model call never returns, the loop stops
calling :meth:`Watchdog.kick`, the pings stop and systemd kills and restarts the service.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from edge.domain import Frame

log = logging.getLogger(__name__)

MAX_STATUS_CHARS = 200


class Notifier(Protocol):
    """Sends one ``sd_notify`` message (newline-separated ``KEY=VALUE`` lines); True when it was sent."""

    def send(self, message: str) -> bool: ...


def notify_socket_address(name: str) -> str | bytes:
    """The ``sendto`` address for ``$NOTIFY_SOCKET``: a path, or ``b"\\0name"`` for an abstract socket."""
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    if name.startswith("/"):
        return name
    raise ValueError(f"NOTIFY_SOCKET {name!r} is neither an absolute path nor an abstract name starting with '@'")


def sd_notify(message: str, socket_name: str | None) -> bool:
    """Send ``message`` to the service manager's notify socket; False when there is none (not under systemd)
    or when it cannot be sent now.

    The send never blocks (``MSG_DONTWAIT``): when the manager's socket queue is full
    (``net.unix.max_dgram_qlen``, 10 on a default kernel) the notification is dropped, not waited for, so
    the frame loop that sends the watchdog pings can never hang on it; a missed ping is systemd's business.
    Errors are logged, never raised: a node must not stop reading plates because a status line failed.
    """
    if not socket_name:
        return False
    try:
        address = notify_socket_address(socket_name)
    except ValueError as exc:
        log.warning("sd_notify: %s", exc)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode(), socket.MSG_DONTWAIT, address)
    except BlockingIOError:
        log.debug("sd_notify to %s: the manager's queue is full; notification dropped", socket_name)
        return False
    except OSError as exc:
        log.warning("sd_notify to %s failed: %s", socket_name, exc.strerror or exc)
        return False
    return True


@dataclass(slots=True)
class SocketNotifier:
    """The real :class:`Notifier`: sends to ``socket_name`` (from ``$NOTIFY_SOCKET``; None: a no-op).

    ``dropped`` counts notifications that could not be sent (queue full, socket gone); reported in health.
    """

    socket_name: str | None
    dropped: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SocketNotifier:
        env = os.environ if env is None else env
        return cls(env.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        return bool(self.socket_name)

    def send(self, message: str) -> bool:
        if not self.socket_name:
            return False
        sent = sd_notify(message, self.socket_name)
        if not sent:
            self.dropped += 1
        return sent


def watchdog_interval_s(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """``WATCHDOG_USEC`` in seconds when the watchdog is meant for this process, else None (sd_watchdog_enabled)."""
    env = os.environ if env is None else env
    raw = env.get("WATCHDOG_USEC")
    if not raw:
        return None
    owner = env.get("WATCHDOG_PID")
    if owner and owner.isdigit() and int(owner) != (os.getpid() if pid is None else pid):
        return None
    try:
        usec = int(raw)
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not an integer number of microseconds; watchdog pings disabled", raw)
        return None
    return usec / 1_000_000 if usec > 0 else None


def status_line(text: str) -> str:
    """A ``STATUS=`` assignment: one line, bounded (it is shown by ``systemctl status``)."""
    flat = " ".join(text.split())
    return "STATUS=" + flat[:MAX_STATUS_CHARS]


class Watchdog:
    """Pings ``WATCHDOG=1`` when :meth:`kick` is called and half the watchdog period has passed since the last ping.

    Only the frame loop calls :meth:`kick`: pings are proof that frames are still flowing. With no
    watchdog configured (``interval_s`` None) it does nothing.
    """

    def __init__(
        self, notifier: Notifier, interval_s: float | None, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if interval_s is not None and interval_s <= 0:
            raise ValueError(f"watchdog interval {interval_s} s must be > 0 (or None for no watchdog)")
        self._notifier = notifier
        self._period = interval_s / 2.0 if interval_s is not None else None
        self._monotonic = monotonic
        self._last: float | None = None

    @property
    def period_s(self) -> float | None:
        """Seconds between pings (half of ``WATCHDOG_USEC``), or None when there is no watchdog."""
        return self._period

    def kick(self) -> bool:
        """Called once per processed frame; returns True when a ping was sent."""
        if self._period is None:
            return False
        now = self._monotonic()
        if self._last is not None and now - self._last < self._period:
            return False
        self._last = now
        return self._notifier.send("WATCHDOG=1")


class ServiceHooks:
    """The frame loop's ``on_frame`` hook: READY=1 after the first processed frame, then watchdog pings.

    ``describe`` gives the STATUS text sent with READY (for ``systemctl status``).
    """

    def __init__(self, notifier: Notifier, watchdog: Watchdog, describe: Callable[[], str] = lambda: "running") -> None:
        self._notifier = notifier
        self._watchdog = watchdog
        self._describe = describe
        self.ready = False
        self.on_ready: list[Callable[[], object]] = []  # run once, right after READY=1 (e.g. publish health)

    def on_frame(self, frame: Frame) -> None:
        if not self.ready:
            self.ready = True
            self._notifier.send("READY=1\n" + status_line(f"first frame processed; {self._describe()}"))
            log.info("service ready: first frame (index %d) went through the pipeline", frame.index)
            for callback in self.on_ready:
                callback()
        self._watchdog.kick()

    def last_ping_budget_s(self, wanted_s: float) -> float:
        """Ping once more and return how long a final step (the outbox flush) may take without the watchdog firing."""
        period = self._watchdog.period_s
        if period is None:
            return wanted_s
        self._notifier.send("WATCHDOG=1")
        return min(wanted_s, period * 1.5)  # under the full WATCHDOG_USEC (2 periods) since this ping

    def status(self, text: str) -> None:
        self._notifier.send(status_line(text))

    def stopping(self, text: str = "stopping: ending open tracks, flushing the outbox") -> None:
        self._notifier.send("STOPPING=1\n" + status_line(text))
