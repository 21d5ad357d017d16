"""Measure what a Mosquitto configuration keeps of the reads it acknowledged when it is killed while the central
subscriber is away, and how fast it takes reads then. Prints one JSON object per setting.

    .venv/bin/python tools/broker_durability.py                # the example's setting and the old one
    .venv/bin/python tools/broker_durability.py --kills 40 --reads 800 --queued 1000 5000 20000

A real node's outbox and publisher (QoS 1, delete on PUBACK) stream reads to a local Mosquitto (plain TCP on
loopback) whose central subscriber has a persistent session but is disconnected. The broker is SIGKILLed at random
moments while reads flow and restarted; at the end the central subscriber comes back and counts what it gets.
``lost`` = acknowledged (deleted on the node) but never delivered. The throughput part fills the broker's queue for
the absent subscriber with N reads and reports reads/s.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.clock import SystemClock
from edge.config.model import MqttConfig, NodeConfig, OutboxConfig
from edge.domain import OutgoingMessage
from edge.outbox.store import Outbox
from edge.publish.mqtt import MqttPublisher

SETTINGS = {
    "example (autosave_on_changes, interval 1)": ("autosave_on_changes true", "autosave_interval 1"),
    "old example (autosave_interval 60)": ("autosave_interval 60",),
}
NODE = NodeConfig(site="site1", camera="cam1")


class Broker:
    def __init__(self, work: Path, settings: tuple[str, ...]) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        work.mkdir(parents=True)
        self.conf = work / "mosquitto.conf"
        self.conf.write_text("\n".join([f"listener {self.port} 127.0.0.1", "allow_anonymous true",
                                        "persistence true", f"persistence_location {work}/", "max_queued_messages 0",
                                        *settings, *(["user root"] if os.geteuid() == 0 else [])]) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("mosquitto did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()
            self.proc = None


def central(port: int, *, collect: list[str] | None = None) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="central", protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 86400
    subscribed = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: c.subscribe("anpr/+/+/reads", qos=1)
    client.on_subscribe = lambda c, u, mid, rc, p: subscribed.set()
    if collect is not None:
        client.on_message = lambda c, u, m: collect.append(json.loads(m.payload)["id"])
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    client.loop_start()
    subscribed.wait(10)
    return client


def read(seq: int) -> OutgoingMessage:
    now = datetime.now(UTC)
    body = {"id": f"site1.cam1.{seq}.{seq:08x}", "schema": "anpr.read/1", "seq": seq, "site": "site1",
            "camera": "cam1", "time": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "plate": "AB12CDE", "confidence": 0.9, "format": "uk_current"}
    return OutgoingMessage(str(body["id"]), "anpr/site1/cam1/reads", json.dumps(body).encode(), now)


def durability(settings: tuple[str, ...], reads: int, kills: int, seed: int, work: Path) -> dict[str, Any]:
    rng = random.Random(seed)
    broker = Broker(work, settings)
    broker.start()
    away = central(broker.port)
    away.disconnect()
    away.loop_stop()
    kill_at = sorted(rng.sample(range(1, reads), kills))
    lab = MqttConfig(host="127.0.0.1", port=broker.port, insecure_lab_mode=True)
    with Outbox(work / "outbox.sqlite", OutboxConfig(), SystemClock()) as box, MqttPublisher(
        lab, NODE, box, SystemClock(), "measure", reconnect_max_s=1
    ) as pub:
        pub.wait_connected(10)
        for seq in range(reads):
            box.put(read(seq))
            pub.notify()
            time.sleep(rng.uniform(0.0, 0.004))
            if kill_at and seq == kill_at[0]:
                kill_at.pop(0)
                broker.kill()  # while reads are in flight
                broker.start()
                pub.wait_connected(10)
        pub.flush(60)
        acknowledged, left = pub.reads_published, box.depth()
    got: list[str] = []
    client = central(broker.port, collect=got)
    time.sleep(2.0)
    client.disconnect()
    client.loop_stop()
    broker.stop()
    delivered = len(set(got))
    return {"reads": reads, "kills": kills, "acknowledged": acknowledged, "left_on_node": left,
            "delivered": delivered, "lost": reads - left - delivered}


def throughput(settings: tuple[str, ...], queued: int, work: Path) -> float:
    broker = Broker(work, settings)
    broker.start()
    away = central(broker.port)
    away.disconnect()
    away.loop_stop()
    lab = MqttConfig(host="127.0.0.1", port=broker.port, insecure_lab_mode=True)
    with Outbox(work / "outbox.sqlite", OutboxConfig(), SystemClock()) as box:
        for seq in range(queued):
            box.put(read(seq))
        with MqttPublisher(lab, NODE, box, SystemClock(), "measure") as pub:
            pub.wait_connected(10)
            started = time.monotonic()
            pub.flush(3600)
            elapsed = time.monotonic() - started
    broker.kill()
    return round(queued / elapsed, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=400)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--queued", type=int, nargs="*", default=[1000, 5000])
    parser.add_argument("--only", choices=("example", "old"), help="measure one setting")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    for name, settings in SETTINGS.items():
        if args.only and not name.startswith(args.only):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            result = durability(settings, args.reads, args.kills, args.seed, Path(tmp) / "d")
            result["reads_per_s_with_queued"] = {
                str(n): throughput(settings, n, Path(tmp) / f"t{n}") for n in args.queued
            }
        print(json.dumps({"setting": name, **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
