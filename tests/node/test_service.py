"""sd_notify and the frame-loop watchdog, against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from support.broker import MosquittoBroker, Subscriber, free_port
from support.fakes import START, FixedReader, JsonPrivacy, ListOutbox, ListSource, PassThroughFormats, ScriptedDetector
from support.field import make_node, run_cli, unwritable_dir, write_camera

from edge.config import TrackConfig
from edge.domain import Frame
from edge.node.service import (
    ServiceHooks,
    SocketNotifier,
    Watchdog,
    notify_socket_address,
    sd_notify,
    status_line,
    watchdog_interval_s,
)
from edge.pipeline import Pipeline
from edge.track import PlateTracker


@dataclass
class FakeSystemd:
    """A bound AF_UNIX datagram socket that records every notification with its arrival time."""

    sock: socket.socket
    name: str
    received: list[tuple[float, str]] = field(default_factory=list)

    def listen(self, stop: threading.Event) -> threading.Thread:
        """Record arrivals as they happen (for timing), until ``stop`` is set."""

        def loop() -> None:
            while not stop.is_set():
                self.drain(0.01)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread

    def drain(self, timeout: float = 0.05) -> list[str]:
        self.sock.settimeout(timeout)
        while True:
            try:
                data = self.sock.recv(4096)
            except (TimeoutError, BlockingIOError):
                break
            self.received.append((time.monotonic(), data.decode()))
        return [m for _, m in self.received]


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    try:
        yield FakeSystemd(sock, str(path))
    finally:
        sock.close()


def _pipeline(source: object, hooks: ServiceHooks) -> Pipeline:
    return Pipeline(
        source=source,  # type: ignore[arg-type]
        detector=ScriptedDetector({}),
        reader=FixedReader("AB12CDE"),
        formats=PassThroughFormats(),
        tracker=PlateTracker(TrackConfig()),
        privacy=JsonPrivacy(),
        outbox=ListOutbox(),
        on_frame=hooks.on_frame,
    )


def test_notify_reaches_a_path_socket(systemd: FakeSystemd) -> None:
    assert sd_notify("READY=1\nSTATUS=ok", systemd.name)
    assert systemd.drain() == ["READY=1\nSTATUS=ok"]


def test_notify_reaches_an_abstract_socket_named_with_at() -> None:
    name = f"edge-anpr-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert SocketNotifier(f"@{name}").send("WATCHDOG=1")
        sock.settimeout(1)
        assert sock.recv(100) == b"WATCHDOG=1"


def test_without_notify_socket_nothing_is_sent_and_nothing_fails() -> None:
    notifier = SocketNotifier.from_env({})
    assert not notifier.enabled
    assert not notifier.send("READY=1")


def test_a_full_notify_queue_never_blocks_the_sender_and_counts_what_it_dropped(systemd: FakeSystemd) -> None:
    # Nobody reads the socket: its queue fills after net.unix.max_dgram_qlen datagrams (10 on a default kernel).
    notifier = SocketNotifier(systemd.name)
    done = threading.Event()

    def flood() -> None:
        for _ in range(5000):
            notifier.send("WATCHDOG=1")
        done.set()

    threading.Thread(target=flood, daemon=True).start()
    assert done.wait(10), "sd_notify blocked on a full queue"
    assert notifier.dropped > 0
    received = systemd.drain()
    assert len(received) + notifier.dropped == 5000
    assert notifier.send("READY=1"), "sent again once the manager read its queue"


def test_a_vanished_notify_socket_is_logged_not_raised(tmp_path: Path) -> None:
    assert not sd_notify("READY=1", str(tmp_path / "gone"))
    assert not sd_notify("READY=1", "relative/path")
    with pytest.raises(ValueError, match="absolute path"):
        notify_socket_address("relative")


def test_watchdog_interval_comes_from_watchdog_usec_for_this_pid_only() -> None:
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1234"}, pid=1234) == 30.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, pid=1234) is None
    assert watchdog_interval_s({}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "0"}) is None


def test_watchdog_pings_at_most_every_half_interval(systemd: FakeSystemd) -> None:
    now = [100.0]
    dog = Watchdog(SocketNotifier(systemd.name), 10.0, monotonic=lambda: now[0])
    sent = []
    for t in (100.0, 101.0, 104.9, 105.0, 105.1, 109.0, 110.0):
        now[0] = t
        sent.append(dog.kick())
    assert sent == [True, False, False, True, False, False, True]
    assert systemd.drain() == ["WATCHDOG=1"] * 3
    assert dog.period_s == 5.0


def test_no_watchdog_configured_means_no_pings(systemd: FakeSystemd) -> None:
    dog = Watchdog(SocketNotifier(systemd.name), None)
    assert not dog.kick()
    assert systemd.drain() == []


def test_ready_is_sent_only_after_the_first_frame_went_through_the_pipeline(systemd: FakeSystemd) -> None:
    notifier = SocketNotifier(systemd.name)
    hooks = ServiceHooks(notifier, Watchdog(notifier, None), describe=lambda: "site s1, camera c1")
    readied: list[int] = []
    hooks.on_ready.append(lambda: readied.append(1))
    pipeline = _pipeline(ListSource(5), hooks)
    assert systemd.drain() == []  # built, but no frame yet: not ready
    pipeline.run()
    messages = systemd.drain()
    assert len(messages) == 1
    assert readied == [1]  # once, not per frame
    assert messages[0].startswith("READY=1\nSTATUS=first frame processed; site s1, camera c1")


def test_ready_is_never_sent_when_the_camera_fails_before_the_first_frame(systemd: FakeSystemd) -> None:
    notifier = SocketNotifier(systemd.name)
    hooks = ServiceHooks(notifier, Watchdog(notifier, 1.0))
    with pytest.raises(RuntimeError, match="camera vanished"):
        _pipeline(ListSource(5, fail_after=0), hooks).run()
    assert systemd.drain() == []


def test_stopping_and_status_lines_are_one_bounded_line(systemd: FakeSystemd) -> None:
    notifier = SocketNotifier(systemd.name)
    hooks = ServiceHooks(notifier, Watchdog(notifier, None))
    hooks.status("12 fps,\n outbox 3" + "x" * 500)
    hooks.stopping()
    status, stopping = systemd.drain()
    assert status.startswith("STATUS=12 fps, outbox 3")
    assert "\n" not in status
    assert len(status) <= 207
    assert stopping.startswith("STOPPING=1\nSTATUS=")
    assert status_line("a\n\tb") == "STATUS=a b"


class StallingSource:
    """Delivers frames every ``period`` seconds until ``stall`` is set, then hangs (a frozen camera)."""

    def __init__(self, period: float) -> None:
        self.period = period
        self.stall = threading.Event()
        self.release = threading.Event()
        self.stalled_at: float | None = None

    def frames(self) -> Iterator[Frame]:
        image = np.zeros((90, 160, 3), np.uint8)
        i = 0
        while not self.stall.is_set():
            yield Frame(i, START + timedelta(seconds=i * self.period), image, image[::2, ::2].copy())
            i += 1
            time.sleep(self.period)
        self.stalled_at = time.monotonic()
        self.release.wait(10)  # hung: no frame, no error


def test_watchdog_pings_stop_when_the_frame_loop_stalls(systemd: FakeSystemd) -> None:
    notifier = SocketNotifier(systemd.name)
    watchdog = Watchdog(notifier, 0.2)  # WATCHDOG_USEC=200000: a ping at most every 0.1 s
    hooks = ServiceHooks(notifier, watchdog)
    source = StallingSource(period=0.01)
    pipeline = _pipeline(source, hooks)
    done = threading.Event()
    listener = systemd.listen(done)
    runner = threading.Thread(target=pipeline.run, daemon=True)
    runner.start()
    time.sleep(0.6)
    source.stall.set()
    time.sleep(0.6)  # six watchdog periods of silence: systemd would have killed the service
    done.set()
    listener.join(5)
    source.release.set()
    runner.join(5)

    assert source.stalled_at is not None
    pings = [t for t, m in systemd.received if "WATCHDOG=1" in m]
    assert systemd.received[0][1].startswith("READY=1")
    assert len(pings) >= 3, "pings while frames flow"
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert min(gaps) >= 0.09, "never more often than half the watchdog interval"
    late = [t for t in pings if t > source.stalled_at + 0.05]
    assert late == [], "no ping once the loop stopped getting frames"


# -- the `run` command as systemd starts it (a subprocess with NOTIFY_SOCKET and WATCHDOG_USEC) --------------


def _run_service(node_config: Path, systemd: FakeSystemd, *, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``edge-anpr run`` with the fake systemd reading its socket all the while, as systemd does (a default kernel
    queues only 10 datagrams: read afterwards, the node's 11th notification would find the queue full), under the
    usual umask 022."""
    env = {"NOTIFY_SOCKET": systemd.name, "WATCHDOG_USEC": "100000"}  # ping at most every 50 ms
    stop = threading.Event()
    listener = systemd.listen(stop)
    old = os.umask(0o022)
    try:
        return run_cli("run", "--config", str(node_config), env=env, timeout=timeout)
    finally:
        os.umask(old)
        stop.set()
        listener.join(5)


@pytest.mark.integration
def test_run_becomes_ready_pings_the_watchdog_publishes_health_and_stops_cleanly(
    mosquitto: MosquittoBroker, systemd: FakeSystemd, tmp_path: Path
) -> None:
    node = make_node(tmp_path, broker_port=mosquitto.port, camera=write_camera(tmp_path / "camera", frames=120),
                     extra="health: {interval_s: 60}\n")
    done = _run_service(node.config, systemd)
    assert done.returncode == 0, done.stderr[-3000:]
    messages = systemd.drain()
    kinds = [m.split("=", 1)[0] for m in messages]
    ready = kinds.index("READY")
    assert "STATUS" in kinds[:ready]  # "starting: ..." before READY
    assert "WATCHDOG" in kinds[ready:], messages
    assert "WATCHDOG" not in kinds[:ready]
    assert kinds.index("STOPPING") > ready
    health = json.loads((node.state / "health.json").read_text())
    assert health["fps_configured"] == 25.0
    loose = {p.name: oct(p.stat().st_mode) for p in node.state.iterdir() if p.stat().st_mode & 0o077}
    assert loose == {}, "every state file is the node's alone, whatever the umask"
    assert health["versions"]["models"]["tiny_ocr"]
    late = Subscriber(mosquitto.host, mosquitto.port, "anpr/site1/cam1/health").start()
    try:
        got = late.wait_for(1, 5)
    finally:
        late.stop()
    assert got, "health is retained on the broker"
    assert got[0].retain


def test_run_never_hangs_when_systemd_does_not_read_its_notify_socket(systemd: FakeSystemd, tmp_path: Path) -> None:
    # WATCHDOG_USEC=2: a ping after every frame, far more than the socket's queue holds while nobody reads it.
    node = make_node(tmp_path, broker_port=free_port(), camera=write_camera(tmp_path / "camera", frames=60))
    env = {"NOTIFY_SOCKET": systemd.name, "WATCHDOG_USEC": "2"}
    done = run_cli("run", "--config", str(node.config), env=env, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(systemd.drain()) <= 60  # the queue's worth; the rest were dropped, never waited for


@pytest.mark.parametrize(
    ("case", "code", "needle"),
    [
        ("missing camera", 3, "does not exist"),
        ("wrong model hash", 4, "but the manifest expects"),
        ("unwritable state directory", 6, "state directory"),
        ("bad config", 2, "invalid configuration"),
    ],
)
def test_run_fails_fast_with_one_message_and_its_exit_code(
    case: str, code: int, needle: str, systemd: FakeSystemd, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens: an unreachable broker alone is not fatal (the outbox keeps reads)
    node = {
        "missing camera": lambda: make_node(tmp_path, broker_port=port, camera=tmp_path / "unplugged"),
        "wrong model hash": lambda: make_node(tmp_path, broker_port=port, wrong_hash=True),
        "unwritable state directory": lambda: make_node(tmp_path, broker_port=port, state=unwritable_dir(tmp_path)),
        "bad config": lambda: make_node(tmp_path, broker_port=port, extra="outbox: {max_age_s: -1}\n"),
    }[case]()
    started = time.monotonic()
    done = _run_service(node.config, systemd, timeout=30)
    assert done.returncode == code, done.stderr[-3000:]
    assert time.monotonic() - started < 30, "a failure, not a hang"
    errors = [line for line in done.stderr.splitlines() if line.startswith("edge-anpr: error:")]
    assert len(errors) == 1, done.stderr
    assert needle in done.stderr
    assert "Traceback" not in done.stderr
    messages = systemd.drain()
    assert not any(m.startswith("READY=1") for m in messages), "never ready"
    assert any(m.startswith("STATUS=failed: ") for m in messages), messages


@pytest.mark.integration
def test_run_with_an_unreachable_broker_is_ready_and_says_it_cannot_connect(
    systemd: FakeSystemd, tmp_path: Path
) -> None:
    node = make_node(tmp_path, broker_port=free_port())
    done = _run_service(node.config, systemd)
    assert done.returncode == 0, done.stderr[-3000:]
    assert any(m.startswith("READY=1") for m in systemd.drain())
    assert "cannot connect to 127.0.0.1" in done.stderr


def test_the_final_flush_fits_inside_the_watchdog_interval(systemd: FakeSystemd) -> None:
    notifier = SocketNotifier(systemd.name)
    assert ServiceHooks(notifier, Watchdog(notifier, 30.0)).last_ping_budget_s(60.0) == 22.5
    assert systemd.drain() == ["WATCHDOG=1"]
    assert ServiceHooks(notifier, Watchdog(notifier, None)).last_ping_budget_s(60.0) == 60.0
