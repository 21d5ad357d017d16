"""CenterFace decoding, tiling and NMS; and the converted model on LiteRT finding real faces.

The real-model tests read models/centerface.tflite (scripts/setup.sh converts it) and, for the real
photo, $EDGE_DATA_DIR/faces/dlib-pascal (default ../shared/data); they skip when either is absent.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.domain import Box
from edge.errors import ModelError
from edge.privacy.centerface import (
    NIGHT_MAX_GAIN,
    STRIDE,
    CenterFaceDetector,
    decode,
    night_input,
    night_looks,
    nms,
    stretched,
    tiling,
    unmirrored,
)
from edge.runtime import TfliteModel, load_manifest, open_model

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "models" / "manifest.json"
MODEL = ROOT / "models" / "centerface.tflite"
DATA = Path(os.environ.get("EDGE_DATA_DIR", ROOT.parent / "shared" / "data")) / "faces" / "dlib-pascal"
PHOTO = "2008_007676.jpg"  # seven people round a table, faces 37-53 px


def test_decode_places_a_box_on_its_cell_with_the_predicted_size_and_offset() -> None:
    heat = np.zeros((10, 20, 1), np.float32)
    box = np.zeros((10, 20, 4), np.float32)
    heat[3, 7, 0] = 0.9
    box[3, 7] = [np.log(40 / STRIDE), np.log(32 / STRIDE), 0.25, -0.5]  # 40 tall, 32 wide, offset y +0.25, x -0.5
    heat[5, 5, 0] = 0.1  # below the threshold
    boxes, scores = decode(heat, box, threshold=0.2)
    assert scores.tolist() == pytest.approx([0.9])
    cy, cx = (3 + 0.25 + 0.5) * STRIDE, (7 - 0.5 + 0.5) * STRIDE
    np.testing.assert_allclose(boxes[0], [cx - 16, cy - 20, cx + 16, cy + 20], atol=1e-4)


def test_nms_keeps_the_best_of_overlapping_boxes_and_every_separate_one() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    assert nms(boxes, np.array([0.5, 0.9, 0.7], np.float32), iou=0.3) == [1, 2]


def test_a_16_9_frame_is_one_model_input_and_a_portrait_photo_is_tiled_at_a_larger_scale() -> None:
    assert tiling(1920, 1080, 960, 544) == (0.5, [(0, 0)])
    assert tiling(1280, 720, 960, 544) == (0.75, [(0, 0)])
    scale, origins = tiling(1024, 1536, 960, 544)
    assert scale == pytest.approx(960 / 1024)  # the width fills the input; four inputs down the photo
    assert [x for x, _ in origins] == [0, 0, 0, 0]
    assert origins[-1][1] + 544 == round(1536 * scale)  # the last input reaches the bottom
    # too tall for four inputs at that scale: the largest scale that four still cover, not one letterboxed input
    scale, origins = tiling(1024, 2449, 960, 544)
    assert len(origins) == 4 and [x for x, _ in origins] == [0, 0, 0, 0]
    assert origins[-1][1] + 544 == round(2449 * scale)
    assert scale == pytest.approx((544 + 3 * 0.75 * 544) / 2449, rel=0.01)  # 0.72, where one input would be 0.22
    scale, origins = tiling(4000, 400, 960, 544)  # a panorama: four inputs across
    assert len(origins) == 4 and {y for _, y in origins} == {0}


def test_a_dim_flat_grey_image_is_stretched_to_the_full_range_and_a_full_range_one_is_left_alone() -> None:
    rng = np.random.default_rng(0)
    dim = rng.integers(20, 148, (120, 160), dtype=np.uint8)  # contrast halved over a floor of 20, as --night
    out = stretched(dim, max_gain=4.0)
    assert out.dtype == np.uint8 and out.shape == dim.shape
    assert np.percentile(out, 1) <= 3 and np.percentile(out, 99) >= 252
    assert np.all(np.diff(out.ravel()[np.argsort(dim, axis=None)].astype(int)) >= 0)  # order of levels kept
    full = np.tile(np.linspace(0, 255, 160).astype(np.uint8), (120, 1))
    full[:, :8], full[:, -8:] = 0, 255  # black and white beyond the 1st and 99th percentiles
    assert stretched(full, max_gain=4.0) is full


def test_the_stretch_is_capped_so_a_nearly_flat_image_is_not_blown_up_into_noise() -> None:
    flat = np.full((100, 100), 60, np.uint8)
    flat[::2] = 70  # a 10-level range: stretched at most NIGHT_MAX_GAIN times
    out = stretched(flat, max_gain=NIGHT_MAX_GAIN)
    assert int(out.max()) - int(out.min()) <= 10 * NIGHT_MAX_GAIN + 1
    assert stretched(flat, max_gain=1.0) is flat
    with pytest.raises(ValueError, match=r"max_gain 0\.5"):
        stretched(flat, max_gain=0.5)


def test_night_input_smooths_sensor_noise_keeps_an_edge_and_leaves_its_input_alone() -> None:
    rng = np.random.default_rng(1)
    clean = np.full((80, 80), 40.0, np.float32)
    clean[:, 40:] = 120.0  # a dim edge, as a face's outline at night
    noisy = np.clip(clean + rng.normal(0.0, 8.0, clean.shape), 0, 255).astype(np.uint8)
    image = np.repeat(noisy[:, :, None], 3, axis=2)  # grey on three channels, as eval faces --night gives
    before = image.copy()
    out = night_input(image)
    assert out.shape == noisy.shape and out.dtype == np.uint8 and np.array_equal(image, before)
    left, right = out[:, 5:35].astype(np.float32), out[:, 45:75].astype(np.float32)
    scale = (right.mean() - left.mean()) / (120.0 - 40.0)  # the stretch's gain
    assert scale > 1.5  # stretched
    assert left.std() / scale < 8.0 * 0.6 and right.std() / scale < 8.0 * 0.6  # noise smoothed
    assert abs(float(out[:, 38].mean()) - float(out[:, 42].mean())) > 0.8 * (right.mean() - left.mean())  # edge kept


def test_maps_of_a_mirrored_input_mirrored_back_place_a_face_where_it_is_unmirrored() -> None:
    rows, cols = 10, 20
    heat, box = np.zeros((rows, cols, 1), np.float32), np.zeros((rows, cols, 4), np.float32)
    heat[3, 7, 0] = 0.9
    box[3, 7] = [np.log(40 / STRIDE), np.log(32 / STRIDE), 0.25, -0.3]  # centre x = 4 * (7 - 0.3 + 0.5)
    mirrored_heat, mirrored_box = np.zeros_like(heat), np.zeros_like(box)
    mirrored_heat[3, cols - 1 - 7, 0] = 0.9  # the same face in the mirrored input: centre x = 4 * cols - 28.8
    mirrored_box[3, cols - 1 - 7] = [np.log(40 / STRIDE), np.log(32 / STRIDE), 0.25, 0.3]
    back_heat, back_box = unmirrored(mirrored_heat, mirrored_box)
    expected, _ = decode(heat, box, threshold=0.5)
    found, scores = decode(back_heat, back_box, threshold=0.5)
    np.testing.assert_allclose(found, expected, atol=1e-4)
    assert scores.tolist() == pytest.approx([0.9])
    assert mirrored_box[3, cols - 1 - 7, 3] == pytest.approx(0.3)  # its input left alone


def test_night_looks_are_the_night_input_and_a_local_contrast_look_that_lifts_a_dim_corner() -> None:
    rng = np.random.default_rng(2)
    grey = np.full((160, 160), 70.0, np.float32)
    grey[:, 80:] = 130.0
    grey[100:140, 10:50] = 50.0  # a face-sized dim patch in the dark half, 20 levels below its surround
    noisy = np.clip(grey + rng.normal(0.0, 4.0, grey.shape), 0, 255).astype(np.uint8)
    before = noisy.copy()
    first, second = night_looks(noisy)
    assert np.array_equal(first, night_input(noisy)) and np.array_equal(noisy, before)
    assert second.shape == first.shape and second.dtype == np.uint8

    def contrast(look: np.ndarray) -> float:
        return float(look[10:60, 10:50].mean()) - float(look[105:135, 15:45].mean())

    assert contrast(second) > 1.2 * contrast(first) > 0  # the patch stands out more from its surround


def _detector(threshold: float = 0.2) -> CenterFaceDetector:
    if not MODEL.is_file():
        pytest.skip("models/centerface.tflite is missing: run scripts/setup.sh (it converts it)")
    return CenterFaceDetector(open_model(MODEL, load_manifest(MANIFEST)), threshold=threshold)


@pytest.mark.integration
def test_the_converted_model_finds_every_face_of_a_real_group_photo_in_colour_and_in_grey() -> None:
    if not (DATA / PHOTO).is_file():
        pytest.skip(f"{DATA / PHOTO} is missing (set EDGE_DATA_DIR)")
    with open(DATA / "labels.csv", encoding="utf-8") as fh:
        faces = [Box(int(r["x"]), int(r["y"]), int(r["w"]), int(r["h"])) for r in csv.DictReader(fh)
                 if r["file"] == PHOTO]
    photo = np.asarray(cv2.imread(str(DATA / PHOTO), cv2.IMREAD_COLOR), np.uint8)
    detector = _detector()
    for image in (photo, cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)):
        found = detector.detect(np.asarray(image, np.uint8))
        assert all(any(f.iou(b) > 0.3 for b in found) for f in faces), (faces, found)


@pytest.mark.integration
def test_the_converted_model_finds_no_face_in_a_plain_or_noisy_frame() -> None:
    detector = _detector()
    assert detector.detect(np.full((1080, 1920, 3), 128, np.uint8)) == []
    assert detector.detect(np.random.default_rng(0).integers(0, 256, (540, 960, 3), dtype=np.uint8)) == []


@pytest.mark.integration
def test_a_model_that_is_not_centerface_is_refused_naming_its_outputs() -> None:
    blaze = ROOT / "models" / "face_detection_full_range.tflite"
    if not blaze.is_file():
        pytest.skip("face model not fetched")
    with pytest.raises(ModelError, match=r"outputs \[\[1, 2304, 16\], \[1, 2304, 1\]\] are not CenterFace.s"):
        CenterFaceDetector(open_model(blaze, load_manifest(MANIFEST)), threshold=0.2)


@pytest.mark.integration
def test_a_grey_frame_is_judged_by_the_night_threshold_and_a_colour_frame_as_before() -> None:
    if not (DATA / PHOTO).is_file():
        pytest.skip(f"{DATA / PHOTO} is missing (set EDGE_DATA_DIR)")
    photo = np.asarray(cv2.imread(str(DATA / PHOTO), cv2.IMREAD_COLOR), np.uint8)
    grey = np.asarray(cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY), np.uint8)
    model = open_model(MODEL, load_manifest(MANIFEST))
    day = CenterFaceDetector(model, threshold=0.3)
    both = CenterFaceDetector(model, threshold=0.3, night_threshold=0.05)
    assert both.detect_scored(photo) == day.detect_scored(photo)  # colour: the night threshold plays no part
    lenient = both.detect_scored(grey)
    assert min(score for _, score in lenient) < 0.3 <= min(score for _, score in day.detect_scored(grey))
    with pytest.raises(ValueError, match=r"threshold 1\.5"):
        CenterFaceDetector(model, threshold=0.3, night_threshold=1.5)


class _RecordingModel(TfliteModel):
    """The real model, keeping a copy of every input it is given."""

    def __init__(self, model: TfliteModel) -> None:
        super().__init__(model.path, model.entry)
        self.inputs: list[np.ndarray] = []

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        self.inputs.append(tensor.copy())
        return super().run(tensor)


@pytest.mark.integration
def test_a_grey_frame_is_looked_at_twice_the_second_time_mirrored_and_a_colour_frame_once() -> None:
    if not MODEL.is_file():
        pytest.skip("models/centerface.tflite is missing: run scripts/setup.sh (it converts it)")
    model = _RecordingModel(open_model(MODEL, load_manifest(MANIFEST)))
    detector = CenterFaceDetector(model, threshold=0.3, night_threshold=0.1)
    rng = np.random.default_rng(3)
    grey = rng.integers(40, 120, (544, 960), dtype=np.uint8)  # the model's own shape: one input per look
    model.inputs.clear()
    detector.detect(grey)
    first, second = model.inputs
    looks = night_looks(grey)
    assert np.array_equal(first[0, :, :, 0], looks[0])
    assert np.array_equal(second[0, :, :, 0], looks[1][:, ::-1])
    model.inputs.clear()
    detector.detect(np.dstack([grey, grey // 2, grey]))  # colour: one look, as before
    assert len(model.inputs) == 1
