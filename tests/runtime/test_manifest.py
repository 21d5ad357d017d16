"""The manifest guards model loading: a file whose sha256 differs, a missing file, an unlisted file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from edge.errors import ModelError
from edge.runtime import load_manifest, open_model

PROJECT = Path(__file__).resolve().parents[2]


def _manifest(root: Path, file: str, sha256: str) -> Path:
    path = root / "manifest.json"
    entry = {
        "name": "plate_ocr",
        "file": file,
        "version": "1",
        "task": "plate-ocr",
        "input_size": [1, 32, 128, 1],
        "licence": "Apache-2.0 (trained by this project)",
        "source": "trained: tools/train_plate_ocr.py",
        "sha256": sha256,
    }
    path.write_text(json.dumps({"models": [entry]}))
    return path


def test_a_model_whose_hash_differs_from_the_manifest_is_refused_naming_file_and_both_hashes(tmp_path: Path) -> None:
    model = tmp_path / "plate_ocr.tflite"
    model.write_bytes(b"TFL3 tampered bytes")
    expected = hashlib.sha256(b"the bytes that were published").hexdigest()
    actual = hashlib.sha256(b"TFL3 tampered bytes").hexdigest()
    manifest = load_manifest(_manifest(tmp_path, "plate_ocr.tflite", expected))
    with pytest.raises(ModelError) as err:
        open_model(model, manifest)
    message = str(err.value)
    assert "plate_ocr.tflite" in message
    assert expected in message
    assert actual in message
    assert "refusing" in message


def test_a_missing_model_file_is_refused_by_name(tmp_path: Path) -> None:
    manifest = load_manifest(_manifest(tmp_path, "plate_ocr.tflite", "0" * 64))
    with pytest.raises(ModelError, match=r"plate_ocr\.tflite.*missing"):
        open_model(tmp_path / "plate_ocr.tflite", manifest)


def test_a_file_not_listed_in_the_manifest_is_refused_with_the_listed_ones(tmp_path: Path) -> None:
    stray = tmp_path / "other.tflite"
    stray.write_bytes(b"TFL3")
    manifest = load_manifest(_manifest(tmp_path, "plate_ocr.tflite", "0" * 64))
    with pytest.raises(ModelError, match=r"other\.tflite.*not listed.*plate_ocr\.tflite"):
        open_model(stray, manifest)


def test_the_committed_ocr_model_matches_its_manifest_entry_and_loads() -> None:
    models = PROJECT / "models"
    if not (models / "plate_ocr.tflite").is_file():
        pytest.skip("models/plate_ocr.tflite not trained yet (tools/train_plate_ocr.py)")
    manifest = load_manifest(models / "manifest.json")
    model = open_model(models / "plate_ocr.tflite", manifest)
    assert model.entry.name == "plate_ocr"
    assert model.input_shape == tuple(model.entry.input_size)


def test_bytes_read_once_are_checked_and_refused_like_the_file_when_they_differ(tmp_path: Path) -> None:
    from edge.runtime.manifest import read_verified

    model = tmp_path / "plate_ocr.tflite"
    model.write_bytes(b"TFL3 tampered bytes")
    manifest = load_manifest(_manifest(tmp_path, "plate_ocr.tflite", hashlib.sha256(b"published").hexdigest()))
    with pytest.raises(ModelError, match="refusing"):
        read_verified(model, manifest)
    with pytest.raises(ModelError, match="refusing"):
        open_model(model, manifest, content=b"TFL3 tampered bytes")
    model.unlink()
    model.mkdir()  # there, but not a file that can be read
    with pytest.raises(ModelError, match=r"plate_ocr\.tflite.*cannot be read"):
        read_verified(model, manifest)


def test_readers_for_several_workers_load_one_checked_copy_and_read_alike() -> None:
    import numpy as np

    from edge.config.model import ReadConfig
    from edge.read.factory import build_readers

    models = PROJECT / "models"
    config = ReadConfig(model=str(models / "ppocr_rec_plate.tflite"), manifest=str(models / "manifest.json"))
    readers = build_readers(config, 3)
    assert len({id(r) for r in readers}) == 3  # an interpreter each: they are not thread-safe
    crop = np.full((48, 200, 3), 200, np.uint8)
    crop[12:36, 20:180:20] = 0
    assert len({r.read(crop) for r in readers}) == 1
