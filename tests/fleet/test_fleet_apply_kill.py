"""A node SIGKILLed while it applies pushed hotlists ends with the old list or the new one, never neither or a mix."""

from __future__ import annotations

import json
import random
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.central.fleet import hotlist_push
from edge.clock import SystemClock
from edge.config.model import FleetConfig, NodeConfig, PrivacyConfig
from edge.fleet import payload as fp
from edge.fleet import signing
from edge.fleet.topics import chunk_topic, manifest_topic
from edge.node.fleet import FleetNode, read_store
from edge.privacy.hotlist import write_hotlist

pytestmark = [pytest.mark.slow]

CHILD = Path(__file__).resolve().parents[1] / "support" / "fleet_apply_child.py"
BASE = 5_000  # version v carries BASE + v plates, so the count tells which version a list is


def _pushes(tmp: Path, key: signing.Ed25519PrivateKey, secret: bytes, versions: range) -> Path:
    out = tmp / "pushes"
    out.mkdir()
    now = datetime.now(UTC)
    for v in versions:
        plain = tmp / "plain.json"
        write_hotlist(plain, (f"KL{i % 100:02d}{chr(65 + i // 100 % 26)}{chr(65 + i // 2600 % 26)}X"
                              for i in range(BASE + v)), list_id=f"v{v}", valid_until=now + timedelta(days=1))
        push = hotlist_push(plain, target="site1/cam1", version=v, secret=secret, key=key, now=now,
                            expires=now + timedelta(days=1), chunk_bytes=50_000)
        m = push.manifest
        messages = [(chunk_topic("anpr", m.target, m.kind, i), c.hex()) for i, c in enumerate(push.chunks)]
        messages.append((manifest_topic("anpr", m.target, m.kind), m.to_bytes().hex()))
        (out / f"v{v}.json").write_text(json.dumps(messages))
    return out


def test_sigkill_at_any_moment_of_applying_leaves_the_old_or_the_new_list(tmp_path: Path) -> None:
    key, secret = signing.generate_key(), secrets.token_bytes(32)
    (tmp_path / "centre.pub").write_bytes(signing.public_pem(key.public_key()))
    fp.write_keyring(tmp_path / "ring.json", {"site1/cam1": fp.target_key(secret, "site1/cam1")})
    pushes = _pushes(tmp_path, key, secret, range(1, 31))
    state = tmp_path / "state"
    state.mkdir()
    rng = random.Random(22)
    seen: list[int] = []
    for _ in range(8):
        child = subprocess.Popen([sys.executable, str(CHILD), str(state), str(pushes), str(tmp_path / "centre.pub"),
                                  str(tmp_path / "ring.json")], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.12))
        child.kill()
        child.wait()
        child.stdout.close()
        node = FleetNode(FleetConfig(public_key_file=str(tmp_path / "centre.pub"),
                                     hotlist_keys_file=str(tmp_path / "ring.json")),
                         NodeConfig(site="site1", camera="cam1", state_dir=str(state)), PrivacyConfig(),
                         prefix="anpr", state_dir=state, clock=SystemClock())
        store = state / "fleet" / "hotlist-site1.cam1.json"
        lists = node.hotlists()
        if not store.exists():
            assert lists == [] and not seen, "once a list was applied there is always one"
            continue
        header, _ = read_store(store)
        version = int(header["version"])
        assert [len(h) for h in lists] == [BASE + version], "the stored list is whole and of its version"
        assert node.health()["versions"]["hotlist:site1/cam1"] == version
        assert not seen or version >= seen[-1], "never back to an older list"
        seen.append(version)
        assert not list((state / "fleet").glob(".*.tmp")), "no temporary file left behind"
    assert len(set(seen)) >= 3, f"the kills fell at different steps of applying: {seen}"
