"""A config push end to end, with real parts: ``edge-anpr fleet config push`` from the centre's command line, a real
Mosquitto with the example TLS and ACL, ``listen`` storing health for ``fleet status``, and a real ``edge-anpr run``
node process (a generated video, paced as a camera) behind a restart loop standing in for systemd's
``Restart=on-failure``. A valid push is applied by a restart and confirmed; a push that passes check-config but never
comes back healthy (a broker port nothing listens on) is rolled back by the node itself and reported."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.broker import MosquittoBroker, free_port
from support.pki import OPENSSL, TestPki, tls_listener_lines

from edge.central.listen import ListenOptions, ListenTls, run_listen
from edge.central.store import parse_store
from edge.cli import main
from edge.sample.scene import default_scene, write_scene

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.skipif(OPENSSL is None, reason="openssl needed")]

ROOT = Path(__file__).resolve().parents[2]
RESTART_EXIT = 75


class RestartLoop:
    """systemd's ``Restart=on-failure`` for one command: run it again whenever it exits non-zero (at most
    ``max_runs`` times); ``stop()`` is ``systemctl stop`` (SIGTERM, then no restart)."""

    def __init__(self, args: list[str], log: Path, max_runs: int = 8) -> None:
        self.args, self.log, self.max_runs = args, log, max_runs
        self.exits: list[int] = []
        self._stopping = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        with self.log.open("ab") as out:
            while not self._stopping.is_set() and len(self.exits) < self.max_runs:
                self._proc = subprocess.Popen(self.args, cwd=ROOT, env=env, stdout=out, stderr=out)
                self.exits.append(self._proc.wait())
                if self.exits[-1] == 0:
                    return

    def __enter__(self) -> RestartLoop:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        self._thread.join(30)
        if proc is not None and proc.poll() is None:
            proc.kill()


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A minute of an empty road at 4 fps: a cheap camera that outlasts the test."""
    spec = replace(default_scene(3, 0), width=320, height=192, fps=4, duration_s=60)
    path, _, _ = write_scene(spec, tmp_path_factory.mktemp("video") / "road.mp4")
    return path


def node_doc(tmp: Path, video: Path, pki: TestPki, broker_port: int, **changes: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, dict[str, Any]] = {
        "node": {"site": "site1", "camera": "cam1", "state_dir": str(tmp / "state")},
        "capture": {"source": "video", "path": str(video), "realtime": True, "lores_size": [320, 192],
                    "main_size": [320, 192]},
        "detect": {"backend": "contour", "second_look": "none"},
        "read": {"model": str(ROOT / "models/plate_ocr.tflite"), "manifest": str(ROOT / "models/manifest.json")},
        "privacy": {"image": "none"},
        "mqtt": {"host": "localhost", "port": broker_port, "tls": {
            "ca_file": pki.ca_file, "cert_file": str(pki.root / "cam1.crt"), "key_file": str(pki.root / "cam1.key")}},
        "health": {"interval_s": 1},
        "fleet": {"public_key_file": str(tmp / "keys" / "fleet-signing.pub"), "config_startup_s": 8},
    }
    for section, values in changes.items():
        doc[section] = {**doc[section], **values}
    return doc


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Callable[[MosquittoBroker, TestPki], Path]]:
    """``listen`` (the central identity) storing the nodes' health in SQLite, for ``fleet status``."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(broker: MosquittoBroker, pki: TestPki) -> Path:
        store = tmp_path / "central.sqlite"
        central = pki.issue("central", "central")
        options = ListenOptions("localhost", broker.port, parse_store(str(store)), client_id="central",
                                retention=None, tls=ListenTls(pki.ca_file, central.cert_file, central.key_file))
        threads.append(threading.Thread(target=run_listen, kwargs={"stop": stop, "options": options}, daemon=True))
        threads[-1].start()
        return store

    yield start
    stop.set()
    for thread in threads:
        thread.join(10)


def wait_for_row(store: Path, capsys: pytest.CaptureFixture[str], ok: Callable[[dict[str, Any]], bool],
                 timeout: float) -> dict[str, Any]:
    """``fleet status --json``'s row of site1/cam1 once ``ok`` holds for it (the last one seen otherwise)."""
    deadline = time.monotonic() + timeout
    row: dict[str, Any] = {}
    while True:
        capsys.readouterr()
        assert main(["fleet", "status", "--store", str(store), "--json"]) == 0
        row = next((r for r in json.loads(capsys.readouterr().out) if r["node"] == "site1/cam1"), {})
        if (row and ok(row)) or time.monotonic() > deadline:
            return row
        time.sleep(0.3)


def test_a_pushed_config_is_applied_and_confirmed_and_one_that_never_comes_up_is_rolled_back(
    mosquitto_factory: Callable[..., MosquittoBroker], listener: Callable[[MosquittoBroker, TestPki], Path],
    video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    keys = tmp_path / "keys"
    assert main(["fleet", "keygen", "--out", str(keys)]) == 0
    pki = TestPki(tmp_path / "pki")
    broker = mosquitto_factory(listener_lines=tls_listener_lines(pki, tmp_path))
    pki.issue("cam1", "site1/cam1")
    fleet_id = pki.issue("fleet", "fleet")
    store = listener(broker, pki)
    local = tmp_path / "config.yaml"
    local.write_text(yaml.safe_dump(node_doc(tmp_path, video, pki, broker.port, health={"interval_s": 2})))

    def push(name: str, doc: dict[str, Any]) -> None:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(doc))
        capsys.readouterr()
        assert main(["fleet", "config", "push", str(path), "--to", "site1/cam1", "--keys", str(keys),
                     "--store", str(store), "--host", "localhost", "--port", str(broker.port),
                     "--ca-file", pki.ca_file, "--cert-file", fleet_id.cert_file,
                     "--key-file", fleet_id.key_file]) == 0, capsys.readouterr().err

    log = tmp_path / "node.log"
    with RestartLoop([sys.executable, "-m", "edge", "run", "--config", str(local)], log) as node:
        row = wait_for_row(store, capsys, lambda r: r["config"].get("source") == "local", 60)
        assert row["config"] == {"source": "local"}, (row, log.read_text()[-3000:])

        # (a) a valid push (identity left out: the node keeps its own) is applied by a restart, then confirmed
        valid = node_doc(tmp_path, video, pki, broker.port)
        del valid["node"]
        push("v1.yaml", valid)
        row = wait_for_row(store, capsys, lambda r: r["config"].get("state") == "confirmed", 60)
        assert row["config"] == {"source": "pushed", "target": "site1/cam1", "version": 1, "state": "confirmed"}, (
            row, log.read_text()[-3000:])
        assert node.exits == [RESTART_EXIT], "stopped once to restart with the pushed config"
        assert row["applied"]["config:site1/cam1"]["version"] == 1 and row["refused"] == []

        # (b) a push that check-config passes but that never becomes healthy: rolled back by the node itself
        push("v2.yaml", {**valid, "mqtt": {**valid["mqtt"], "port": free_port()}})
        row = wait_for_row(store, capsys, lambda r: "rolled_back" in r["config"], 90)
        assert row["config"].get("rolled_back", {}).get("version") == 2, (row, log.read_text()[-4000:])
        assert row["config"]["rolled_back"]["reason"] in ("unhealthy", "start_failed")
        assert {k: row["config"][k] for k in ("source", "version", "state", "rollbacks")} == {
            "source": "pushed", "version": 1, "state": "confirmed", "rollbacks": 1}, "back on the last good config"
        assert [(r["reason"], r["version"]) for r in row["refused"]] == [("rolled_back", 2)]
        capsys.readouterr()
        assert main(["fleet", "status", "--store", str(store)]) == 0
        assert "site1/cam1 v1 ROLLED BACK v2:" in capsys.readouterr().out
        assert node.exits == [RESTART_EXIT] * 3, "restarted with v2, then with the good v1 again"
    text = log.read_text()
    assert "config push: ROLLED BACK version 2 of site1/cam1" in text
    assert node.exits[-1] == 0, "stopped cleanly"
