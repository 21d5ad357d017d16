"""``edge-anpr selftest``: a folder camera, the real runtime and a real broker; each failure has its message,
its fix and its own exit code."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from support.broker import MosquittoBroker, free_port
from support.field import NodeFiles, make_node, run_cli, unwritable_dir
from support.pki import TestPki, tls_listener_lines

from edge.config import load_config
from edge.node.clocksync import ClockState
from edge.node.selftest import exit_code, render, run_checks

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


class FixedProbe:
    def __init__(self, state: ClockState) -> None:
        self.state = state

    def read(self) -> ClockState:
        return self.state


SYNCED = FixedProbe(ClockState(True, 0.4, "chronyc", "leap status: Normal"))


def _by_name(results: list) -> dict[str, object]:  # type: ignore[type-arg]
    return {c.name: c for c in results}


def test_a_healthy_node_passes_every_check(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    node = make_node(tmp_path, broker_port=mosquitto.port)
    results = run_checks(load_config(node.config), clock_probe=SYNCED)
    assert [(c.name, c.status) for c in results] == [
        ("config", "pass"), ("state", "pass"), ("disk", "pass"), ("models", "pass"), ("camera", "pass"),
        ("broker", "pass"), ("clock", "pass"),
    ]
    assert exit_code(results) == 0
    table = render(results)
    assert "selftest passed" in table
    assert "one 320x180 frame" in table


def test_cli_prints_the_table_and_exits_0(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    node = make_node(tmp_path, broker_port=mosquitto.port)
    done = run_cli("selftest", "--config", str(node.config), "--skip", "clock")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "CHECK" in done.stdout
    assert "selftest passed" in done.stdout


def _failing(node: NodeFiles, expect: int, *needles: str) -> str:
    done = run_cli("selftest", "--config", str(node.config), "--skip", "clock")
    assert done.returncode == expect, done.stdout + done.stderr
    for needle in needles:
        assert needle in done.stdout, done.stdout
    assert "Traceback" not in done.stderr
    return done.stdout


def test_missing_camera_exits_3_with_its_fix(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    node = make_node(tmp_path, broker_port=mosquitto.port, camera=tmp_path / "no-camera")
    out = _failing(node, 3, "camera  FAIL", "does not exist", "FIX camera (exit 3): check capture.path")
    assert "broker  PASS" in out  # the other checks still ran


def test_model_with_the_wrong_hash_exits_4(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    node = make_node(tmp_path, broker_port=mosquitto.port, wrong_hash=True)
    _failing(node, 4, "models  FAIL", "but the manifest expects", "refusing to load it", "FIX models (exit 4)")


def test_unreachable_broker_exits_5(tmp_path: Path) -> None:
    node = make_node(tmp_path, broker_port=free_port())
    _failing(node, 5, "broker  FAIL", "cannot reach 127.0.0.1", "Connection refused", "FIX broker (exit 5)")


def test_unwritable_state_directory_exits_6(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    node = make_node(tmp_path, broker_port=mosquitto.port, state=unwritable_dir(tmp_path))
    _failing(node, 6, "state   FAIL", "cannot", "FIX state (exit 6)")


def test_invalid_config_exits_2_and_names_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("node: {site: Site One, camera: cam1}\n")
    done = run_cli("selftest", "--config", str(bad))
    assert done.returncode == 2
    assert "config  FAIL" in done.stdout
    assert "edge-anpr check-config" in done.stdout
    assert "node.site = 'Site One'" in done.stdout


def test_unsynchronised_clock_exits_7_with_its_fix(tmp_path: Path) -> None:
    node = make_node(tmp_path, broker_port=None, extra="clock: {on_unsynced: hold}\n")
    probe = FixedProbe(ClockState(False, None, "adjtimex", "kernel state 5"))
    results = run_checks(load_config(node.config), clock_probe=probe)
    clock = _by_name(results)["clock"]
    assert clock.status == "fail"  # type: ignore[attr-defined]
    assert "held back" in clock.fix  # type: ignore[attr-defined]
    assert _by_name(results)["broker"].status == "skip"  # type: ignore[attr-defined]
    assert exit_code(results) == 7
    off = FixedProbe(ClockState(True, 12_000.0, "chronyc"))
    assert exit_code(run_checks(load_config(node.config), clock_probe=off)) == 7


def test_the_clock_line_names_the_cause_the_kernel_flag_or_the_offset(tmp_path: Path) -> None:
    """The kernel's STA_UNSYNC flag is the cause, not an offset (adjtimex says +0.0 ms then, which means nothing)."""
    from edge.node.clocksync import timex_state

    config = load_config(make_node(tmp_path, broker_port=None).config)
    flagged = _by_name(run_checks(config, clock_probe=FixedProbe(timex_state(5, 0x4041, 0))))["clock"]
    assert "STA_UNSYNC" in flagged.detail and "no time service" in flagged.detail  # type: ignore[attr-defined]
    assert "within" not in flagged.detail and "+0.0" not in flagged.detail  # type: ignore[attr-defined]
    off = _by_name(run_checks(config, clock_probe=FixedProbe(ClockState(True, 12_000.0, "chronyc"))))["clock"]
    assert off.detail.startswith("synchronised, but off by +12000.0 ms, more than clock.max_offset_ms (1000 ms)")  # type: ignore[attr-defined]


def test_full_disk_exits_8(tmp_path: Path) -> None:
    node = make_node(tmp_path, broker_port=None)
    results = run_checks(load_config(node.config), clock_probe=SYNCED, min_free_mb=1e12)
    assert exit_code(results) == 8
    assert "FIX disk (exit 8)" in render(results)


def test_json_output_lists_every_check(tmp_path: Path) -> None:
    node = make_node(tmp_path, broker_port=None)
    done = run_cli("selftest", "--config", str(node.config), "--skip", "clock", "--json")
    report = json.loads(done.stdout)
    assert report["exit_code"] == done.returncode == 0
    assert [c["name"] for c in report["checks"]] == ["config", "state", "disk", "models", "camera", "broker", "clock"]


@pytest.fixture
def tls_broker(mosquitto_factory: Callable[..., MosquittoBroker], tmp_path: Path) -> tuple[MosquittoBroker, TestPki]:
    pki = TestPki(tmp_path / "pki")
    broker = mosquitto_factory(listener_lines=tls_listener_lines(pki, tmp_path))
    return broker, pki


def _tls_node(tmp_path: Path, broker: MosquittoBroker, pki: TestPki, cn: str) -> NodeFiles:
    pair = pki.issue(cn.replace("/", "_"), cn)
    return make_node(tmp_path, broker_port=None, extra=(
        f"mqtt: {{host: localhost, port: {broker.port}, tls: {{ca_file: '{pki.ca_file}', "
        f"cert_file: '{pair.cert_file}', key_file: '{pair.key_file}'}}}}\n"
    ))


def test_node_certificate_is_accepted_and_may_write_its_topics(
    tls_broker: tuple[MosquittoBroker, TestPki], tmp_path: Path
) -> None:
    broker, pki = tls_broker
    node = _tls_node(tmp_path, broker, pki, "site1/cam1")
    broker_check = _by_name(run_checks(load_config(node.config), clock_probe=SYNCED))["broker"]
    assert broker_check.status == "pass", broker_check  # type: ignore[attr-defined]
    assert "TLS, client certificate" in broker_check.detail  # type: ignore[attr-defined]


def test_another_nodes_certificate_is_refused_by_the_acl(
    tls_broker: tuple[MosquittoBroker, TestPki], tmp_path: Path
) -> None:
    broker, pki = tls_broker
    node = _tls_node(tmp_path, broker, pki, "site1/cam2")  # config says site1/cam1
    results = run_checks(load_config(node.config), clock_probe=SYNCED, broker_timeout_s=5)
    check = _by_name(results)["broker"]
    assert check.status == "fail", check  # type: ignore[attr-defined]
    assert "refused a publish" in check.detail  # type: ignore[attr-defined]
    assert exit_code(results) == 5


def test_a_certificate_from_another_ca_fails_the_handshake(
    tls_broker: tuple[MosquittoBroker, TestPki], tmp_path: Path
) -> None:
    broker, _ = tls_broker
    stranger = TestPki(tmp_path / "other-ca")
    node = _tls_node(tmp_path, broker, stranger, "site1/cam1")
    check = _by_name(run_checks(load_config(node.config), clock_probe=SYNCED, broker_timeout_s=5))["broker"]
    assert check.status == "fail", check  # type: ignore[attr-defined]
    assert "TLS handshake" in check.detail or "refused" in check.detail  # type: ignore[attr-defined]
