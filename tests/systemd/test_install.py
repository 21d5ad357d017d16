"""scripts/install-node.sh: valid bash; its dry run shows every install step in order, takes a models bundle,
puts edge-anpr on the PATH and checks the service user can run it; it refuses what cannot work before it
changes anything."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "install-node.sh"


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


def _bundle(tmp_path: Path) -> Path:
    name = f"edge-anpr-models-{hashlib.sha256((ROOT / 'models' / 'manifest.json').read_bytes()).hexdigest()[:12]}"
    bundle = tmp_path / f"{name}.tar.gz"
    bundle.write_bytes(b"not opened by a dry run")
    return bundle


def test_install_script_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_dry_run_installs_runtime_models_config_user_and_units_in_order(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    done = _dry("--models-bundle", str(bundle), "--site", "s1", "--camera", "c1", "--broker", "b:8883")
    assert done.returncode == 0, done.stderr
    steps = _steps(done)
    _in_order(steps, [
        "usermod -a -G video edge-anpr",
        "-m venv",
        "-m pip install -q --disable-pip-version-check " + str(ROOT),
        "ln -sfn /opt/edge-anpr/venv/bin/edge-anpr /usr/local/bin/edge-anpr",
        f"-m edge.runtime.bundle install {bundle} --models-dir /opt/edge-anpr/models",
        "-m edge.runtime.bundle check --models-dir /opt/edge-anpr/models",
        "runuser -u edge-anpr -- /opt/edge-anpr/venv/bin/python -c import edge.cli",
        "install -d -m 0750 -o root -g edge-anpr /etc/edge-anpr",
        "/usr/local/bin/edge-anpr provision --out /etc/edge-anpr",
        "install -m 0644 " + str(ROOT / "systemd" / "edge-anpr.service") + " /etc/systemd/system/edge-anpr.service",
        "install -m 0644 " + str(ROOT / "systemd" / "edge-anpr-firstboot.service"),
        "systemctl enable edge-anpr.service edge-anpr-firstboot.service",
    ], done.stdout)
    assert any("--site s1 --camera c1 --broker b:8883" in s for s in steps)
    assert not any("tensorflow" in s.lower() or "requirements-convert" in s for s in steps)
    assert not any("edge.runtime.fetch" in s for s in steps)  # the bundle brings the registry models too


def test_a_bundle_beside_the_checkout_is_found_by_its_manifest_version() -> None:
    dist = ROOT / "dist"
    made = not dist.exists()
    dist.mkdir(exist_ok=True)
    bundle = _bundle(dist)
    try:
        done = _dry("--no-start")
        assert done.returncode == 0, done.stderr
        assert f"models from the bundle {bundle}" in done.stderr
    finally:
        bundle.unlink()
        if made:
            shutil.rmtree(dist)


def test_without_bundle_or_converted_models_it_stops_first_naming_the_bundle(tmp_path: Path) -> None:
    checkout = tmp_path / "edge-anpr"
    shutil.copytree(ROOT / "scripts", checkout / "scripts")
    (checkout / "models").mkdir()
    shutil.copy(ROOT / "models" / "manifest.json", checkout / "models")
    done = subprocess.run(["bash", str(checkout / "scripts" / "install-node.sh"), "--dry-run"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 3
    assert "no models bundle" in done.stderr and "models/fetched/ppocr_rec_plate.tflite" in done.stderr
    assert "edge-anpr-models-" in done.stderr and "--models-bundle FILE" in done.stderr
    assert not _steps(done)  # nothing was (or would have been) done


def test_a_card_image_carries_no_identity(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    refused = _dry("--image", "--models-bundle", str(bundle), "--site", "s1", "--camera", "c1", "--broker", "b")
    assert refused.returncode == 2
    assert "give no --site" in refused.stderr
    done = _dry("--image", "--models-bundle", str(bundle))
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
