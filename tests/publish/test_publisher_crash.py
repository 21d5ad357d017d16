"""SIGKILL of a publishing node at random points: nothing lost, duplicates only by id; last will."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.broker import MosquittoBroker, Subscriber
from support.reads import first_arrivals

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHILD = ROOT / "tests" / "support" / "publisher_child.py"


class Child:
    """The child process and the last ``put`` it confirmed on stdout."""

    def __init__(self, broker: MosquittoBroker, state_dir: Path, first: int, count: int, base: datetime) -> None:
        env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}")
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), broker.host, str(broker.port), str(state_dir), str(first), str(count),
             base.isoformat()],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
        )
        self.last_put = first - 1
        self.ready = threading.Event()
        self.done = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("put "):
                self.last_put = int(line.split()[1])
            elif line.startswith("ready"):
                self.ready.set()
            elif line.startswith("done"):
                self.done.set()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._reader.join(5)


def test_sigkill_at_random_points_loses_no_committed_read(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    rng = random.Random(6)
    sub = Subscriber(mosquitto.host, mosquitto.port, "anpr/site1/cam1/reads").start()
    base = (datetime.now(UTC) - timedelta(minutes=10)).replace(microsecond=0)
    committed = -1
    kills = 0
    started = time.monotonic()
    while kills < 20 and time.monotonic() - started < 40:
        child = Child(mosquitto, tmp_path, committed + 1, 400, base)
        assert child.ready.wait(15), "child did not connect"
        time.sleep(rng.uniform(0.0, 0.4))
        child.kill()
        kills += 1
        committed = child.last_put  # every put that returned; one more may be on disk
    final = Child(mosquitto, tmp_path, committed + 1, 50, base)
    assert final.done.wait(30), "final child did not drain the outbox"
    final.proc.wait(10)
    expected = committed + 50
    got = sub.wait_for_unique(expected + 1, 20, key=lambda m: json.loads(m.payload)["id"])
    sub.stop()
    arrivals = first_arrivals([m.payload for m in got])
    assert kills >= 10
    assert set(range(expected + 1)) <= set(arrivals), "a committed read was lost"
    assert arrivals == sorted(arrivals), "reads arrived out of capture order"
    duplicates = len(got) - len(arrivals)
    print(f"kills={kills} reads={len(arrivals)} duplicates={duplicates}")


def test_last_will_marks_node_offline_when_killed(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    child = Child(mosquitto, tmp_path, 0, 0, datetime.now(UTC))
    assert child.ready.wait(15)
    watch = Subscriber(mosquitto.host, mosquitto.port, "anpr/site1/cam1/status").start()
    assert json.loads(watch.wait_for(1, 5)[0].payload)["state"] == "online"
    child.proc.send_signal(signal.SIGKILL)
    child.proc.wait()
    states = watch.wait_for(2, 10)
    watch.stop()
    assert [json.loads(m.payload)["state"] for m in states] == ["online", "offline"]
    late = Subscriber(mosquitto.host, mosquitto.port, "anpr/site1/cam1/status").start()
    retained = late.wait_for(1, 5)
    late.stop()
    assert retained[0].retain
    assert json.loads(retained[0].payload)["state"] == "offline"
