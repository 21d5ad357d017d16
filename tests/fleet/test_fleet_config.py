"""Config pushes on the node: checked as check-config checks a file, fields the centre may not change refused by
name, applied by a restart with the last good config kept, rolled back when the new one does not come back healthy.

These drive the node's real control channel (:class:`FleetNode`) with signed pushes and its real files; the test
``test_fleet_config_process.py`` runs the whole node process against Mosquitto."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from support.reads import SettableClock

from edge.central.fleet import Push, sign_push
from edge.config import Config, load_config
from edge.errors import ConfigError
from edge.fleet import payload as fp
from edge.fleet import signing
from edge.fleet.topics import chunk_topic, manifest_topic
from edge.node.config_push import GOOD, PUSHED, ConfigPushes
from edge.node.fleet import FleetNode
from edge.publish.schema import validate

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


def node_doc(tmp: Path, **changes: dict[str, object]) -> dict[str, object]:
    doc: dict[str, dict[str, object]] = {
        "node": {"site": "site1", "camera": "cam1", "state_dir": str(tmp / "state")},
        "capture": {"source": "images", "path": str(tmp / "camera"), "fps": 25, "lores_size": [640, 360],
                    "main_size": [640, 360]},
        "detect": {"backend": "contour", "second_look": "none"},
        "read": {"model": str(ROOT / "models/plate_ocr.tflite"), "manifest": str(ROOT / "models/manifest.json")},
        "privacy": {"image": "none"},
        "mqtt": {"host": "localhost", "port": 8883, "tls": {"ca_file": str(tmp / "ca.crt"),
                 "cert_file": str(tmp / "node.crt"), "key_file": str(tmp / "node.key")}},
        "health": {"interval_s": 60},
        "fleet": {"public_key_file": str(tmp / "centre.pub"), "config_startup_s": 30},
    }
    for section, values in changes.items():
        doc[section] = {**doc.get(section, {}), **values}
    return dict(doc)


class Restarts:
    def __init__(self) -> None:
        self.count = 0

    def restart(self) -> None:
        self.count += 1


@dataclass
class Node:
    """One node's config files and control channel, started as ``run`` starts it (select, then FleetNode)."""

    tmp: Path
    key: signing.Ed25519PrivateKey
    clock: SettableClock
    restarts: Restarts
    pushes: ConfigPushes
    fleet: FleetNode
    config: Config

    @property
    def local(self) -> Path:
        return self.tmp / "config.yaml"

    @property
    def state(self) -> Path:
        return self.tmp / "state"

    def push(self, version: int, doc: dict[str, object] | bytes, target: str = "site1/cam1") -> None:
        data = doc if isinstance(doc, bytes) else yaml.safe_dump(doc).encode()
        push = sign_push(self.key, kind="config", target=target, version=version, data=fp.compress(data),
                         now=self.clock.now(), expires=self.clock.now() + timedelta(days=1))
        deliver(self.fleet, push)

    def restart(self) -> Node:
        return start(self.tmp, self.key, self.clock)

    def refused(self) -> list[dict[str, object]]:
        return list(self.fleet.health().get("refused", []))


def deliver(fleet: FleetNode, push: Push) -> None:
    m = push.manifest
    for i, chunk in enumerate(push.chunks):
        fleet.handle(chunk_topic("anpr", m.target, m.kind, i), chunk)
    fleet.handle(manifest_topic("anpr", m.target, m.kind), m.to_bytes())


def start(tmp: Path, key: signing.Ed25519PrivateKey, clock: SettableClock) -> Node:
    local = load_config(tmp / "config.yaml")
    restarts = Restarts()
    pushes = ConfigPushes(tmp / "config.yaml", local, restarter=restarts, clock=clock)
    config = pushes.select().config
    assert config.fleet is not None and config.mqtt is not None
    fleet = FleetNode(config.fleet, config.node, config.privacy, prefix="anpr", state_dir=tmp / "state", clock=clock,
                      configs=pushes)
    return Node(tmp, key, clock, restarts, pushes, fleet, config)


@pytest.fixture
def node(tmp_path: Path) -> Node:
    key = signing.generate_key()
    (tmp_path / "centre.pub").write_bytes(signing.public_pem(key.public_key()))
    (tmp_path / "camera").mkdir()
    (tmp_path / "state").mkdir()
    for name in ("ca.crt", "node.crt", "other.crt", "node.key"):  # what the TLS files checks read: present, 0600 key
        (tmp_path / name).write_text("x")
    (tmp_path / "node.key").chmod(0o600)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(node_doc(tmp_path)))
    return start(tmp_path, key, SettableClock(NOW))


def test_a_valid_push_is_applied_by_a_restart_and_confirmed_once_healthy(node: Node) -> None:
    node.push(1, node_doc(node.tmp, health={"interval_s": 7}))
    assert node.restarts.count == 1 and node.refused() == []
    assert not (node.state / GOOD).exists(), "the last good config is the local file"
    assert node.fleet.health()["versions"] == {"config:site1/cam1": 1}
    after = node.restart()
    assert after.config.health.interval_s == 7
    assert after.fleet.health()["config"] == {"source": "pushed", "target": "site1/cam1", "version": 1,
                                              "state": "trial"}
    after.pushes.health_published(started=True, connected=False)
    assert after.pushes.on_trial, "healthy means started, connected and health published"
    after.pushes.health_published(started=True, connected=True)
    assert after.fleet.health()["config"]["state"] == "confirmed"
    after.push(1, node_doc(node.tmp, health={"interval_s": 9}))
    assert after.restarts.count == 0, "the retained push of an applied version is not taken again"
    after.push(2, node_doc(node.tmp, health={"interval_s": 9}))
    assert load_config(node.state / GOOD).health.interval_s == 7, "the confirmed config is kept as the good one"
    validate("health", {"schema": "anpr.health/1", "site": "site1", "camera": "cam1",
                               "time": "2026-12-08T09:00:00.000Z", "fleet": after.fleet.health()})


def test_a_group_push_without_identity_takes_the_nodes_own(node: Node) -> None:
    doc = node_doc(node.tmp, health={"interval_s": 5})
    doc["node"] = {}
    del doc["fleet"]["public_key_file"]  # type: ignore[attr-defined]
    node.push(1, yaml.safe_dump(doc).encode(), target="site1/cam1")
    assert node.refused() == []
    config = node.restart().config
    assert (config.node.site, config.node.camera, config.health.interval_s) == ("site1", "cam1", 5)


def test_an_invalid_config_is_refused_with_check_configs_message(node: Node, capsys: pytest.CaptureFixture[str]
                                                                 ) -> None:
    from edge.cli.commands import check_config

    bad = node_doc(node.tmp, read={"model": str(node.tmp / "missing.tflite")}, capture={"fps": 0})
    node.push(1, bad)
    bad["capture"]["fps"] = 25  # type: ignore[index]
    node.push(2, bad)
    node.push(3, b"node: [unclosed\n")
    (node.tmp / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError) as checked:
        check_config(argparse.Namespace(config=str(node.tmp / "bad.yaml"), schema_only=False))
    refused = node.refused()
    assert [r["reason"] for r in refused] == ["invalid_config"] * 3
    assert "capture.fps = 0: Input should be greater than 0" in str(refused[0]["detail"])
    detail = str(refused[1]["detail"]).split(": ", 1)[1]  # health keeps 300 characters, the log all
    assert str(checked.value).split(": ", 1)[1].startswith(detail), "check-config's words"
    assert "missing.tflite' does not exist" in str(refused[1]["detail"])
    assert "is not valid YAML" in str(refused[2]["detail"])
    assert node.restarts.count == 0 and not (node.state / PUSHED).exists(), "nothing applied"
    assert node.fleet.health()["config"] == {"source": "local"}


def test_a_refused_push_still_retained_is_reported_once_not_at_every_restart(node: Node) -> None:
    bad = node_doc(node.tmp, capture={"fps": 0})
    node.push(1, bad)
    assert [r["reason"] for r in node.refused()] == ["invalid_config"] and node.fleet.refusals == 1
    after = node.restart()
    after.push(1, bad)  # the broker delivers the retained push again (a new signature, the same version and payload)
    assert after.refused() == [] and after.fleet.refusals == 0, "refused once, not again after the restart"
    after.push(1, node_doc(node.tmp, capture={"fps": -1}))
    assert [r["reason"] for r in after.refused()] == ["invalid_config"], "another payload under that version is checked"
    after.push(2, node_doc(node.tmp, health={"interval_s": 7}))
    assert after.restarts.count == 1, "a new version is taken"


@pytest.mark.parametrize(("section", "values", "field"), [
    ("node", {"site": "site2"}, "node.site"),
    ("node", {"camera": "cam9"}, "node.camera"),
    ("node", {"state_dir": "/tmp/elsewhere"}, "node.state_dir"),
    ("mqtt", {"tls": {"cert_file": "other.crt"}}, "mqtt.tls.cert_file"),
    ("fleet", {"public_key_file": "/tmp/attacker.pub"}, "fleet.public_key_file"),
])
def test_a_push_changing_identity_paths_or_keys_is_refused_naming_the_field(
    node: Node, section: str, values: dict[str, object], field: str
) -> None:
    doc = node_doc(node.tmp, **{section: values})
    if section == "mqtt":  # a certificate that exists, so only the field check refuses
        doc["mqtt"]["tls"] = {**node_doc(node.tmp)["mqtt"]["tls"],  # type: ignore[index]
                              "cert_file": str(node.tmp / "other.crt")}
    if section == "fleet":
        (Path(str(values["public_key_file"]))).write_bytes((node.tmp / "centre.pub").read_bytes())
    node.push(1, doc)
    [refused] = node.refused()
    assert refused["reason"] == "forbidden_field" and str(refused["detail"]).startswith(field + ":")
    assert node.restarts.count == 0 and not (node.state / PUSHED).exists()


def test_a_config_not_healthy_by_its_deadline_is_rolled_back_and_reported(node: Node) -> None:
    node.push(1, node_doc(node.tmp, health={"interval_s": 7}))
    first = node.restart()
    first.pushes.health_published(started=True, connected=True)  # v1 confirmed
    first.push(2, node_doc(node.tmp, health={"interval_s": 8}))
    second = node.restart()
    assert second.config.health.interval_s == 8 and second.pushes.on_trial
    node.clock.advance(31)  # past fleet.config_startup_s (30 s) of the config it replaced
    second.pushes.health_published(started=True, connected=False)
    assert second.pushes.expire() and second.restarts.count == 1
    third = node.restart()
    assert third.config.health.interval_s == 7, "back on the last good config"
    health = third.fleet.health()
    assert health["config"]["source"] == "pushed" and health["config"]["version"] == 1
    assert health["config"]["rollbacks"] == 1
    assert health["config"]["rolled_back"]["reason"] == "unhealthy"
    assert "not connected to the broker" in health["config"]["rolled_back"]["detail"]
    assert [(r["reason"], r["version"]) for r in health["refused"]] == [("rolled_back", 2)]
    third.push(2, node_doc(node.tmp, health={"interval_s": 8}))
    assert third.restarts.count == 0, "a rolled back version is not taken again"


def test_a_crash_loop_rolls_back_to_the_local_file(node: Node) -> None:
    node.push(1, node_doc(node.tmp, health={"interval_s": 7}))
    for _ in range(3):  # three starts that died before reporting healthy
        assert node.restart().config.health.interval_s == 7
    fourth = node.restart()
    assert fourth.config.health.interval_s == 60 and not (node.state / PUSHED).exists()
    assert fourth.fleet.health()["config"]["rolled_back"]["reason"] == "crash_loop"


def test_a_start_failure_rolls_back_at_once(node: Node) -> None:
    node.push(1, node_doc(node.tmp, health={"interval_s": 7}))
    after = node.restart()
    assert after.pushes.start_failed(RuntimeError("model 'x' failed to load"))
    assert node.restart().config.health.interval_s == 60
    assert not after.pushes.start_failed(RuntimeError("again")), "nothing on trial any more"


def test_a_local_file_changed_after_the_push_wins(node: Node) -> None:
    node.push(1, node_doc(node.tmp, health={"interval_s": 7}))
    node.local.write_text(yaml.safe_dump(node_doc(node.tmp, health={"interval_s": 11})))
    after = node.restart()
    assert after.config.health.interval_s == 11 and not (node.state / PUSHED).exists()
    assert after.fleet.health()["config"] == {"source": "local"}


def test_without_pushes_wired_a_config_push_is_refused(tmp_path: Path) -> None:
    key = signing.generate_key()
    (tmp_path / "centre.pub").write_bytes(signing.public_pem(key.public_key()))
    config = load_config_doc(node_doc(tmp_path), tmp_path)
    assert config.fleet is not None
    fleet = FleetNode(config.fleet, config.node, config.privacy, prefix="anpr", state_dir=tmp_path,
                      clock=SettableClock(NOW))
    deliver(fleet, sign_push(key, kind="config", target="site1/cam1", version=1, data=fp.compress(b"node: {}"),
                             now=NOW, expires=NOW + timedelta(days=1)))
    assert [r["reason"] for r in fleet.health()["refused"]] == ["bad_payload"]


def load_config_doc(doc: dict[str, object], tmp: Path) -> Config:
    path = tmp / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_config(path)


@pytest.mark.slow
def test_sigkill_at_any_moment_of_applying_leaves_the_old_or_the_new_config(node: Node) -> None:
    import json
    import random
    import subprocess
    import sys
    import time

    pushes = node.tmp / "pushes"
    pushes.mkdir()
    now = datetime.now(UTC)
    for v in range(1, 41):  # version v sets health.interval_s to 100 + v: the interval tells which config runs
        data = fp.compress(yaml.safe_dump(node_doc(node.tmp, health={"interval_s": 100 + v})).encode())
        push = sign_push(node.key, kind="config", target="site1/cam1", version=v, data=data, now=now,
                         expires=now + timedelta(days=1))
        m = push.manifest
        messages = [(chunk_topic("anpr", m.target, m.kind, i), c.hex()) for i, c in enumerate(push.chunks)]
        messages.append((manifest_topic("anpr", m.target, m.kind), m.to_bytes().hex()))
        (pushes / f"v{v}.json").write_text(json.dumps(messages))
    child_py = ROOT / "tests" / "support" / "fleet_config_child.py"
    rng = random.Random(22)
    seen: list[float] = []
    # each child takes the versions after the last one applied; it is killed a few milliseconds after it says it
    # applied version k (k rising), so the kill falls while it applies k + 1 or between steps, on any machine
    for k in sorted(rng.sample(range(1, 40), 8)):
        child = subprocess.Popen([sys.executable, str(child_py), str(node.tmp), str(pushes)], stdout=subprocess.PIPE,
                                 text=True)
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        for line in child.stdout:
            if line.strip() == f"applied v{k}":
                break
        time.sleep(rng.uniform(0.0, 0.01))
        child.kill()
        child.wait()
        child.stdout.close()
        interval = start(node.tmp, node.key, SettableClock(datetime.now(UTC))).config.health.interval_s
        assert interval == 60 or 101 <= interval <= 140, "the local config or a whole pushed one"
        assert interval >= 100 + k, f"version {k} was applied and confirmed, yet {interval - 100:.0f} runs"
        assert not seen or interval >= seen[-1] or interval == seen[-1] - 1, "never further back than the last good"
        seen.append(interval)
        assert not list(node.state.glob(".config.*.tmp")) and not list((node.state / "fleet").glob("config-*.yaml"))
    assert min(seen) < 140, f"no kill fell while versions were still being applied: {seen}"
