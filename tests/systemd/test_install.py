"""scripts/install-node.sh: valid bash, and its dry run shows every install step in order."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "install-node.sh"


def test_install_script_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_dry_run_installs_package_models_config_user_and_unit_in_order() -> None:
    done = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", "--site", "s1", "--camera", "c1", "--broker", "b:8883"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    steps = [line[2:] for line in done.stdout.splitlines() if line.startswith("+ ")]
    wanted = [
        "usermod -a -G video edge-anpr",
        "-m pip install -q --disable-pip-version-check " + str(ROOT),
        "-m edge.runtime.fetch --models-dir /opt/edge-anpr/models",
        "install -d -m 0750 -o root -g edge-anpr /etc/edge-anpr",
        "edge-anpr provision --out /etc/edge-anpr",
        "install -m 0644 " + str(ROOT / "systemd" / "edge-anpr.service") + " /etc/systemd/system/edge-anpr.service",
        "systemctl enable edge-anpr.service",
    ]
    positions = []
    for want in wanted:
        hits = [i for i, step in enumerate(steps) if want in step]
        assert hits, f"missing step: {want}\n{done.stdout}"
        positions.append(hits[0])
    assert positions == sorted(positions)
    assert any("--site s1 --camera c1 --broker b:8883" in s for s in steps)


def test_unknown_option_is_refused() -> None:
    done = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--colour", "blue"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 2
    assert "unknown option --colour" in done.stderr
