"""``edge-anpr bench fleet``: push a hotlist to N nodes through a real Mosquitto and time it until every node applied.

Each simulated node is the node's own code: its MQTT client (:class:`~edge.publish.mqtt.MqttPublisher`, persistent
session, QoS 1) with its control channel (:class:`~edge.node.fleet.FleetNode`) and state directory; only the camera
pipeline is left out. The figure is the time from the start of ``fleet hotlist push`` (hashing with the group's
key, signing, publishing) until the last node has the list written to disk and swapped in, and the bytes the centre
sent and the broker delivered.
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from types import TracebackType

from edge.central.fleet import BrokerOptions, ControlPublisher, hotlist_push
from edge.clock import Clock, SystemClock
from edge.config.model import FleetConfig, MqttConfig, NodeConfig, OutboxConfig, PrivacyConfig
from edge.fleet import payload as fp
from edge.fleet import signing
from edge.node.fleet import FleetNode
from edge.outbox.store import Outbox
from edge.privacy.hotlist import Hotlist, write_hotlist
from edge.publish.mqtt import MqttPublisher

log = logging.getLogger(__name__)


class SimulatedNode:
    """One node's MQTT session and control channel, without a camera (context manager)."""

    def __init__(
        self, site: str, camera: str, state: Path, *, mqtt: MqttConfig, public_key: Path, keyring: Path,
        groups: tuple[str, ...] = (), clock: Clock | None = None, max_payload_bytes: int = 16_000_000,
        report_health: bool = False,
    ) -> None:
        self.site, self.camera, self.state = site, camera, state
        state.mkdir(parents=True, exist_ok=True)
        self.node = NodeConfig(site=site, camera=camera, state_dir=str(state))
        self.fleet_config = FleetConfig(public_key_file=str(public_key), groups=groups,
                                        hotlist_keys_file=str(keyring), max_payload_bytes=max_payload_bytes)
        self.mqtt = mqtt
        self.clock = clock or SystemClock()
        self.changed = threading.Event()
        self.fleet: FleetNode | None = None
        self._stack = ExitStack()
        self._report_health = report_health
        self._stop = threading.Event()

    def __enter__(self) -> SimulatedNode:
        self.fleet = FleetNode(self.fleet_config, self.node, PrivacyConfig(), prefix=self.mqtt.topic_prefix,
                               state_dir=self.state, clock=self.clock, on_change=self.changed.set)
        outbox = self._stack.enter_context(Outbox(self.state / "outbox.sqlite", OutboxConfig(), self.clock))
        self.publisher = self._stack.enter_context(
            MqttPublisher(self.mqtt, self.node, outbox, self.clock, "bench", reconnect_max_s=1, control=self.fleet))
        if self._report_health:  # as the service does: health (with its fleet member) at once after each change
            thread = threading.Thread(target=self._health_loop, name=f"health-{self.camera}", daemon=True)
            thread.start()
            self._stack.callback(thread.join, 5)
            self._stack.callback(self._stop.set)
        return self

    def _health_loop(self) -> None:
        assert self.fleet is not None
        self.publisher.wait_connected(10)
        self.changed.set()
        while not self._stop.is_set():
            if self.changed.wait(0.1):
                self.changed.clear()
                self.publisher.publish_health({"fleet": self.fleet.health()})

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()

    def version(self, target: str) -> int:
        assert self.fleet is not None
        return int(self.fleet.health()["versions"].get(f"hotlist:{target}", 0))

    def hotlists(self) -> list[Hotlist]:
        assert self.fleet is not None
        return self.fleet.hotlists()


def _start_broker(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    import socket

    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 0\nmax_inflight_messages 0\n" + ("user root\n" if _root() else ""))
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto did not start")


def _root() -> bool:
    import os

    return os.geteuid() == 0


def run_bench(nodes: int, plates: int, workdir: Path) -> dict[str, object]:
    """Push a ``plates``-plate list to a group of ``nodes`` nodes, with ``listen`` storing their health; figures."""
    from edge.central.listen import ListenOptions, run_listen
    from edge.central.store import parse_store
    from edge.central.store.fleet import fleet_status, open_db

    keys, key, secret, plain = _centre(workdir, plates)
    now = SystemClock().now()
    store = workdir / "central.sqlite"
    proc, port = _start_broker(workdir)
    stop = threading.Event()
    try:
        mqtt = MqttConfig(host="127.0.0.1", port=port, insecure_lab_mode=True)
        listener = threading.Thread(target=run_listen, kwargs={"stop": stop, "options": ListenOptions(
            "127.0.0.1", port, parse_store(str(store)), retention=None)}, daemon=True)
        listener.start()
        with ExitStack() as stack:
            sims = [stack.enter_context(SimulatedNode(
                "bench", f"n{i:02d}", workdir / f"n{i:02d}", mqtt=mqtt, public_key=keys / "centre.pub",
                keyring=keys / "ring.json", groups=("bench",), report_health=True)) for i in range(nodes)]
            for sim in sims:
                sim.publisher.wait_connected(10)
            db = open_db(str(store))

            def in_status() -> int:
                rows = fleet_status(db)
                db.rollback()
                return sum(n.applied.get("hotlist:group/bench", (0, None))[0] == 1 for n in rows)

            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(fleet_status(db)) < nodes:  # every node's first health
                db.rollback()
                time.sleep(0.1)
            db.rollback()
            start = time.monotonic()
            push = hotlist_push(plain, target="group/bench", version=1, secret=secret, key=key, now=now,
                                expires=now + timedelta(days=1))
            signed = time.monotonic()
            with ControlPublisher(BrokerOptions(host="127.0.0.1", port=port, insecure_lab_mode=True)) as pub:
                sent = pub.publish(push)
            published = time.monotonic()
            deadline = published + 120
            while time.monotonic() < deadline and not all(s.version("group/bench") == 1 for s in sims):
                time.sleep(0.01)
            applied = time.monotonic()
            while time.monotonic() < deadline and in_status() < nodes:
                time.sleep(0.05)
            shown = time.monotonic()
            ok, listed = sum(s.version("group/bench") == 1 for s in sims), in_status()
            db.close()
            entries = [len(s.hotlists()[0]) if s.hotlists() else 0 for s in sims]
            apply_s = sorted(s.fleet.last_apply_s or 0.0 for s in sims if s.fleet is not None)
    finally:
        stop.set()
        proc.kill()
        proc.wait()
    return {
        "nodes": nodes, "plates": plates, "entries_applied": min(entries), "nodes_applied": ok,
        "nodes_applied_in_status": listed, "hash_sign_s": round(signed - start, 3),
        "publish_s": round(published - signed, 3), "push_to_all_applied_s": round(applied - start, 3),
        "push_to_all_applied_in_status_s": round(shown - start, 3),
        "node_apply_s_median": round(apply_s[len(apply_s) // 2], 3), "node_apply_s_max": round(apply_s[-1], 3),
        "payload_bytes": len(b"".join(push.chunks)), "chunks": len(push.chunks), "bytes_sent_by_centre": sent,
        "bytes_delivered_by_broker": sent * nodes,
    }


def _centre(workdir: Path, plates: int) -> tuple[Path, signing.Ed25519PrivateKey, bytes, Path]:
    """The centre's keys (and the group's keyring for the nodes) and a plain-text list of ``plates`` plates."""
    keys = workdir / "keys"
    keys.mkdir()
    key = signing.generate_key()
    (keys / "centre.pub").write_bytes(signing.public_pem(key.public_key()))
    secret = secrets.token_bytes(32)
    fp.write_keyring(keys / "ring.json", {"group/bench": fp.target_key(secret, "group/bench")})
    plain = workdir / "list.json"
    write_hotlist(plain, (f"BN{i % 100:02d}{_letters(i)}" for i in range(plates)), list_id="bench",
                  valid_until=SystemClock().now() + timedelta(days=1))
    return keys, key, secret, plain


def _letters(i: int) -> str:
    alphabet = "ABCDEFGHJKLMNPRSTUVWXYZ"
    n = i // 100
    out = ""
    for _ in range(3):
        out += alphabet[n % len(alphabet)]
        n //= len(alphabet)
    return out


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nodes", type=int, default=20, help="simulated nodes in the group (default: %(default)s)")
    p.add_argument("--plates", type=int, default=100_000, help="plates on the list (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")


def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="edge-bench-fleet-") as tmp:
        figures = run_bench(args.nodes, args.plates, Path(tmp))
    if args.json:
        print(json.dumps(figures))
    else:
        for k, v in figures.items():
            print(f"{k:28} {v}")
    return 0


