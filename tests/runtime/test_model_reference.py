"""The shipped models behave on this machine's CPU as they did where the release was tested: every output on
the fixed inputs within ``edge.runtime.reference.TOLERANCE`` of tests/data/model_reference.npz. This is the
test to run on another CPU (README, "Models": under qemu with an older x86-64 model, and on arm64)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.errors import ModelError
from edge.runtime import load_manifest, open_model
from edge.runtime.reference import (
    Difference,
    compare,
    faces_of,
    outputs_of,
    resize_nearest,
    tolerance_for,
    unmatched_faces,
)

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "tests" / "data" / "model_reference.npz"
MANIFEST = ROOT / "models" / "manifest.json"


def test_every_shipped_model_gives_its_reference_outputs_within_tolerance() -> None:
    ref = np.load(REFERENCE)
    manifest = load_manifest(MANIFEST)
    recorded = {k.removeprefix("out:"): ref[k].astype(np.float32) for k in ref.files if k.startswith("out:")}
    assert {k.split("/")[0] for k in recorded} == {e.name for e in manifest.entries}, "re-run tools/model_reference.py"
    got = outputs_of(manifest, ref["frame"], ref["plate_box"], ref["face_box"])
    diffs = compare(recorded, got)
    far = [d.describe() for d in diffs if not d.within(tolerance_for(manifest.by_name(d.output.split("/")[0])))]
    assert not far, "\n".join(far)


def test_centerface_finds_again_the_faces_it_found_on_the_reference_frame() -> None:
    ref = np.load(REFERENCE)
    manifest = load_manifest(MANIFEST)
    model = open_model(manifest.path_of(manifest.by_name("centerface")), manifest)
    expected = ref["faces:centerface"]
    assert len(expected) >= 2  # the driver and the pedestrian at least
    assert unmatched_faces(expected, faces_of(model, ref["frame"])) == []


def test_a_face_found_elsewhere_or_far_less_sure_is_not_a_match() -> None:
    face = np.array([[10, 10, 20, 20, 0.6]], dtype=np.float32)
    assert unmatched_faces(face, np.array([[11, 10, 20, 21, 0.55]], dtype=np.float32)) == []
    assert unmatched_faces(face, np.array([[40, 40, 20, 20, 0.6]], dtype=np.float32))
    assert unmatched_faces(face, np.array([[10, 10, 20, 20, 0.3]], dtype=np.float32))


def test_the_tolerance_refuses_a_model_that_behaves_differently() -> None:
    reference = {"m/0": np.linspace(0.0, 1.0, 100, dtype=np.float32)}
    rounded = {"m/0": reference["m/0"] + np.float32(0.001)}
    moved = {"m/0": reference["m/0"] + np.float32(0.05)}
    assert all(d.within() for d in compare(reference, rounded))
    assert not any(d.within() for d in compare(reference, moved))
    missing = compare(reference, {})
    assert missing == [Difference("m/0", float("inf"), float("inf"), 1.0)] and not missing[0].within()


def test_nearest_resize_takes_whole_pixels_by_index() -> None:
    image = np.arange(16, dtype=np.uint8).reshape(4, 4)
    assert resize_nearest(image, 2, 2).tolist() == [[0, 2], [8, 10]]
    assert resize_nearest(image, 8, 8).shape == (8, 8)


@pytest.mark.parametrize("damage", ["truncated", "one byte changed"])
def test_a_shipped_model_that_was_changed_on_disk_is_refused(tmp_path: Path, damage: str) -> None:
    manifest_copy = tmp_path / "manifest.json"
    manifest_copy.write_bytes(MANIFEST.read_bytes())
    data = bytearray((ROOT / "models" / "wpod_net.tflite").read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0x01
    (tmp_path / "wpod_net.tflite").write_bytes(bytes(data))
    manifest = load_manifest(manifest_copy)
    with pytest.raises(ModelError, match=r"wpod_net\.tflite' has sha256 .* refusing to load it"):
        open_model(tmp_path / "wpod_net.tflite", manifest)
