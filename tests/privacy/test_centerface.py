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
from edge.privacy.centerface import STRIDE, CenterFaceDetector, decode, nms, tiling
from edge.runtime import load_manifest, open_model

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
    photo = cv2.imread(str(DATA / PHOTO), cv2.IMREAD_COLOR)
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
