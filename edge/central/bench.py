"""``edge-anpr bench central``: reads per second from Mosquitto into PostgreSQL through shared-subscription listeners.

Starts a throw-away Mosquitto and PostgreSQL on 127.0.0.1 (or uses ``--host/--port`` and ``--store``), then
for each run starts N ``edge-anpr listen`` processes in one MQTT 5 shared subscription (``$share/bench/...``,
each its own client id and persistent session), publishes ``--reads`` reads from 20 simulated nodes at QoS 1
as fast as one publisher can, and stops the clock when the last read is a row in PostgreSQL.

- ``reads_per_s``: reads / (first publish -> last row committed);
- with ``--kill``: one listener is SIGKILLed when a third of the reads are stored and restarted a second
  later (as systemd's ``Restart=always`` would), under the same client id; its session kept its share;
- ``lost``: published reads that are not rows; ``stored_twice``: rows beyond one per (site, camera, seq);
- ``duplicates_dropped``: redelivered reads the listeners found already stored (the killed one's
  committed but unacknowledged batch), from the listeners' own counts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge.central.store import without_password
from edge.clock import iso_ms
from edge.errors import BrokerError, ConfigError, StateError

NODES = tuple((f"site{s}", f"cam{c}") for s in range(5) for c in range(4))  # 20 simulated nodes


@dataclass(frozen=True, slots=True)
class RunResult:
    listeners: int
    killed: int
    reads: int
    seconds: float
    reads_per_s: float
    lost: int
    stored_twice: int
    duplicates_dropped: int
    per_listener_stored: list[int] = field(default_factory=list)


class ListenerProcess:
    """One ``edge-anpr listen`` process in the share group; its log tells when it has subscribed."""

    def __init__(self, index: int, host: str, port: int, *, store: str, images: Path, workdir: Path) -> None:
        self.client_id = f"bench-{index}"
        self.args = [sys.executable, "-m", "edge", "-v", "listen", "--insecure-lab-mode", "--host", host,
                     "--port", str(port), "--store", store, "--images", str(images), "--share", "bench",
                     "--client-id", self.client_id, "--topic", "anpr/+/+/reads"]
        self.log = workdir / f"{self.client_id}.log"
        self.proc: subprocess.Popen[str] | None = None
        self.stats: list[dict[str, int]] = []  # one per clean exit

    def start(self, timeout_s: float = 30.0) -> None:
        self.log.write_text("")
        with self.log.open("a") as err:
            self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=err, text=True)
        deadline = time.monotonic() + timeout_s
        while "subscribed to" not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BrokerError(f"listener {self.client_id} did not subscribe: {self.log.read_text()[-600:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=timeout_s)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if lines:
            self.stats.append(json.loads(lines[-1]))
        self.proc = None

    def stored(self) -> int:
        return sum(s.get("stored", 0) for s in self.stats)

    def duplicates(self) -> int:
        return sum(s.get("duplicates", 0) for s in self.stats)


def read_payloads(count: int, *, image_bytes: int = 0) -> Iterator[tuple[str, bytes, str]]:
    """(topic, payload, id) of ``count`` valid reads spread over the simulated nodes."""
    import base64
    import hashlib

    base = datetime.now(UTC) - timedelta(minutes=10)
    image = base64.b64encode(os.urandom(image_bytes)).decode() if image_bytes else ""
    for n in range(count):
        site, camera = NODES[n % len(NODES)]
        seq = n // len(NODES)
        rid = f"{site}.{camera}.{seq}.{hashlib.sha256(f'{site}{camera}{seq}'.encode()).hexdigest()[:8]}"
        when = iso_ms(base + timedelta(milliseconds=n))
        body: dict[str, object] = {"id": rid, "schema": "anpr.read/1", "seq": seq, "time": when, "site": site,
                                   "camera": camera, "plate": f"AB{n % 100:02d}CDE", "confidence": 0.93,
                                   "direction": "approaching"}
        if image:
            body["image"] = {"kind": "plate_patch", "content_type": "image/jpeg", "width": 240, "height": 52,
                             "data": image, "redaction": {"detector": "bench", "model_sha256": "0" * 64,
                                                          "threshold": 0.5, "regions": 0, "second_pass_faces": 0}}
        yield f"anpr/{site}/{camera}/reads", json.dumps(body, separators=(",", ":")).encode(), rid


def publish(host: str, port: int, messages: list[tuple[str, bytes, str]], done: threading.Event) -> None:
    """Publish at QoS 1 as fast as the broker acknowledges (up to 1000 in flight)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher", protocol=paho.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(host, port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload, _ in messages]
        for info in infos:
            info.wait_for_publish(60)
    finally:
        client.disconnect()
        client.loop_stop()
        done.set()


def _count(url: str) -> tuple[int, int]:
    import psycopg

    with psycopg.connect(url) as db:
        row = db.execute("SELECT count(*), count(DISTINCT (site, camera, seq)) FROM reads").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _truncate(url: str) -> None:
    import psycopg

    with psycopg.connect(url) as db:
        db.execute("TRUNCATE reads CASCADE")


def run_once(host: str, port: int, url: str, workdir: Path, *, listeners: int, reads: int, kill: bool,
             image_bytes: int = 0, timeout_s: float = 300.0) -> RunResult:
    """One run on an empty reads table; every listener is stopped before it returns."""
    import psycopg

    _truncate(url)
    images = workdir / "images"
    procs = [ListenerProcess(i, host, port, store=url, images=images, workdir=workdir) for i in range(listeners)]
    messages = list(read_payloads(reads, image_bytes=image_bytes))
    killed = 0
    try:
        for p in procs:
            p.start()
        published = threading.Event()
        start = time.perf_counter()
        publisher = threading.Thread(target=publish, args=(host, port, messages, published), daemon=True)
        publisher.start()
        deadline = time.monotonic() + timeout_s
        with psycopg.connect(url, autocommit=True) as db:
            while True:
                row = db.execute("SELECT count(*) FROM reads").fetchone()
                stored = int(row[0]) if row else 0
                if stored >= reads:
                    break
                if kill and not killed and stored >= reads // 3:
                    procs[0].kill()
                    killed = 1
                    time.sleep(1.0)  # systemd: RestartSec=1
                    procs[0].start()
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)
        seconds = time.perf_counter() - start
        publisher.join(60)
    finally:
        for p in procs:
            p.stop()
    rows, distinct = _count(url)
    with psycopg.connect(url) as db:
        present = {str(r[0]) for r in db.execute("SELECT id FROM reads").fetchall()}
    lost = sum(1 for _, _, rid in messages if rid not in present)
    return RunResult(
        listeners=listeners, killed=killed, reads=reads, seconds=round(seconds, 2),
        reads_per_s=round(reads / seconds, 1), lost=lost, stored_twice=rows - distinct,
        duplicates_dropped=sum(p.duplicates() for p in procs), per_listener_stored=[p.stored() for p in procs],
    )


@contextlib.contextmanager
def _servers(args: argparse.Namespace, workdir: Path) -> Iterator[tuple[str, int, str]]:
    from edge.central.pgtemp import TempPostgres
    from edge.publish.bench import loopback_broker

    with contextlib.ExitStack() as stack:
        if args.host:
            host, port = args.host, args.port
        else:
            host, port = stack.enter_context(loopback_broker(workdir))
        url = args.store or stack.enter_context(TempPostgres(fsync=not args.no_fsync)).url
        from edge.central.store import open_store, parse_store

        open_store(parse_store(url, images=workdir / "images")).close()  # migrate once, before the listeners
        if args.store and _count(url)[0]:
            raise ConfigError(f"bench central empties the reads table between runs: give --store an empty database"
                              f" ({without_password(url)} holds reads)")
        yield host, port, url


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reads", type=int, default=20_000, help="Reads published per run (default 20000).")
    p.add_argument("--listeners", default="1,3", help="Listener counts to run, comma-separated (default 1,3).")
    p.add_argument("--no-kill", action="store_true", help="Skip the run where one listener is SIGKILLed.")
    p.add_argument("--image-bytes", type=int, default=0, help="Add an image of this many bytes to every read.")
    p.add_argument("--host", help="Lab broker (plain TCP). Default: start a Mosquitto on 127.0.0.1.")
    p.add_argument("--port", type=int, default=1883, help="Lab broker port.")
    p.add_argument("--store", metavar="URL", help="An empty PostgreSQL database to write into (emptied between runs). "
                   "Default: a throw-away server on 127.0.0.1 (Debian's postgresql).")
    p.add_argument("--no-fsync", action="store_true", help="Throw-away server with fsync off (not a real figure).")
    p.add_argument("--json", action="store_true", help="Print one JSON object.")


def main(args: argparse.Namespace) -> int:
    counts = [int(c) for c in str(args.listeners).split(",") if c.strip()]
    if not counts or min(counts) < 1:
        raise ConfigError(f"--listeners {args.listeners!r}: give counts of at least 1, e.g. 1,3")
    workdir = Path(tempfile.mkdtemp(prefix="edge-anpr-bench-central-"))
    results: list[RunResult] = []
    try:
        with _servers(args, workdir) as (host, port, url):
            plans = [(n, False) for n in counts]
            if not args.no_kill:
                plans.append((max(counts), True))
            for n, kill in plans:
                results.append(run_once(host, port, url, workdir, listeners=n, reads=args.reads, kill=kill,
                                        image_bytes=args.image_bytes))
                if not args.json:
                    _print(results[-1])
    except ModuleNotFoundError as exc:
        raise StateError(f"bench central needs psycopg: pip install 'edge-anpr[central]' ({exc})") from exc
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps({"reads": args.reads, "image_bytes": args.image_bytes,
                          "runs": [asdict(r) for r in results]}))
    return 0 if all(r.lost == 0 and r.stored_twice == 0 for r in results) else 1


def _print(r: RunResult) -> None:
    kill = ", one SIGKILLed and restarted" if r.killed else ""
    print(f"{r.listeners} listener(s){kill}: {r.reads} reads in {r.seconds:.2f} s = {r.reads_per_s:8.1f} reads/s;"
          f" lost {r.lost}, stored twice {r.stored_twice}, duplicates dropped {r.duplicates_dropped},"
          f" stored per listener {r.per_listener_stored}", flush=True)
