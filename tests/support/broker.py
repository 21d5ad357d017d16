"""Test support: a real Mosquitto broker on loopback and a collecting MQTT 5 subscriber.

The broker is the installed ``/usr/sbin/mosquitto`` started on a free 127.0.0.1 port with a
config written to a temporary directory; nothing listens beyond loopback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

MOSQUITTO = Path("/usr/sbin/mosquitto")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return True
        time.sleep(0.02)
    return False


class MosquittoBroker:
    """One Mosquitto process; ``stop()``/``start()`` restart it on the same port (outage tests).

    ``listener_lines`` is the listener section (after ``listener <port> 127.0.0.1``), e.g. the
    TLS options; ``persistence`` keeps sessions and queued messages across a restart (saved on a
    clean stop).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        listener_lines: tuple[str, ...] = ("allow_anonymous true",),
        persistence: bool = False,
        extra_lines: tuple[str, ...] = (),
    ) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None
        lines = [
            f"listener {self.port} 127.0.0.1",
            *listener_lines,
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {workdir}/",
            f"log_dest file {self.log_path}",
            "log_type all",
            "max_queued_messages 0",
            "max_inflight_messages 0",
            *extra_lines,
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # keep access to the 0600 key files the tests write
        self.conf_path.write_text("\n".join(lines) + "\n")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        self._proc = subprocess.Popen(
            [str(MOSQUITTO), "-c", str(self.conf_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if not wait_port(self.host, self.port, timeout):
            self.kill()
            raise RuntimeError(f"mosquitto did not listen on {self.host}:{self.port}: {self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """Clean stop (SIGTERM: a persistent broker saves its database)."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._close()

    def kill(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._close()

    def _close(self) -> None:
        if self._proc is not None and self._proc.stderr is not None:
            self._proc.stderr.close()
        self._proc = None

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    properties: dict[str, object]


def _props_dict(props: Properties | None) -> dict[str, object]:
    if props is None:
        return {}
    out: dict[str, object] = {}
    for name in ("ContentType", "PayloadFormatIndicator", "MessageExpiryInterval", "UserProperty"):
        if hasattr(props, name):
            out[name] = getattr(props, name)
    return out


@dataclass
class TlsFiles:
    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None


@dataclass
class Subscriber:
    """Collects every message on ``topic`` (QoS 1); re-subscribes after a reconnect.

    With ``client_id`` and ``persistent=True`` it keeps a session on the broker (clean_start
    off) so messages published while it was away are delivered when it comes back.
    """

    host: str
    port: int
    topic: str
    client_id: str = ""
    persistent: bool = False
    tls: TlsFiles | None = None
    messages: list[Received] = field(default_factory=list)
    connect_results: list[str] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _client: mqtt.Client | None = None

    def start(self, timeout: float = 10.0) -> Subscriber:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5
        )
        if self.tls is not None:
            client.tls_set(ca_certs=self.tls.ca_file, certfile=self.tls.cert_file, keyfile=self.tls.key_file)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.reconnect_delay_set(0.1, 0.5)
        props = None
        if self.persistent:
            props = Properties(mqtt.PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
        client.connect_async(self.host, self.port, 30, clean_start=not self.persistent, properties=props)
        self._client = client
        client.loop_start()
        if not self.wait_subscribed(timeout):
            raise RuntimeError(f"subscriber could not subscribe to {self.topic}: {self.connect_results}")
        return self

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, rc: ReasonCode, props: object
    ) -> None:
        with self._cond:
            self.connect_results.append(str(rc))
            self._subscribed = False
        if not rc.is_failure:
            client.subscribe(self.topic, qos=1)

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, rcs: object, props: object) -> None:
        with self._cond:
            self._subscribed = True
            self._cond.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain), _props_dict(msg.properties)))
            self._cond.notify_all()

    def wait_subscribed(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: getattr(self, "_subscribed", False), timeout)

    def wait_for(self, n: int, timeout: float, where: Callable[[Received], bool] | None = None) -> list[Received]:
        """Wait until ``n`` messages (matching ``where``) arrived; returns them (maybe fewer)."""
        matching: list[Received] = []
        looked = 0

        def enough() -> bool:  # each message is looked at once: the receiving thread waits while this runs
            nonlocal looked
            matching.extend(m for m in self.messages[looked:] if where is None or where(m))
            looked = len(self.messages)
            return len(matching) >= n

        with self._cond:
            self._cond.wait_for(enough, timeout)
            return matching

    def wait_for_unique(self, n: int, timeout: float, key: Callable[[Received], object]) -> list[Received]:
        """Wait until ``n`` distinct messages by ``key`` arrived (at-least-once: duplicates do not count).

        Each message's key is taken once: taking every message's again on each arrival (3,000 JSON payloads
        parsed per message) held the lock the receiving thread needs for so long that the messages came in
        slower than the wait lasted."""
        keys: set[object] = set()
        looked = 0

        def enough() -> bool:
            nonlocal looked
            keys.update(key(m) for m in self.messages[looked:])
            looked = len(self.messages)
            return len(keys) >= n

        with self._cond:
            self._cond.wait_for(enough, timeout)
            return list(self.messages)

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
