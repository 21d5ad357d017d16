"""Provisioning pins the centre's key and installs the node's hotlist keyring and groups (provision and first boot)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from support.field import run_cli

from edge.clock import SystemClock
from edge.config import load_config
from edge.node.firstboot import IDENTITY_FILE
from edge.node.fleet import FleetNode

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = str(ROOT / "config" / "example.yaml")


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    keys = tmp_path / "keys"
    assert run_cli("fleet", "keygen", "--out", str(keys)).returncode == 0
    done = run_cli("fleet", "node-keys", "--keys", str(keys), "--site", "depot-north", "--camera", "gate1",
                   "--group", "west", "--out", str(tmp_path / "ring.json"))
    assert done.returncode == 0, done.stderr
    return keys


def _opened(out: Path) -> FleetNode:
    config = load_config(out / "config.yaml")
    assert config.fleet is not None
    state = out / "state"
    state.mkdir()
    return FleetNode(config.fleet, config.node, config.privacy, prefix="anpr", state_dir=state, clock=SystemClock())


def test_provision_pins_the_centres_key_and_installs_the_keyring_and_groups(keys: Path, tmp_path: Path) -> None:
    out = tmp_path / "etc"
    done = run_cli("provision", "--out", str(out), "--template", TEMPLATE, "--site", "depot-north", "--camera",
                   "gate1", "--broker", "mqtt.example.net", "--no-input",
                   "--fleet-key", str(keys / "fleet-signing.pub"), "--hotlist-keys", str(tmp_path / "ring.json"),
                   "--group", "west")
    assert done.returncode == 0, done.stderr
    config = load_config(out / "config.yaml")
    assert config.fleet is not None and config.fleet.groups == ("west",)
    assert config.fleet.public_key_file == str(out / "fleet" / "centre.pub")
    assert (out / "fleet" / "centre.pub").read_bytes() == (keys / "fleet-signing.pub").read_bytes()
    assert stat.S_IMODE((out / "fleet" / "hotlist-keys.json").stat().st_mode) == 0o600
    assert _opened(out).subscriptions == ["anpr/ctl/depot-north/gate1/#", "anpr/ctl/group/west/#",
                                          "anpr/ctl/group/all/release/#"]


def test_provision_refuses_a_keyring_without_the_nodes_groups(keys: Path, tmp_path: Path) -> None:
    done = run_cli("provision", "--out", str(tmp_path / "etc"), "--template", TEMPLATE, "--site", "depot-north",
                   "--camera", "gate1", "--broker", "b", "--no-input", "--fleet-key", str(keys / "fleet-signing.pub"),
                   "--hotlist-keys", str(tmp_path / "ring.json"), "--group", "west", "--group", "east")
    assert done.returncode == 2 and "no key for group/east" in done.stderr
    assert not (tmp_path / "etc" / "config.yaml").exists()
    done = run_cli("provision", "--out", str(tmp_path / "etc"), "--template", TEMPLATE, "--site", "depot-north",
                   "--camera", "gate1", "--broker", "b", "--no-input", "--fleet-key", str(tmp_path / "ring.json"))
    assert done.returncode == 2 and "no PEM public key" in done.stderr


def test_first_boot_takes_the_centres_key_keyring_and_groups_from_the_boot_partition(
    keys: Path, tmp_path: Path
) -> None:
    boot, out = tmp_path / "boot", tmp_path / "etc"
    boot.mkdir()

    def block(text: str) -> str:
        return "|\n" + "".join(f"  {line}\n" for line in text.splitlines())

    (boot / IDENTITY_FILE).write_text(
        "site: depot-north\ncamera: gate1\nbroker: mqtt.example.net\n"
        f"fleet_key: {block((keys / 'fleet-signing.pub').read_text())}"
        f"hotlist_keys: {block((tmp_path / 'ring.json').read_text())}"
        "groups: west\n")
    done = run_cli("firstboot", "--boot", str(boot), "--out", str(out), "--template", TEMPLATE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (boot / IDENTITY_FILE).exists()
    assert _opened(out).subscriptions == ["anpr/ctl/depot-north/gate1/#", "anpr/ctl/group/west/#",
                                          "anpr/ctl/group/all/release/#"]


def test_check_config_names_a_bad_pinned_key_and_warns_of_a_missing_group_key(keys: Path, tmp_path: Path) -> None:
    from edge.node.preflight import preflight

    out = tmp_path / "etc"
    assert run_cli("provision", "--out", str(out), "--template", TEMPLATE, "--site", "depot-north", "--camera",
                   "gate1", "--broker", "b", "--no-input", "--fleet-key", str(keys / "fleet-signing.pub"),
                   "--hotlist-keys", str(tmp_path / "ring.json"), "--group", "west").returncode == 0
    config = load_config(out / "config.yaml")
    assert [f.message for f in preflight(config, SystemClock().now(), ("secrets",)) if "fleet" in f.message] == []
    assert config.fleet is not None
    widened = config.model_copy(update={"fleet": config.fleet.model_copy(update={"groups": ("west", "east")})})
    findings = [f for f in preflight(widened, SystemClock().now(), ("secrets",)) if "group/east" in f.message]
    assert len(findings) == 1 and not findings[0].is_error
    (out / "fleet" / "centre.pub").write_text("not a key")
    errors = [f for f in preflight(config, SystemClock().now(), ("secrets",)) if f.is_error]
    assert any("no PEM public key" in f.message for f in errors)
