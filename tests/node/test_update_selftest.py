"""The updater's post-install selftest runs as the node's user in a transient systemd service that may write the
node's state directory (update.selftest_user): the updater's own unit is root with /var/lib/edge-anpr read-only,
where selftest's state check would fail every release and a root-made file could lock the node out of its state."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from edge.config.model import UpdateConfig
from edge.node.update import CommandSelfTest, as_service_user

FAKE_SYSTEMD_RUN = """#!/bin/sh
printf '%s\\n' "$@" > "$(dirname "$0")/systemd-run.args"
while [ $# -gt 0 ]; do case "$1" in --*) shift;; *) break;; esac; done
exec "$@"
"""


def _release(tmp: Path, *, exit_code: int, says: str) -> Path:
    """A release whose ``edge-anpr`` records its arguments, prints ``says`` and exits ``exit_code``."""
    release = tmp / "releases" / "0.2.0"
    cli = release / "venv" / "bin" / "edge-anpr"
    cli.parent.mkdir(parents=True)
    cli.write_text(f'#!/bin/sh\necho "$@" > "{tmp}/selftest.args"\necho "{says}"\nexit {exit_code}\n')
    cli.chmod(0o755)
    return release


@pytest.fixture
def systemd_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``systemd-run`` on PATH that records its options and runs the command (here, as the same user)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "systemd-run").write_text(FAKE_SYSTEMD_RUN)
    (bindir / "systemd-run").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    return bindir / "systemd-run.args"


def test_by_default_the_selftest_runs_as_edge_anpr_sandboxed_with_only_the_state_dir_writable(
    tmp_path: Path, systemd_run: Path
) -> None:
    assert UpdateConfig(url="https://releases.example.net/tuf", root_file="/etc/r.json").selftest_user == "edge-anpr"
    release = _release(tmp_path, exit_code=0, says="selftest passed")
    state = tmp_path / "state"
    check = CommandSelfTest("/etc/edge-anpr/config.yaml", run_as="edge-anpr", state_dir=str(state), timeout_s=60)
    assert check.check(release) is None
    options = systemd_run.read_text().splitlines()
    assert {"--uid=edge-anpr", "--wait", "--pipe", "--property=ProtectSystem=strict",
            f"--property=ReadWritePaths=-{state}", "--property=NoNewPrivileges=yes",
            "--property=RuntimeMaxSec=60"} <= set(options)
    assert options[-6:] == [str(release / "venv" / "bin" / "edge-anpr"), "selftest", "--config",
                            "/etc/edge-anpr/config.yaml", "--skip", "camera"]
    assert (tmp_path / "selftest.args").read_text().split() == ["selftest", "--config", "/etc/edge-anpr/config.yaml",
                                                                "--skip", "camera"]


def test_a_failing_selftest_comes_back_with_what_it_printed(tmp_path: Path, systemd_run: Path) -> None:
    release = _release(tmp_path, exit_code=6, says="state FAIL /var/lib/edge-anpr: cannot write")
    problem = CommandSelfTest("/c.yaml", run_as="edge-anpr").check(release)
    assert problem == "selftest exit 6: state FAIL /var/lib/edge-anpr: cannot write"


def test_without_a_selftest_user_it_runs_in_the_updater_itself(tmp_path: Path, systemd_run: Path) -> None:
    release = _release(tmp_path, exit_code=0, says="ok")
    assert CommandSelfTest("/c.yaml").check(release) is None
    assert not systemd_run.exists()
    assert (tmp_path / "selftest.args").exists()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_transient_services_properties_are_settings_systemd_knows(tmp_path: Path) -> None:
    props = [o.removeprefix("--property=") for o in as_service_user("daemon", "/var/lib/edge-anpr", 300)
             if o.startswith("--property=")]
    unit = tmp_path / "selftest-probe.service"
    unit.write_text("[Service]\nExecStart=/bin/true\nUser=daemon\n" + "".join(f"{p}\n" for p in props))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60,
                          check=False)
    if done.returncode != 0 and "bus" in done.stderr.lower():
        pytest.skip(f"systemd-analyze verify cannot run here: {done.stderr.strip()[:200]}")
    assert "selftest-probe.service" not in done.stderr, done.stderr
