"""``edge-anpr listen``: the reference central subscriber.

Subscribes (MQTT 5, persistent session, QoS 1, manual acknowledgement) to the nodes' reads, status and
health. Every message ends in exactly one of: stored, duplicate (the same read id, or the same status or
health message, is already kept) or rejected into the dead letters with its reason; and only then is it
acknowledged, so a message the store could not take yet comes again, and no message can stop the
subscriber. Several listeners share one stream with an MQTT 5 shared subscription (``--share GROUP``):
the broker hands each message to one of them; each needs its own fixed ``--client-id`` (its session holds
its share while it restarts). Stores: PostgreSQL (``--store postgresql://...``), SQLite (the embedded
default) or JSON lines (lab). Retention at the centre uses the node's classes (``--retention``).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.central.images import ImageFiles
from edge.central.intake import MAX_PAYLOAD_BYTES, Intake
from edge.central.records import ReadRecord
from edge.central.store import StoreSpec, open_store, parse_store
from edge.central.writer import Delivery, ListenStats, Writer
from edge.clock import Clock, SystemClock
from edge.config.model import RetentionConfig
from edge.errors import BrokerError, ConfigError, StateError
from edge.publish.topics import all_nodes
from edge.wording import counted

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 86_400  # what the broker keeps for a listener that is away (its queue, its share)
RECEIVE_MAXIMUM = 2000  # unacknowledged messages the broker may have in flight to one listener

__all__ = ["ListenOptions", "ListenStats", "ListenTls", "configure_parser", "main", "run_listen"]


@dataclass(frozen=True, slots=True)
class ListenTls:
    ca_file: str
    cert_file: str
    key_file: str


@dataclass(frozen=True, slots=True)
class ListenOptions:
    host: str
    port: int
    store: StoreSpec
    tls: ListenTls | None = None
    topics: tuple[str, ...] = ("anpr/+/+/reads", "anpr/+/+/status", "anpr/+/+/health")
    share: str | None = None  # MQTT 5 shared subscription group
    client_id: str = "edge-anpr-listen"
    max_reads: int | None = None
    timeout_s: float | None = None
    connect_timeout_s: float = 15.0
    max_batch: int = 500
    receive_maximum: int = RECEIVE_MAXIMUM
    max_bytes: int = MAX_PAYLOAD_BYTES
    keepalive_s: int = 30
    retention: RetentionConfig | None = field(default_factory=RetentionConfig)  # None: no purge (cron purges)
    filters: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        prefix = f"$share/{self.share}/" if self.share else ""
        object.__setattr__(self, "filters", tuple(prefix + t for t in self.topics))


def _topic_of(msg: paho.MQTTMessage) -> str:
    try:
        return msg.topic
    except UnicodeDecodeError:
        return repr(msg._topic)  # Mosquitto refuses such topics; kept readable for the dead letter


class _Session:
    """The MQTT side: connect (exit 5 when that fails), subscribe, hand messages to the writer, ack later."""

    def __init__(self, options: ListenOptions, writer: Writer, intake: Intake) -> None:
        self.options = options
        self._writer = writer
        self._intake = intake
        self._generation = 0  # connections so far: an ack is only sent on the connection the message came on
        self._accepting = True
        self._connack = threading.Event()
        self._suback = threading.Event()
        self._refusal: str | None = None
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=options.client_id, protocol=paho.MQTTv5,
                                  manual_ack=True)
        if options.tls is not None:
            t = options.tls
            self.client.tls_set(ca_certs=t.ca_file, certfile=t.cert_file, keyfile=t.key_file,
                                cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        else:
            log.warning("listen: plain TCP to %s:%d (no TLS): lab use only", options.host, options.port)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 30)

    def connect(self) -> None:
        o = self.options
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = o.receive_maximum
        deadline = time.monotonic() + o.connect_timeout_s
        where = f"{o.host}:{o.port}"
        while True:
            try:
                self.client.connect(o.host, o.port, keepalive=o.keepalive_s, clean_start=False, properties=props)
                break
            except ssl.SSLError as exc:  # a certificate or handshake problem does not go away by waiting
                raise BrokerError(f"listen: TLS handshake with {where} failed: {exc}") from exc
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise BrokerError(f"listen: cannot connect to the broker at {where}: {exc}") from exc
                log.warning("listen: cannot connect to %s yet (%s); trying again", where, exc)
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        self.client.loop_start()
        if not self._connack.wait(max(1.0, deadline - time.monotonic())):
            raise BrokerError(f"listen: the broker at {where} did not answer the connection in time")
        if self._refusal is not None:
            raise BrokerError(f"listen: the broker at {where} {self._refusal}")
        if not self._suback.wait(max(1.0, deadline - time.monotonic())):
            raise BrokerError(f"listen: the broker at {where} did not confirm the subscription in time")
        if self._refusal is not None:
            raise BrokerError(f"listen: the broker at {where} {self._refusal}")
        log.info("listen: connected to %s, subscribed to %s", where, ", ".join(o.filters))

    def _on_connect(self, c: paho.Client, u: object, f: paho.ConnectFlags, rc: ReasonCode, p: object) -> None:
        if rc.is_failure:
            self._refusal = f"refused the connection: {rc}"
            log.error("listen: broker %s:%d %s", self.options.host, self.options.port, self._refusal)
            self._connack.set()
            self._suback.set()
            return
        self._generation += 1
        c.subscribe([(t, 1) for t in self.options.filters])
        self._connack.set()

    def _on_subscribe(self, c: paho.Client, u: object, mid: int, codes: list[ReasonCode], p: object) -> None:
        refused = [f"{t} ({rc})" for t, rc in zip(self.options.filters, codes, strict=False) if rc.is_failure]
        if refused:
            self._refusal = f"refused the subscription to {', '.join(refused)}"
            log.error("listen: %s", self._refusal)
        self._suback.set()

    def _on_message(self, c: paho.Client, u: object, msg: paho.MQTTMessage) -> None:
        if not self._accepting:
            return  # closing: not acknowledged, so the broker delivers it again
        payload = msg.payload if isinstance(msg.payload, bytes) else bytes(msg.payload)
        record = self._intake.judge(_topic_of(msg), payload)
        generation, mid, qos = self._generation, msg.mid, msg.qos

        def ack() -> None:
            if self._generation == generation:
                c.ack(mid, qos)

        self._writer.put(Delivery(record, ack))

    def close(self) -> None:
        self._accepting = False

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run_listen(options: ListenOptions, *, stop: threading.Event | None = None,
               on_read: Callable[[ReadRecord], None] | None = None, clock: Clock | None = None) -> ListenStats:
    """Listen until ``stop`` is set, ``max_reads`` new reads were stored, or ``timeout_s`` passed.

    Raises BrokerError when the broker cannot be reached, refuses, or the TLS handshake fails, and
    StateError when the store cannot be opened. ``clock`` stamps arrivals and drives retention.
    """
    stop = stop or threading.Event()
    clock = clock or SystemClock()
    store = open_store(options.store)
    purging = threading.Event()
    purger: threading.Thread | None = None
    writer = Writer(store, max_batch=options.max_batch, queue_size=2 * options.receive_maximum,
                    max_reads=options.max_reads, on_read=on_read)
    session = _Session(options, writer, Intake(clock, max_bytes=options.max_bytes))
    writing = threading.Event()
    thread = threading.Thread(target=writer.run, args=(writing,), name="listen-writer", daemon=True)
    thread.start()
    try:
        purger = _start_retention(options, clock, purging)
        session.connect()
        deadline = None if options.timeout_s is None else time.monotonic() + options.timeout_s
        while not (stop.is_set() or writer.done.is_set()):
            if deadline is not None and time.monotonic() >= deadline:
                break
            stop.wait(0.1)
    finally:
        session.close()
        writing.set()
        thread.join()
        session.disconnect()
        store.close()
        purging.set()
        if purger is not None:
            purger.join(30)
    if writer.failed is not None:
        raise StateError(f"listen: the store writer failed: {writer.failed}")
    return writer.stats


def _start_retention(options: ListenOptions, clock: Clock, stop: threading.Event) -> threading.Thread | None:
    if options.retention is None:
        return None
    if options.store.kind == "jsonl":
        log.warning("listen: JSON lines keep everything (no retention): use SQLite or PostgreSQL for a deployment")
        return None
    from edge.central.retention import describe, start_purging
    from edge.central.store.sql import SqlStore

    store = open_store(options.store)  # its own connection: purging never holds up the writer's batches
    assert isinstance(store, SqlStore)
    log.info("listen: retention: %s", describe(options.retention))
    return start_purging(store, options.retention, clock, stop)


class ReadShower:
    """Shows reads as they are stored: a line each on stdout, with the image file when there is one."""

    def __init__(self, images: ImageFiles) -> None:
        self.images = images

    def __call__(self, read: ReadRecord) -> None:
        saved = ""
        if read.image is not None:
            path = self.images.root / self.images.relative_path(read)
            saved = f"  image {path} ({read.image.kind}, {counted(read.image.regions, 'face region')} redacted)"
        plate = read.plate or (read.plate_hash or "")[:12] or "-"
        conf = "-" if read.confidence is None else f"{read.confidence:.2f}"
        direction = "direction unknown" if read.direction == "unknown" else (read.direction or "")  # read.v1.json
        print(f"central: received seq {read.seq:>4}  time (best sighting) {read.document['time']}  {plate:<10} "
              f"conf {conf}  {direction}{saved}", flush=True)


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = """\
examples:
  edge-anpr listen --host broker.example.org --ca-file ca.crt --cert-file central.crt --key-file central.key \\
      --store postgresql://anpr@db.example.org/anpr --images /srv/anpr/images
  three listeners sharing the stream (each its own --client-id; run each under systemd, Restart=always):
  edge-anpr listen ... --share central --client-id central-1 --store postgresql://... --images /srv/anpr/images
  edge-anpr listen --insecure-lab-mode --port 1883 --store out/reads.sqlite      (SQLite, the embedded default)

exit codes: 0 ok, 2 bad options, 5 broker unreachable, refused or TLS failure, 6 store unavailable"""
    p.add_argument("--host", default="localhost", help="Broker host name (checked against its certificate).")
    p.add_argument("--port", type=int, default=8883, help="Broker port (default 8883, TLS).")
    p.add_argument("--ca-file", help="CA that signed the broker's certificate.")
    p.add_argument("--cert-file", help="This subscriber's client certificate (CN 'central' in the example ACL).")
    p.add_argument("--key-file", help="This subscriber's private key.")
    p.add_argument("--insecure-lab-mode", action="store_true", help="Plain TCP, no TLS (lab bench only).")
    p.add_argument("--topic", action="append", metavar="FILTER",
                   help="Topic filter; repeat for several (default: anpr/+/+/reads, .../status and .../health).")
    p.add_argument("--share", metavar="GROUP",
                   help="Join the MQTT 5 shared subscription $share/GROUP/...: the broker gives each message to one "
                        "listener of the group. Needs a fixed --client-id per listener.")
    p.add_argument("--store", metavar="URL_OR_FILE",
                   help="postgresql://user@host/db, sqlite:FILE, jsonl:FILE, or a file (.sqlite/.db: SQLite).")
    p.add_argument("--out", type=Path, help="Output file (the same as --store FILE; kept for older scripts).")
    p.add_argument("--format", choices=("jsonl", "sqlite"), help="Format of a --store/--out file (default: suffix).")
    p.add_argument("--images", type=Path,
                   help="Folder for the reads' images (one file each; default for a file store: <file stem>-images "
                        "beside it; required for PostgreSQL).")
    p.add_argument("--client-id", help="Fixed client id (persistent session; default edge-anpr-listen).")
    p.add_argument("--print", action="store_true", help="Print one line per new read as it is stored.")
    p.add_argument("--count", type=int, default=None, help="Exit after this many new reads.")
    p.add_argument("--timeout", type=float, default=None, help="Exit after this many seconds.")
    p.add_argument("--connect-timeout", type=float, default=15.0,
                   help="Give up (exit 5) when the broker cannot be reached for this long at start (default 15).")
    p.add_argument("--retention", type=Path, metavar="FILE",
                   help="Retention at the centre: YAML with the keys of the node's privacy.retention (non_hit_reads_s, "
                        "hit_reads_s, images_s, logs_s, purge_interval_s). Default: the node's defaults.")
    p.add_argument("--no-purge", action="store_true",
                   help="Do not purge here (run 'edge-anpr central purge' from cron, or another listener purges).")
    p.add_argument("--max-batch", type=int, default=500, help="Most messages written in one transaction.")
    p.add_argument("--max-bytes", type=int, default=MAX_PAYLOAD_BYTES,
                   help=f"Larger messages are dead letters (default {MAX_PAYLOAD_BYTES}).")


def options_from_args(args: argparse.Namespace) -> ListenOptions:
    tls = None
    if not args.insecure_lab_mode:
        if not (args.ca_file and args.cert_file and args.key_file):
            raise ConfigError("listen needs --ca-file, --cert-file and --key-file (or --insecure-lab-mode)")
        tls = ListenTls(args.ca_file, args.cert_file, args.key_file)
    target = args.store or (str(args.out) if args.out else None)
    if target is None:
        raise ConfigError("listen needs --store (postgresql://..., or a SQLite or JSON lines file)")
    if args.share is not None and not args.client_id:
        raise ConfigError(f"--share {args.share} needs a fixed --client-id for each listener (e.g. central-1, "
                          "central-2): its session keeps its share of the messages while it restarts")
    if args.share is not None and (not args.share or any(c in args.share for c in "/+#")):
        raise ConfigError(f"--share {args.share!r}: a share group name cannot be empty or hold '/', '+' or '#'")
    retention: RetentionConfig | None = None
    if not args.no_purge:
        from edge.central.retention import load_retention

        retention = load_retention(args.retention) if args.retention else RetentionConfig()
    topics: Sequence[str] = args.topic or [all_nodes("anpr", k) for k in ("reads", "status", "health")]
    return ListenOptions(
        host=args.host, port=args.port, tls=tls, store=parse_store(target, fmt=args.format, images=args.images),
        topics=tuple(topics), share=args.share, client_id=args.client_id or "edge-anpr-listen",
        max_reads=args.count, timeout_s=args.timeout, connect_timeout_s=args.connect_timeout,
        max_batch=args.max_batch, max_bytes=args.max_bytes, retention=retention,
    )


def main(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        shower = ReadShower(ImageFiles(options.store.images)) if args.print else None
        stats = run_listen(options, stop=stop, on_read=shower)
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.print:  # a person reads this stream: the totals in words
        print(f"central: stopped; {_totals(stats.as_dict())}", flush=True)
    else:
        print(json.dumps(stats.as_dict()))
    return 0


def _totals(counts: dict[str, object]) -> str:
    return ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in counts.items())
