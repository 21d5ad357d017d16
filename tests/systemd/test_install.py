"""scripts/install-node.sh: valid bash; its dry run shows every install step in order, copies the models
that ship in the checkout and checks them, puts edge-anpr on the PATH and checks the service user can run it;
it refuses what cannot work before it changes anything."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "install-node.sh"
RELEASE = "/opt/edge-anpr/releases/0.1.0"  # setup.cfg's version: the layout over-the-air updates use


def _dry(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), "--dry-run", *args], capture_output=True, text=True, timeout=60,
                          check=False, env=env)


def _steps(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line[2:] for line in done.stdout.splitlines() if line.startswith("+ ")]


def _in_order(steps: list[str], wanted: list[str], output: str) -> None:
    positions = []
    for want in wanted:
        hits = [i for i, step in enumerate(steps) if want in step]
        assert hits, f"missing step: {want}\n{output}"
        positions.append(hits[0])
    assert positions == sorted(positions), output


def test_install_script_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_dry_run_installs_runtime_models_config_user_and_units_in_order(tmp_path: Path) -> None:
    done = _dry("--site", "s1", "--camera", "c1", "--broker", "b:8883")
    assert done.returncode == 0, done.stderr
    steps = _steps(done)
    _in_order(steps, [
        "usermod -a -G video edge-anpr",
        f"-m venv {RELEASE}/venv",
        "-m pip install -q --disable-pip-version-check " + str(ROOT),
        "install -m 0644 " + str(ROOT / "models" / "manifest.json") + f" {RELEASE}/models/manifest.json",
        "install -D -m 0644 " + str(ROOT / "models" / "centerface.tflite") + f" {RELEASE}/models/centerface.tflite",
        f"-m edge.runtime.check --models-dir {RELEASE}/models",
        f"{RELEASE}/.complete",
        "ln -sfn releases/0.1.0 /opt/edge-anpr/.current.new",
        "mv -T /opt/edge-anpr/.current.new /opt/edge-anpr/current",
        "mv -T /opt/edge-anpr/.stable.new /opt/edge-anpr/stable",
        "ln -sfn current/venv /opt/edge-anpr/venv",
        "ln -sfn current/models /opt/edge-anpr/models",
        "ln -sfn /opt/edge-anpr/venv/bin/edge-anpr /usr/local/bin/edge-anpr",
        "runuser -u edge-anpr -- /opt/edge-anpr/venv/bin/python -c import edge.cli",
        "install -d -m 0750 -o root -g edge-anpr /etc/edge-anpr",
        "/usr/local/bin/edge-anpr provision --out /etc/edge-anpr",
        "install -m 0644 " + str(ROOT / "systemd" / "edge-anpr.service") + " /etc/systemd/system/edge-anpr.service",
        "install -m 0644 " + str(ROOT / "systemd" / "edge-anpr-firstboot.service"),
        "systemctl enable edge-anpr.service edge-anpr-firstboot.service",
        "systemctl enable edge-anpr-update.timer edge-anpr-update.path",
    ], done.stdout)
    for unit in ("edge-anpr-update.service", "edge-anpr-update.timer", "edge-anpr-update.path"):
        assert f"install -m 0644 {ROOT / 'systemd' / unit} /etc/systemd/system/{unit}" in steps
    assert any("--site s1 --camera c1 --broker b:8883" in s for s in steps)
    assert not any("tensorflow" in s.lower() or "requirements-convert" in s for s in steps)
    assert not any("pip download" in s or "convert" in s for s in steps)  # the models ship in the checkout


def test_the_install_is_the_release_layout_the_updater_uses(tmp_path: Path) -> None:
    """releases/<version> with .complete, current and stable linked to it: edge.node.update_state reads it so."""
    import re

    from edge import __version__
    from edge.node.update_state import COMPLETE

    assert RELEASE.endswith("/" + __version__)
    steps = _steps(_dry())
    assert any(s.endswith(f"> '{RELEASE}/{COMPLETE}'") for s in steps)
    assert not any(re.search(r"/opt/edge-anpr/(venv|models)/\S", s) for s in steps if "ln -sfn" not in s
                   and "runuser" not in s), "nothing is written into the links"


def test_with_a_missing_or_changed_model_it_stops_first_naming_it(tmp_path: Path) -> None:
    checkout = tmp_path / "edge-anpr"
    shutil.copytree(ROOT / "scripts", checkout / "scripts")
    shutil.copytree(ROOT / "models", checkout / "models")
    (checkout / "models" / "ppocr_rec_plate.tflite").unlink()
    with (checkout / "models" / "wpod_net.tflite").open("r+b") as fh:
        fh.truncate(1000)
    done = subprocess.run(["bash", str(checkout / "scripts" / "install-node.sh"), "--dry-run"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 3
    assert "models/ppocr_rec_plate.tflite" in done.stderr and "models/wpod_net.tflite" in done.stderr
    assert "centerface" not in done.stderr  # only the bad ones are named
    assert not _steps(done)  # nothing was (or would have been) done


def test_a_card_image_carries_no_identity(tmp_path: Path) -> None:
    refused = _dry("--image", "--site", "s1", "--camera", "c1", "--broker", "b")
    assert refused.returncode == 2
    assert "give no --site" in refused.stderr
    done = _dry("--image")
    assert done.returncode == 0, done.stderr
    assert not any("provision" in s or "restart" in s for s in _steps(done))
    assert "edge-anpr-node.yaml" in done.stderr


def test_without_systemctl_it_fails_with_a_message(tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for tool in ("bash", "id", "dirname", "sed", "cat"):  # a root shell on a machine without systemd
        path = shutil.which(tool)
        assert path is not None
        os.symlink(path, fake_bin / tool)
    (fake_bin / "id").unlink()
    (fake_bin / "id").write_text("#!/bin/sh\necho 0\n")
    (fake_bin / "id").chmod(0o755)
    env = {"PATH": str(fake_bin)}
    done = subprocess.run([str(fake_bin / "bash"), str(SCRIPT)], capture_output=True, text=True, timeout=60,
                          check=False, env=env)
    assert done.returncode == 1
    assert "systemctl is missing" in done.stderr


def test_unknown_option_is_refused() -> None:
    done = _dry("--colour", "blue")
    assert done.returncode == 2
    assert "unknown option --colour" in done.stderr
