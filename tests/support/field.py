"""Test support: a whole node on disk (tiny OCR model + manifest, a folder camera, a config) for CLI tests.

``tests/data/tiny_ocr.tflite`` is an untrained model with the OCR's shape (input 1x32x128x1, output
1x32x37), built once with TensorFlow (see ``tests/data/README.md``): it loads on the real LiteRT runtime,
so the service starts, processes frames and becomes ready without the trained model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
TINY_OCR = ROOT / "tests" / "data" / "tiny_ocr.tflite"


@dataclass
class NodeFiles:
    root: Path
    config: Path
    models: Path
    camera: Path
    state: Path


def write_models(folder: Path, *, wrong_hash: bool = False) -> Path:
    """A models folder with the tiny OCR and its manifest; ``wrong_hash`` lists a sha256 that does not match."""
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / "ocr.tflite"
    shutil.copyfile(TINY_OCR, model)
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    if wrong_hash:
        digest = ("0" if digest[0] != "0" else "1") + digest[1:]
    manifest = {"models": [{
        "name": "tiny_ocr", "file": "ocr.tflite", "version": "test", "task": "plate_ocr", "input_size": [32, 128],
        "licence": "test fixture", "source": "trained: tests/data/README.md", "sha256": digest,
    }]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def write_camera(folder: Path, frames: int = 30) -> Path:
    """A folder camera: ``frames`` grey 320x180 images."""
    folder.mkdir(parents=True, exist_ok=True)
    image = np.full((180, 320, 3), 90, np.uint8)
    for i in range(frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), image)
    return folder


def make_node(
    tmp_path: Path,
    *,
    broker_port: int | None,
    camera: Path | None = None,
    wrong_hash: bool = False,
    state: Path | None = None,
    extra: str = "",
) -> NodeFiles:
    models = write_models(tmp_path / "models", wrong_hash=wrong_hash)
    camera = camera if camera is not None else write_camera(tmp_path / "camera")
    state = state if state is not None else tmp_path / "state"
    mqtt = (f"mqtt: {{host: 127.0.0.1, port: {broker_port}, insecure_lab_mode: true}}\n"
            if broker_port is not None else "")
    config = tmp_path / "node.yaml"
    config.write_text(
        f"node: {{site: site1, camera: cam1, state_dir: '{state}'}}\n"
        f"capture: {{source: images, path: '{camera}', fps: 25, lores_size: [160, 90], main_size: [320, 180]}}\n"
        f"read: {{model: '{models / 'ocr.tflite'}', manifest: '{models / 'manifest.json'}'}}\n"
        f"privacy: {{image: none}}\n"
        f"{mqtt}{extra}"
    )
    return NodeFiles(tmp_path, config, models, camera, state)


def unwritable_dir(tmp_path: Path) -> Path:
    """A state directory this process cannot write: read-only sysfs for root, a 0500 folder otherwise."""
    if os.geteuid() == 0:
        return Path("/sys/kernel/edge-anpr-state")
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o500)
    return folder / "state"


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``edge-anpr ARGS`` in a subprocess (as systemd runs it), from the project root."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "edge", *args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout, check=False)
