"""A node SIGKILLed at each step of an update (a power cut) is left with a complete release current, old or new;
the next run (recovery at start) finishes the update and confirms it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_update import Env, env, pki  # noqa: F401 - the fixtures

from edge.node.update_state import is_complete, linked_version, read_state

pytestmark = [pytest.mark.slow]

CHILD = Path(__file__).resolve().parents[1] / "support" / "update_child.py"
STEPS = ("downloading", "installing", "installed", "switching", "switched", "restarted", "confirming", "confirmed")


@pytest.mark.parametrize("step", STEPS)
def test_a_kill_at_each_step_leaves_a_bootable_node_and_the_next_run_finishes(env: Env, step: str) -> None:  # noqa: F811
    env.publish("0.2.0", "all")
    args = {"root": str(env.root), "url": env.url, "pinned": str(env.pinned), "kill_at": step,
            "tls": {"ca_file": env.tls.ca_file, "cert_file": env.tls.cert_file, "key_file": env.tls.key_file}}
    tests = str(Path(__file__).resolve().parents[1])
    child = subprocess.run([sys.executable, str(CHILD), json.dumps(args)], capture_output=True, text=True,
                           timeout=60, env={**os.environ, "PYTHONPATH": tests}, check=False)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    current = linked_version(env.root, "current")
    assert current in ("0.1.0", "0.2.0") and is_complete(env.root, str(current))  # bootable either way

    out = env.updater().run()
    assert out.action in ("updated", "none"), out
    assert linked_version(env.root, "current") == linked_version(env.root, "stable") == "0.2.0"
    assert read_state(env.root).step == "idle"
    assert sorted(p.name for p in (env.root / "releases").iterdir()) == ["0.1.0", "0.2.0"]
    assert not list(env.root.glob(".*.new"))
