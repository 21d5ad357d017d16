"""The service units: systemd-analyze says they are well formed and well hardened (the node 2.0 or better, the
first-boot unit, which must stay root to give the key to the service user, 4.0 or better)."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "edge-anpr.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (Debian package 'systemd'; scripts/setup.sh installs it)"
)


def _directives() -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit; a key may repeat (DeviceAllow=, SystemCallFilter=)."""
    found: dict[str, list[str]] = {}
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key, []).append(value)
    return found


def _exposure(unit: Path) -> tuple[int, float, str]:
    assert ANALYZE is not None
    done = subprocess.run(
        [ANALYZE, "security", "--offline=yes", "--threshold=20", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert match, done.stdout[-2000:] + done.stderr
    return done.returncode, float(match.group(1)), done.stdout


def test_unit_parses_and_has_the_service_essentials() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    assert parser.sections() == ["Unit", "Service", "Install"]
    d = _directives()
    assert d["Type"] == ["notify"]
    assert d["NotifyAccess"] == ["main"]
    assert d["Restart"] == ["on-failure"]
    assert int(d["WatchdogSec"][0]) >= 10
    assert d["User"] == ["edge-anpr"]
    assert d["SupplementaryGroups"] == ["video"]
    assert d["StateDirectory"] == ["edge-anpr"]
    assert d["ConfigurationDirectory"] == ["edge-anpr"]
    assert d["ExecStart"][0].endswith("edge-anpr run --config /etc/edge-anpr/config.yaml")
    assert d["WantedBy"] == ["multi-user.target"]


def test_camera_devices_are_allowed_by_class_and_nothing_else() -> None:
    d = _directives()
    assert d["DevicePolicy"] == ["closed"]
    assert "PrivateDevices" not in d  # it would hide the camera
    allowed = sorted(v.split()[0] for v in d["DeviceAllow"])
    assert allowed == ["char-dma_heap", "char-media", "char-video4linux"]
    assert not any("*" in v for v in d["DeviceAllow"]), "globs are not accepted by DeviceAllow="


def test_hardening_from_the_brief_is_present() -> None:
    d = _directives()
    for key, value in {
        "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes", "ProtectProc": "invisible", "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "UMask": "0077",
    }.items():
        assert d.get(key, [None])[0] == value, key
    assert "@system-service" in d["SystemCallFilter"]
    assert "MemoryHigh" in d
    assert "MemoryMax" in d


def test_config_and_model_errors_are_not_restarted_in_a_loop() -> None:
    prevent = _directives()["RestartPreventExitStatus"][0].split()
    assert prevent == ["2", "4"]  # edge.errors: ConfigError, ModelError


@needs_analyze
def test_security_exposure_is_two_or_better() -> None:
    rc, exposure, report = _exposure(UNIT)
    assert rc == 0, report[-3000:]
    assert exposure <= 2.0


@needs_analyze
def test_the_threshold_check_fails_a_unit_without_hardening(tmp_path: Path) -> None:
    weak = tmp_path / "edge-anpr.service"
    keep = ("Type=", "ExecStart=", "User=", "Group=", "Restart=", "WatchdogSec=", "[")
    weak.write_text("\n".join(ln for ln in UNIT.read_text().splitlines() if ln.startswith(keep)) + "\n")
    rc, exposure, _ = _exposure(weak)
    assert exposure > 2.0
    assert rc != 0


@needs_analyze
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    """verify checks that ExecStart exists: point a copy at /bin/true, the rest is the unit as shipped."""
    assert ANALYZE is not None
    copy = tmp_path / UNIT.name
    text = UNIT.read_text()
    copy.write_text(re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", text, flags=re.M))
    done = subprocess.run([ANALYZE, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0 and ("Failed to" in done.stderr and "bus" in done.stderr.lower()):
        pytest.skip(f"systemd-analyze verify cannot run here: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr
    assert "edge-anpr.service" not in done.stderr, done.stderr  # no warnings about our unit


FIRSTBOOT = UNIT.with_name("edge-anpr-firstboot.service")


@needs_analyze
def test_the_first_boot_unit_verifies_and_runs_before_the_node_only_when_the_file_is_there(tmp_path: Path) -> None:
    assert ANALYZE is not None
    text = FIRSTBOOT.read_text()
    assert "Before=edge-anpr.service" in text
    assert "ConditionPathExists=|/boot/firmware/edge-anpr-node.yaml" in text
    assert re.search(r"^ExecStart=/opt/edge-anpr/venv/bin/edge-anpr firstboot ", text, re.M)
    copy = tmp_path / FIRSTBOOT.name
    copy.write_text(re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", text, flags=re.M))
    done = subprocess.run([ANALYZE, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0 and ("Failed to" in done.stderr and "bus" in done.stderr.lower()):
        pytest.skip(f"systemd-analyze verify cannot run here: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr
    assert FIRSTBOOT.name not in done.stderr, done.stderr


def _firstboot_directives() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for raw in FIRSTBOOT.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


@needs_analyze
def test_the_first_boot_unit_is_hardened_to_four_or_better() -> None:
    """It reads a file that may hold a private key and writes into /etc: 9.6 UNSAFE before it was sandboxed."""
    rc, exposure, report = _exposure(FIRSTBOOT)
    assert rc == 0, report[-3000:]
    assert exposure <= 4.0, report[-3000:]


def test_the_first_boot_unit_writes_only_its_config_and_the_boot_partition() -> None:
    """edge/node/firstboot.py writes /etc/edge-anpr (--out) and the boot partition (BOOT_DIRS): nothing else."""
    from edge.node.firstboot import BOOT_DIRS

    d = _firstboot_directives()
    assert d["ProtectSystem"] == ["strict"]
    writable = [p for v in d["ReadWritePaths"] for p in v.split()]
    assert writable == ["/etc/edge-anpr", *(f"-{p}" for p in BOOT_DIRS)]  # "-": a missing one is no error
    assert "--out /etc/edge-anpr" in d["ExecStart"][0]
    assert d["CapabilityBoundingSet"] == ["CAP_CHOWN CAP_DAC_OVERRIDE"]  # chown the key; reach tls/ later
    for key, value in {"PrivateNetwork": "yes", "PrivateDevices": "yes", "PrivateTmp": "yes", "ProtectHome": "yes",
                       "NoNewPrivileges": "yes", "RestrictAddressFamilies": "AF_UNIX", "UMask": "0077"}.items():
        assert d.get(key) == [value], key
    assert "@system-service" in d["SystemCallFilter"]
    assert not any("@privileged" in v for v in d["SystemCallFilter"])  # it would refuse chown()


UPDATE = UNIT.with_name("edge-anpr-update.service")
UPDATE_TIMER = UNIT.with_name("edge-anpr-update.timer")
UPDATE_PATH = UNIT.with_name("edge-anpr-update.path")


def _unit_directives(unit: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_the_updater_is_a_oneshot_run_from_the_confirmed_release_daily_and_on_an_announcement() -> None:
    from edge.node.fleet import FLEET_DIR, RELEASE_TRIGGER

    d = _unit_directives(UPDATE)
    assert d["Type"] == ["oneshot"]
    assert d["ExecStart"] == ["/opt/edge-anpr/stable/venv/bin/edge-anpr update run --config /etc/edge-anpr/config.yaml"]
    assert "User" not in d and "[Install]" not in UPDATE.read_text()  # root; started by the timer and the path
    assert d["ReadWritePaths"] == ["/opt/edge-anpr"] and d["ProtectSystem"] == ["strict"]
    assert d["CapabilityBoundingSet"] == ["CAP_DAC_READ_SEARCH"]  # reads the node's key and health.json, no more
    timer = _unit_directives(UPDATE_TIMER)
    assert timer["OnCalendar"] == ["daily"] and timer["RandomizedDelaySec"] == ["6h"]
    assert timer["Unit"] == [UPDATE.name] and timer["WantedBy"] == ["timers.target"]
    path = _unit_directives(UPDATE_PATH)
    assert path["PathChanged"] == [f"/var/lib/edge-anpr/{FLEET_DIR}/{RELEASE_TRIGGER}"]  # what the node writes
    assert path["Unit"] == [UPDATE.name]


@needs_analyze
def test_the_update_units_verify_and_the_updater_is_hardened_to_two_or_better(tmp_path: Path) -> None:
    """Root with CAP_DAC_READ_SEARCH only, writing only /opt/edge-anpr: 1.8 OK when written."""
    assert ANALYZE is not None
    rc, exposure, report = _exposure(UPDATE)
    assert rc == 0, report[-3000:]
    assert exposure <= 2.0, report[-3000:]
    copies = []
    for unit in (UPDATE, UPDATE_TIMER, UPDATE_PATH):
        copy = tmp_path / unit.name
        copy.write_text(re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", unit.read_text(), flags=re.M))
        copies.append(str(copy))
    done = subprocess.run([ANALYZE, "verify", *copies], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0 and ("Failed to" in done.stderr and "bus" in done.stderr.lower()):
        pytest.skip(f"systemd-analyze verify cannot run here: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr
    assert "edge-anpr-update" not in done.stderr, done.stderr
