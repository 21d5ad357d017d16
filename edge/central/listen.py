"""``edge-anpr listen``: a reference subscriber for the central side.

Subscribes (MQTT 5, persistent session, QoS 1) to the nodes' topics, validates every message
against its schema, checks that the payload's site/camera match the topic it came on, drops
duplicates by ``id`` (at-least-once delivery means a read can arrive twice), and appends reads
to JSON lines or a SQLite file. Status and health messages are validated and logged, not stored.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import signal
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Literal, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.errors import BrokerError, ConfigError
from edge.publish.schema import InvalidMessageError, Schemas
from edge.publish.topics import all_nodes

log = logging.getLogger(__name__)

OutFormat = Literal["jsonl", "sqlite"]
_KINDS = {"reads": "read", "status": "status", "health": "health"}


@dataclass(frozen=True, slots=True)
class ListenTls:
    ca_file: str
    cert_file: str
    key_file: str


@dataclass
class ListenStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    invalid: int = 0
    other: int = 0  # valid status / health messages


class _ReadStore(Protocol):
    def add(self, read: dict[str, Any], topic: str) -> bool: ...  # False: duplicate id

    def close(self) -> None: ...


class JsonLinesStore:
    """Append-only JSON lines; ids already in the file are known at start (dedup across restarts)."""

    def __init__(self, path: Path) -> None:
        self._seen: set[str] = set()
        if path.exists():
            with path.open(encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        self._seen.add(str(json.loads(line).get("id")))
        self._file = path.open("a", encoding="utf-8")

    def add(self, read: dict[str, Any], topic: str) -> bool:
        if read["id"] in self._seen:
            return False
        self._seen.add(read["id"])
        self._file.write(json.dumps(read, separators=(",", ":")) + "\n")
        self._file.flush()
        return True

    def close(self) -> None:
        self._file.close()


class SqliteStore:
    """One row per read id (PRIMARY KEY: a duplicate is ignored), the payload kept verbatim."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # paho thread writes
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS reads (id TEXT PRIMARY KEY, site TEXT NOT NULL, camera TEXT NOT NULL,"
            " seq INTEGER NOT NULL, time TEXT NOT NULL, topic TEXT NOT NULL, received_at TEXT NOT NULL,"
            " payload TEXT NOT NULL)"
        )

    def add(self, read: dict[str, Any], topic: str) -> bool:
        cur = self._db.execute(
            "INSERT OR IGNORE INTO reads VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (read["id"], read["site"], read["camera"], read["seq"], read["time"], topic,
             datetime.now(UTC).isoformat(timespec="milliseconds"), json.dumps(read, separators=(",", ":"))),
        )
        return cur.rowcount == 1

    def close(self) -> None:
        self._db.close()


def open_store(path: Path, fmt: OutFormat) -> _ReadStore:
    if not path.parent.is_dir():
        raise ConfigError(f"output directory {path.parent} does not exist")
    if fmt == "jsonl":
        return JsonLinesStore(path)
    if fmt == "sqlite":
        return SqliteStore(path)
    raise ConfigError(f"output format {fmt!r} is not supported; use 'jsonl' or 'sqlite'")


class Listener:
    """Validates and stores what arrives; paho's network thread calls ``handle``."""

    def __init__(
        self, store: _ReadStore, max_reads: int | None = None, on_read: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        self.stats = ListenStats()
        self._on_read = on_read
        self.done = threading.Event()
        self._store = store
        self._schemas = Schemas()
        self._max_reads = max_reads
        self._lock = threading.Lock()

    def handle(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self.stats.received += 1
            levels = topic.split("/")
            kind = _KINDS.get(levels[-1]) if len(levels) == 4 else None
            if kind is None:
                self.stats.invalid += 1
                log.warning("listen: ignored message on unexpected topic %r", topic)
                return
            try:
                message = self._schemas.validate_bytes(kind, payload)
            except InvalidMessageError as exc:
                self.stats.invalid += 1
                log.error("listen: invalid message on %s dropped: %s", topic, exc)
                return
            if (message["site"], message["camera"]) != (levels[1], levels[2]):
                self.stats.invalid += 1
                log.error("listen: message on %s claims site/camera %s/%s; dropped", topic,
                          message["site"], message["camera"])
                return
            if kind != "read":
                self.stats.other += 1
                log.info("listen: %s %s", topic, message.get("state", ""))
                return
            if self._store.add(message, topic):
                self.stats.stored += 1
                if self._on_read is not None:
                    self._on_read(message)
            else:
                self.stats.duplicates += 1
                log.debug("listen: duplicate read %s dropped", message["id"])
            if self._max_reads is not None and self.stats.stored >= self._max_reads:
                self.done.set()


def run_listen(
    host: str,
    port: int,
    *,
    tls: ListenTls | None,
    topic: str,
    out_path: Path,
    fmt: OutFormat = "jsonl",
    client_id: str = "edge-anpr-listen",
    max_reads: int | None = None,
    stop: threading.Event | None = None,
    timeout_s: float | None = None,
    on_read: Callable[[dict[str, Any]], None] | None = None,
) -> ListenStats:
    """Listen until ``stop`` is set, ``max_reads`` new reads were stored, or ``timeout_s`` passed.

    ``on_read`` is called with each new (validated, de-duplicated) read after it is stored.
    """
    store = open_store(out_path, fmt)
    listener = Listener(store, max_reads, on_read)
    stop = stop or threading.Event()
    # manual_ack: PUBACK only after the read is stored (or judged invalid/duplicate), so a read the
    # store could not write is delivered again after a reconnect instead of being lost.
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5, manual_ack=True)
    if tls is not None:
        client.tls_set(ca_certs=tls.ca_file, certfile=tls.cert_file, keyfile=tls.key_file,
                       cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    else:
        log.warning("listen: plain TCP to %s:%d (no TLS): lab use only", host, port)

    def on_connect(c: paho.Client, u: object, f: paho.ConnectFlags, rc: ReasonCode, p: object) -> None:
        if rc.is_failure:
            log.error("listen: broker %s:%d refused the connection: %s", host, port, rc)
            return
        log.info("listen: connected to %s:%d, subscribing to %s", host, port, topic)
        c.subscribe(topic, qos=1)

    def on_message(c: paho.Client, u: object, msg: paho.MQTTMessage) -> None:
        try:
            listener.handle(msg.topic, bytes(msg.payload))
        except (sqlite3.Error, OSError):
            log.exception("listen: cannot store the message on %s; not acknowledged, the broker resends it",
                          msg.topic)
            return
        c.ack(msg.mid, msg.qos)

    client.on_connect = on_connect
    client.on_message = on_message
    client.reconnect_delay_set(1, 30)
    session = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    session.SessionExpiryInterval = 7 * 86_400  # reads queued while the listener is away
    try:
        client.connect_async(host, port, keepalive=30, clean_start=False, properties=session)
        client.loop_start()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not (stop.is_set() or listener.done.is_set()):
            if deadline is not None and time.monotonic() >= deadline:
                break
            stop.wait(0.1)
    finally:
        client.disconnect()
        client.loop_stop()
        store.close()
    return listener.stats


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="localhost", help="Broker host name (checked against its certificate).")
    p.add_argument("--port", type=int, default=8883, help="Broker port (default 8883, TLS).")
    p.add_argument("--ca-file", help="CA that signed the broker's certificate.")
    p.add_argument("--cert-file", help="This subscriber's client certificate (CN 'central' in the example ACL).")
    p.add_argument("--key-file", help="This subscriber's private key.")
    p.add_argument("--insecure-lab-mode", action="store_true", help="Plain TCP, no TLS (lab bench only).")
    p.add_argument("--topic", default=all_nodes("anpr", "reads"), help="Topic filter (default anpr/+/+/reads).")
    p.add_argument("--out", required=True, type=Path, help="Output file (JSON lines or SQLite).")
    p.add_argument("--format", choices=("jsonl", "sqlite"), default="jsonl", help="Output format.")
    p.add_argument("--client-id", default="edge-anpr-listen", help="Fixed client id (persistent session).")
    p.add_argument("--print", action="store_true", help="Print one line per new read as it arrives.")
    p.add_argument("--images", type=Path, help="Save the image of each read that carries one into this folder.")
    p.add_argument("--count", type=int, default=None, help="Exit after this many new reads.")
    p.add_argument("--timeout", type=float, default=None, help="Exit after this many seconds.")


class ReadShower:
    """Shows reads as they arrive: a line each on stdout, and any image saved as ``<id>.jpg``."""

    def __init__(self, *, print_lines: bool, images: Path | None) -> None:
        self.print_lines = print_lines
        self.images = images
        if images is not None:
            images.mkdir(parents=True, exist_ok=True)

    def __call__(self, read: dict[str, Any]) -> None:
        saved = ""
        image = read.get("image")
        if self.images is not None and isinstance(image, dict):
            path = self.images / f"{read['id']}.jpg"
            path.write_bytes(base64.b64decode(image["data"]))
            saved = f"  image {path} ({image['kind']}, {image['redaction']['regions']} face regions redacted)"
        if self.print_lines:
            plate = read.get("plate") or read.get("plate_hash", "")[:12] or "-"
            conf = f"{read['confidence']:.2f}" if "confidence" in read else "-"
            print(f"central: received seq {read['seq']:>4}  {read['time']}  {plate:<10} conf {conf}"
                  f"  {read.get('direction') or ''}{saved}", flush=True)


def main(args: argparse.Namespace) -> int:
    tls = None
    if not args.insecure_lab_mode:
        if not (args.ca_file and args.cert_file and args.key_file):
            raise ConfigError("listen needs --ca-file, --cert-file and --key-file (or --insecure-lab-mode)")
        tls = ListenTls(args.ca_file, args.cert_file, args.key_file)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        shower = ReadShower(print_lines=args.print, images=args.images)
        stats = run_listen(args.host, args.port, tls=tls, topic=args.topic, out_path=args.out, fmt=args.format,
                           client_id=args.client_id, max_reads=args.count, stop=stop, timeout_s=args.timeout,
                           on_read=shower)
    except KeyboardInterrupt:
        return 130
    except (OSError, ssl.SSLError) as exc:
        raise BrokerError(f"listen: {args.host}:{args.port}: {exc}") from exc
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(json.dumps({"received": stats.received, "stored": stats.stored, "duplicates": stats.duplicates,
                      "invalid": stats.invalid, "status_health": stats.other}))
    return 0
