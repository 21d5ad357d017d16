"""MQTT 5 publisher: drains the durable outbox to the broker, at least once, in capture order.

A dispatcher thread takes the oldest messages from the outbox while connected, validates each
against its schema (an invalid one is rejected from the outbox, never sent) and publishes it
QoS 1. The outbox entry is deleted only after ``on_publish`` reported a successful PUBACK for
that message id. paho keeps unacknowledged messages across reconnects and re-sends them first,
so the receiving side sees reads in order; duplicates (after a crash) carry the same ``id``.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import ssl
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge.clock import Clock
from edge.config.model import MqttConfig, NodeConfig
from edge.domain import OutgoingMessage
from edge.errors import ConfigError, StateError
from edge.outbox.store import Outbox
from edge.publish.schema import InvalidMessageError, Schemas, iso_utc_ms, schema_id
from edge.publish.topics import Topics

log = logging.getLogger(__name__)
_paho_log = logging.getLogger(f"{__name__}.paho")

CONTENT_TYPE = "application/json"
_MAX_U32 = 0xFFFF_FFFF
_PACKET_OVERHEAD = 128  # fixed header, packet id and our properties, rounded up


def check_key_file(path: str) -> None:
    """Refuse a private key that is missing or readable/writable by group or others."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ConfigError(f"mqtt.tls.key_file {path}: cannot read it ({exc.strerror})") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"mqtt.tls.key_file {path} has mode {stat.S_IMODE(mode):04o}: a private key must not be accessible "
            f"by group or others; run: chmod 600 {path}"
        )


def _check_readable(label: str, path: str) -> None:
    if not Path(path).is_file() or not os.access(path, os.R_OK):
        raise ConfigError(f"{label} {path} does not exist or is not readable")


def default_client_id(mqtt: MqttConfig, node: NodeConfig) -> str:
    """The node's MQTT client id: ``mqtt.client_id``, or ``<site>-<camera>``."""
    return mqtt.client_id or f"{node.site}-{node.camera}"


def apply_credentials(client: paho.Client, mqtt: MqttConfig) -> None:
    """The node's TLS (its files checked, the broker's certificate and host name verified) and its username and
    password, set on a paho client; a bad file is a ConfigError naming it. The publisher and selftest use this."""
    if mqtt.tls is not None:
        tls = mqtt.tls
        _check_readable("mqtt.tls.ca_file", tls.ca_file)
        _check_readable("mqtt.tls.cert_file", tls.cert_file)
        check_key_file(tls.key_file)
        try:
            client.tls_set(
                ca_certs=tls.ca_file, certfile=tls.cert_file, keyfile=tls.key_file,
                cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError(
                f"mqtt.tls: cannot load CA {tls.ca_file}, certificate {tls.cert_file} or key {tls.key_file}: {exc}"
            ) from exc
        client.tls_insecure_set(False)  # verify the broker's host name against its certificate
    if mqtt.username:
        password = None
        if mqtt.password_file:
            try:
                password = Path(mqtt.password_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"mqtt.password_file {mqtt.password_file}: {exc.strerror}") from exc
        client.username_pw_set(mqtt.username, password)


class ControlHandler(Protocol):
    """Takes the messages of the node's control topics (the fleet channel, edge/node/fleet.py)."""

    subscriptions: list[str]

    def handle(self, topic: str, payload: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class _Ack:
    mid: int
    ok: bool
    reason: str


class MqttPublisher:
    """Publishes the outbox to the broker (context manager; start on enter, offline+disconnect on exit)."""

    def __init__(
        self,
        mqtt: MqttConfig,
        node: NodeConfig,
        outbox: Outbox,
        clock: Clock,
        software_version: str,
        *,
        max_inflight: int = 200,
        reconnect_max_s: int = 60,
        refused_retry_s: float = 10.0,
        control: ControlHandler | None = None,
    ) -> None:
        self._cfg = mqtt
        self._control = control
        self._node = node
        self._outbox = outbox
        self._clock = clock
        self._software = software_version
        self._topics = Topics.for_node(mqtt, node)
        self._client_id = default_client_id(mqtt, node)
        self._max_inflight = max_inflight
        self._window = max_inflight  # lowered to the broker's Receive Maximum on connect
        self._max_packet: int | None = None  # the broker's Maximum Packet Size, from CONNACK
        self._reconnect_max_s = reconnect_max_s
        self._refused_retry_s = refused_retry_s
        self._schemas = Schemas()
        self._client: paho.Client | None = None
        self._thread: threading.Thread | None = None
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._draining = threading.Event()
        self._wake = threading.Event()
        self._acks: queue.SimpleQueue[_Ack] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._inflight: dict[int, str] = {}  # mid -> message_id; touched by the dispatcher thread only
        self._inflight_n = 0
        self._paused_until = 0.0
        self._published = 0
        self._connect_failures = 0
        # Acknowledged by the broker, but the disk refused their deletion: never sent again by this process
        # (a restart sends them once more; receivers drop duplicates by id). Touched by the dispatcher only.
        self._acked_unsaved: set[str] = set()
        self._ack_retry_at = 0.0
        self._state_error: str | None = None

    # -- public ----------------------------------------------------------------------------

    @property
    def topics(self) -> Topics:
        return self._topics

    @property
    def connected(self) -> bool:
        """True only between a successful CONNACK and the next disconnect."""
        return self._connected.is_set()

    @property
    def reads_published(self) -> int:
        """Messages acknowledged by the broker since start."""
        with self._lock:
            return self._published

    @property
    def acks_unsaved(self) -> int:
        """Acknowledged messages whose deletion from the outbox the disk refused (retried; never re-sent)."""
        with self._lock:
            return len(self._acked_unsaved)

    @property
    def state_error(self) -> str | None:
        """The outbox error the dispatcher last met (a full disk), None once it works again."""
        with self._lock:
            return self._state_error

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def notify(self) -> None:
        """Wake the dispatcher (call after ``outbox.put`` to cut latency; it also polls)."""
        self._wake.set()

    def flush(self, timeout_s: float) -> bool:
        """Wait until the outbox is empty and nothing is in flight; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                inflight, unsaved = self._inflight_n, len(self._acked_unsaved)
            if inflight == 0 and self._outbox.depth() - unsaved <= 0:
                return True
            if time.monotonic() >= deadline:
                return False
            self._wake.set()
            time.sleep(0.02)

    def publish_health(self, payload: dict[str, Any]) -> None:
        """Publish retained health (schema anpr.health/1; schema/site/camera/time filled in if absent).

        Raises :class:`InvalidMessageError` if the payload does not validate. Dropped (logged at
        debug) while disconnected: the next interval's health replaces it anyway.
        """
        message = {
            "schema": schema_id("health"),
            "site": self._node.site,
            "camera": self._node.camera,
            "time": iso_utc_ms(self._clock.now()),
            **payload,
        }
        self._schemas.validate("health", message)
        client = self._client
        if client is None or not self.connected:
            log.debug("health not published: not connected to the broker")
            return
        client.publish(
            self._topics.health, json.dumps(message, separators=(",", ":")).encode(), qos=1, retain=True,
            properties=self._properties("health", expiry_s=None),
        )

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> MqttPublisher:
        client = self._build_client()
        session = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        session.SessionExpiryInterval = min(_MAX_U32, int(self._outbox.config.max_age_s))
        client.connect_async(
            self._cfg.host, self._cfg.port, keepalive=self._cfg.keepalive_s, clean_start=False,
            properties=session,
        )
        self._client = client
        client.loop_start()
        log.info("MQTT: connecting to %s:%d as %r (background, retrying with backoff)",
                 self._cfg.host, self._cfg.port, self._client_id)
        self._thread = threading.Thread(target=self._run, name="outbox-dispatcher", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop sending, wait briefly for outstanding PUBACKs, publish retained offline, disconnect."""
        client = self._client
        if client is None:
            return
        self._draining.set()
        deadline = time.monotonic() + min(2.0, timeout_s)
        while self.connected and time.monotonic() < deadline:
            with self._lock:
                if self._inflight_n == 0:
                    break
            time.sleep(0.02)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self.connected:
            info = client.publish(
                self._topics.status, self._status_payload("offline"), qos=1, retain=True,
                properties=self._properties("status", expiry_s=None),
            )
            try:
                info.wait_for_publish(timeout_s)
            except (RuntimeError, ValueError) as exc:
                log.warning("MQTT: retained offline status not confirmed before shutdown: %s", exc)
        if client.is_connected():
            client.disconnect()
        client.loop_stop()
        self._connected.clear()
        self._process_acks()
        self._client = None
        log.info("MQTT: disconnected (%d message(s) left in the outbox)", self._outbox.depth())

    # -- client setup ----------------------------------------------------------------------

    def _build_client(self) -> paho.Client:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self._client_id, protocol=paho.MQTTv5)
        client.on_log = self._on_log
        client.max_inflight_messages_set(self._max_inflight)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(1, self._reconnect_max_s)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.will_set(
            self._topics.status, self._status_payload("offline"), qos=1, retain=True,
            properties=self._properties("status", expiry_s=None, packet=PacketTypes.WILLMESSAGE),
        )
        if self._cfg.tls is None and self._cfg.insecure_lab_mode:
            log.warning(
                "MQTT INSECURE LAB MODE: plain TCP to %s:%d, no encryption, no broker authentication, "
                "no client certificate. Never use this outside a lab bench.", self._cfg.host, self._cfg.port,
            )
        elif self._cfg.tls is None:  # the config validator already refuses this; check where the socket is made
            raise ConfigError("mqtt.tls is required (or set mqtt.insecure_lab_mode: true on a lab bench)")
        apply_credentials(client, self._cfg)
        return client

    def _properties(self, kind: str, expiry_s: int | None, packet: int = PacketTypes.PUBLISH) -> Properties:
        props = Properties(packet)  # type: ignore[no-untyped-call]
        props.ContentType = CONTENT_TYPE
        props.PayloadFormatIndicator = 1
        props.UserProperty = ("schema", schema_id(kind))
        if expiry_s is not None:
            props.MessageExpiryInterval = expiry_s
        return props

    def _status_payload(self, state: str) -> bytes:
        message = {
            "schema": schema_id("status"), "site": self._node.site, "camera": self._node.camera,
            "state": state, "time": iso_utc_ms(self._clock.now()), "software": self._software,
        }
        self._schemas.validate("status", message)
        return json.dumps(message, separators=(",", ":")).encode()

    # -- paho callbacks (network thread) ---------------------------------------------------

    def _on_connect(
        self, client: paho.Client, userdata: object, flags: paho.ConnectFlags, reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._connected.clear()
            log.error("MQTT: broker %s:%d refused the connection of %r: %s (retrying with backoff)",
                      self._cfg.host, self._cfg.port, self._client_id, reason)
            return
        self._connect_failures = 0
        receive_max = getattr(properties, "ReceiveMaximum", None) if properties is not None else None
        self._window = min(self._max_inflight, int(receive_max)) if receive_max else self._max_inflight
        max_packet = getattr(properties, "MaximumPacketSize", None) if properties is not None else None
        self._max_packet = int(max_packet) if max_packet else None
        log.info("MQTT: connected to %s:%d (session present: %s)", self._cfg.host, self._cfg.port,
                 flags.session_present)
        client.publish(
            self._topics.status, self._status_payload("online"), qos=1, retain=True,
            properties=self._properties("status", expiry_s=None),
        )
        if self._control is not None and self._control.subscriptions:
            # QoS 1 on the persistent session: queued while away; retained: the latest again on every subscribe
            client.subscribe([(t, SubscribeOptions(qos=1)) for t in self._control.subscriptions])
        self._connected.set()
        self._wake.set()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        if self._control is None:
            return
        try:
            self._control.handle(msg.topic, bytes(msg.payload))
        except Exception:  # a control message must never stop the node's MQTT thread
            log.exception("MQTT: handling the control message on %s failed", msg.topic)

    def _on_log(self, client: paho.Client, userdata: object, level: int, buf: str) -> None:
        # paho 2.2 logs "Client is not connected" at ERROR after every clean disconnect: not an error.
        serious = level == paho.MQTT_LOG_ERR and not buf.startswith("Client is not connected")
        _paho_log.log(logging.WARNING if serious else logging.DEBUG, "paho: %s", buf)

    def _on_connect_fail(self, client: paho.Client, userdata: object) -> None:
        self._connect_failures += 1
        level = logging.WARNING if self._connect_failures in (1, 10) or self._connect_failures % 100 == 0 else (
            logging.DEBUG)
        log.log(level, "MQTT: cannot connect to %s:%d (attempt %d: broker down, network or TLS handshake); "
                "reads stay in the outbox, retrying with backoff up to %d s",
                self._cfg.host, self._cfg.port, self._connect_failures, self._reconnect_max_s)

    def _on_disconnect(
        self, client: paho.Client, userdata: object, flags: paho.DisconnectFlags, reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and not self._stop.is_set():
            log.warning("MQTT: disconnected from %s:%d (%s); reads stay in the outbox, reconnecting",
                        self._cfg.host, self._cfg.port, reason)

    def _on_publish(
        self, client: paho.Client, userdata: object, mid: int, reason: ReasonCode, properties: Properties
    ) -> None:
        # Called with paho's message lock held: only hand the result to the dispatcher thread.
        self._acks.put(_Ack(mid, not reason.is_failure, str(reason)))
        self._wake.set()

    # -- dispatcher thread -----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._process_acks()
                sent = 0
                if self.connected and not self._draining.is_set() and time.monotonic() >= self._paused_until:
                    sent = self._send_batch()
                self._set_state_error(None)
                if not sent:
                    self._wake.wait(0.1)
                    self._wake.clear()
            except StateError as exc:  # the outbox's disk (full, failing): said once, retried, no traceback
                self._set_state_error(str(exc))
                self._stop.wait(1.0)
            except Exception:  # the dispatcher must survive and keep the outbox draining
                log.exception("outbox dispatcher: unexpected error; retrying in 1 s")
                self._stop.wait(1.0)

    def _set_state_error(self, error: str | None) -> None:
        with self._lock:
            before, self._state_error = self._state_error, error
        if error is not None and before is None:
            log.error("outbox dispatcher: %s; retrying every second", error)
        elif error is None and before is not None:
            log.warning("outbox dispatcher: the outbox works again")

    def _save_acks(self, done: list[str]) -> None:
        """Delete acknowledged messages; when the disk refuses, keep their ids so they are not sent again, and
        retry the deletion at most every 5 s."""
        retry = time.monotonic() >= self._ack_retry_at
        ids = done + (sorted(self._acked_unsaved) if retry else [])
        if not ids:
            return
        try:
            self._outbox.ack_many(ids)
        except StateError as exc:
            with self._lock:
                first = not self._acked_unsaved
                self._acked_unsaved.update(ids)
            self._ack_retry_at = time.monotonic() + 5.0
            if first:
                log.error("MQTT: %s; %d acknowledged read(s) are kept from being sent again and deleted when the "
                          "disk allows", exc, len(ids))
            return
        with self._lock:
            saved = len(self._acked_unsaved & set(ids))
            self._acked_unsaved.difference_update(ids)
        if saved:
            log.warning("MQTT: %d acknowledged read(s) deleted from the outbox at last", saved)

    def _process_acks(self) -> None:
        done: list[str] = []
        while True:
            try:
                ack = self._acks.get_nowait()
            except queue.Empty:
                break
            message_id = self._inflight.pop(ack.mid, None)
            if message_id is None:
                continue  # status / health publishes
            if ack.ok:
                done.append(message_id)
            else:
                log.error("MQTT: broker refused message %s: %s; it stays in the outbox, retry in %.0f s",
                          message_id, ack.reason, self._refused_retry_s)
                self._paused_until = time.monotonic() + self._refused_retry_s
        self._save_acks(done)
        with self._lock:
            self._published += len(done)
            self._inflight_n = len(self._inflight)

    def _send_batch(self) -> int:
        room = self._window - len(self._inflight)
        if room <= 0:
            return 0
        sent = 0
        for msg in self._outbox.pending(room, exclude=set(self._inflight.values()) | self._acked_unsaved):
            if sent >= room:
                break
            if not self._acceptable(msg):
                continue
            if not self._publish(msg):
                break
            sent += 1
        with self._lock:
            self._inflight_n = len(self._inflight)
        return sent

    def _acceptable(self, msg: OutgoingMessage) -> bool:
        """Schema and topic check; a message that fails is rejected from the outbox (counted)."""
        reason = None
        expected = self._topics.for_kind(msg.kind)
        packet = len(msg.payload) + len(msg.topic.encode()) + _PACKET_OVERHEAD
        if self._max_packet is not None and packet > self._max_packet:
            # The broker would drop the connection on it and it would block the queue for ever.
            reason = f"{packet} bytes exceed the broker's maximum packet size of {self._max_packet} bytes"
        elif msg.topic != expected:
            reason = f"topic {msg.topic!r} is not this node's topic for {msg.kind!r} messages ({expected})"
        else:
            try:
                payload = self._schemas.validate_bytes(msg.kind, msg.payload)
                if (payload.get("site"), payload.get("camera")) != (self._node.site, self._node.camera):
                    reason = f"site/camera of the payload differ from this node's ({self._topics.base})"
            except InvalidMessageError as exc:
                reason = str(exc)
        if reason is None:
            return True
        log.error("MQTT: message %s (%s) not published: %s", msg.message_id, msg.kind, reason)
        self._outbox.reject(msg.message_id, reason)
        return False

    def _publish(self, msg: OutgoingMessage) -> bool:
        client = self._client
        if client is None:
            return False
        age = (self._clock.now() - msg.captured_at).total_seconds()
        expiry = max(1, min(_MAX_U32, int(self._outbox.config.max_age_s - age)))
        info = client.publish(msg.topic, msg.payload, qos=1, properties=self._properties(msg.kind, expiry))
        if info.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            # NO_CONN: paho queued it and sends it on reconnect; it is in flight all the same.
            self._inflight[info.mid] = msg.message_id
            return True
        log.warning("MQTT: paho did not queue message %s (%s); retrying later", msg.message_id, info.rc)
        return False
