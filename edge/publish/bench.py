"""``edge-anpr bench outbox``: reads per second through outbox -> MQTT, and a 10,000-read backlog drain.

Against ``--host/--port`` (plain TCP, lab) or, by default, a Mosquitto it starts itself on a
free 127.0.0.1 port with a throw-away config. The outbox lives in a temporary directory.

- ``reads_per_s``: a producer puts reads (each fsynced) while the publisher sends them; the
  clock stops when the last one was acknowledged by the broker and deleted from the outbox.
- ``backlog_10000_drain_s``: 10,000 reads are stored while no publisher runs (an outage), then
  a publisher starts; the time from its start (connect included) to an empty outbox.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

from edge.clock import SystemClock
from edge.config.model import MqttConfig, NodeConfig, OutboxConfig
from edge.domain import OutgoingMessage
from edge.errors import BrokerError
from edge.outbox.store import Outbox
from edge.publish.mqtt import MqttPublisher
from edge.publish.schema import iso_utc_ms
from edge.publish.topics import Topics

MOSQUITTO = "/usr/sbin/mosquitto"


@dataclass(frozen=True, slots=True)
class BenchResult:
    reads: int
    reads_per_s: float
    put_per_s: float
    backlog: int
    backlog_fill_s: float
    backlog_10000_drain_s: float
    payload_bytes: int


def _read(node: NodeConfig, topics: Topics, seq: int, clock: SystemClock, image: str = "") -> OutgoingMessage:
    now = clock.now()
    rid = f"{node.site}.{node.camera}.{seq}.{seq & 0xFFFFFFFF:08x}"
    payload: dict[str, object] = {
        "id": rid, "schema": "anpr.read/1", "seq": seq, "time": iso_utc_ms(now), "site": node.site,
        "camera": node.camera, "plate": "AB12CDE", "confidence": 0.93, "direction": "approaching",
    }
    if image:
        payload["image"] = {
            "kind": "plate_patch", "content_type": "image/jpeg", "width": 240, "height": 52, "data": image,
            "redaction": {"detector": "bench", "model_sha256": "0" * 64, "threshold": 0.5, "regions": 0,
                          "second_pass_faces": 0},
        }
    return OutgoingMessage(rid, topics.reads, json.dumps(payload, separators=(",", ":")).encode(), now, "read")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def loopback_broker(workdir: Path) -> Iterator[tuple[str, int]]:
    """A throw-away Mosquitto on 127.0.0.1 (anonymous, no persistence), stopped on exit."""
    if not Path(MOSQUITTO).exists():
        raise BrokerError(f"{MOSQUITTO} is not installed; give --host/--port of a lab broker instead")
    port = _free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n"
        "max_inflight_messages 0\nmax_queued_messages 0\n"
    )
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise BrokerError(f"mosquitto did not start on 127.0.0.1:{port}")
            time.sleep(0.02)
        yield ("127.0.0.1", port)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_bench(
    host: str, port: int, workdir: Path, *, reads: int = 3000, backlog: int = 10_000, image_bytes: int = 0
) -> BenchResult:
    """Measure on a fresh outbox in ``workdir``; ``image_bytes`` adds a plate patch of that size to each read."""
    clock = SystemClock()
    image = base64.b64encode(bytes(image_bytes)).decode() if image_bytes else ""
    node = NodeConfig(site="bench", camera="cam1", state_dir=str(workdir))
    mqtt = MqttConfig(host=host, port=port, insecure_lab_mode=True, client_id="edge-anpr-bench")
    cfg = OutboxConfig(max_bytes=500_000_000, max_age_s=timedelta(days=1).total_seconds())
    topics = Topics.for_node(mqtt, node)
    with Outbox.in_state_dir(workdir, cfg, clock) as box:
        # 1. steady state: produce and publish at once
        with MqttPublisher(mqtt, node, box, clock, "bench") as pub:
            if not pub.wait_connected(15):
                raise BrokerError(f"bench: cannot connect to {host}:{port}")
            start = time.perf_counter()
            put_time = 0.0
            for seq in range(reads):
                t = time.perf_counter()
                box.put(_read(node, topics, seq, clock, image))
                put_time += time.perf_counter() - t
                pub.notify()
            if not pub.flush(300):
                raise BrokerError(f"bench: {box.depth()} reads still pending after 300 s")
            steady_s = time.perf_counter() - start
        size = len(_read(node, topics, 0, clock, image).payload)
        # 2. outage: a backlog builds up with no publisher, then drains
        start = time.perf_counter()
        for seq in range(reads, reads + backlog):
            box.put(_read(node, topics, seq, clock, image))
        fill_s = time.perf_counter() - start
        start = time.perf_counter()
        with MqttPublisher(mqtt, node, box, clock, "bench") as pub:
            if not pub.flush(600):
                raise BrokerError(f"bench: backlog not drained after 600 s ({box.depth()} left)")
            drain_s = time.perf_counter() - start
    return BenchResult(
        reads=reads, reads_per_s=round(reads / steady_s, 1), put_per_s=round(reads / put_time, 1),
        backlog=backlog, backlog_fill_s=round(fill_s, 2), backlog_10000_drain_s=round(drain_s, 2),
        payload_bytes=size,
    )


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", nargs="?", default="outbox", choices=("outbox",), help="What to benchmark.")
    p.add_argument("--host", help="Lab broker (plain TCP). Default: start a Mosquitto on 127.0.0.1.")
    p.add_argument("--port", type=int, default=1883, help="Lab broker port.")
    p.add_argument("--reads", type=int, default=3000, help="Reads for the steady-state rate.")
    p.add_argument("--backlog", type=int, default=10_000, help="Backlog size for the drain time.")
    p.add_argument("--image-bytes", type=int, default=0, help="Add a plate-patch image of this size to each read.")
    p.add_argument("--json", action="store_true", help="Print one JSON object.")


def main(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="edge-anpr-bench-"))
    try:
        if args.host:
            result = run_bench(
                args.host, args.port, workdir, reads=args.reads, backlog=args.backlog, image_bytes=args.image_bytes
            )
        else:
            with loopback_broker(workdir) as (host, port):
                result = run_bench(
                    host, port, workdir, reads=args.reads, backlog=args.backlog, image_bytes=args.image_bytes
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        print(f"reads_per_s            {result.reads_per_s:10.1f}  (put+publish+PUBACK+delete, {result.reads} reads)")
        print(f"put_per_s              {result.put_per_s:10.1f}  (fsynced outbox commits)")
        print(f"backlog_10000_drain_s  {result.backlog_10000_drain_s:10.2f}  ({result.backlog} reads, with connect)")
    return 0
