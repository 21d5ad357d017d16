"""The WPOD-NET detector: decoding its output map exactly as alpr-unconstrained does, and the converted
model finding rendered plates (skipped until tools/convert_wpod_net.py has installed it)."""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from edge.config.model import DetectConfig
from edge.detect.factory import build_detector, build_second_look
from edge.detect.wpod import BAND_OVERLAP, WpodDetectorOptions, WpodPlateDetector, bands, decode, input_size, to_input
from edge.domain import Box
from edge.errors import ConfigError, ModelError
from edge.runtime import load_manifest, open_model
from edge.sample.plates import render_plate
from edge.sample.scene import _background

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "wpod_net.tflite"
MANIFEST = ROOT / "models" / "manifest.json"


def _map(rows: int, cols: int, cells: list[tuple[int, int, float, list[float]]]) -> npt.NDArray[np.float32]:
    """An output map with plate probability ``p`` and affine ``a`` (6 numbers) at each (row, col)."""
    out = np.zeros((rows, cols, 8), np.float32)
    out[..., 1] = 1.0
    for y, x, p, a in cells:
        out[y, x, :2] = (p, 1.0 - p)
        out[y, x, 2:] = a
    return out


def test_decodes_one_cell_into_the_plate_s_corners_and_box() -> None:
    # cell (row 10, col 20) of a 23x40 map for a 640x368 image: 16 pixels a cell. The unit square,
    # stretched 2x across and 0.5x down, spans 7.75 cells x 1.9375 cells around the cell centre (20.5, 10.5)
    found = decode(_map(23, 40, [(10, 20, 0.9, [2.0, 0.0, 0.0, 0.0, 0.5, 0.0])]), 640, 368, WpodDetectorOptions())
    assert len(found) == 1
    det = found[0]
    assert det.confidence == pytest.approx(0.9)
    expected = [(204.0, 137.0), (452.0, 137.0), (452.0, 199.0), (204.0, 199.0)]  # TL, TR, BR, BL
    assert np.array(det.corners) == pytest.approx(np.array(expected))
    assert det.box == Box(204, 137, 248, 62)


def test_the_translation_is_in_units_of_the_square_and_scales_with_the_image() -> None:
    # shift one unit right (7.75 cells); an image of half the map's pixel size halves every coordinate
    cell = (5, 10, 0.8, [1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    full = decode(_map(23, 40, [cell]), 640, 368, WpodDetectorOptions(min_width=1))[0]
    half = decode(_map(23, 40, [cell]), 320, 184, WpodDetectorOptions(min_width=1))[0]
    cx = (10.5 + 7.75) * 16
    assert full.corners is not None and half.corners is not None
    assert (full.corners[0][0] + full.corners[1][0]) / 2 == pytest.approx(cx)
    assert np.array(half.corners) == pytest.approx(np.array(full.corners) / 2)


def test_negative_diagonal_terms_are_clipped_to_zero_as_in_the_original() -> None:
    # A[0,0] < 0 would mirror the square; alpr-unconstrained clips it (and A[1,1]) at 0, leaving the shear
    found = decode(_map(23, 40, [(10, 20, 0.9, [-1.0, 0.5, 0.0, 0.0, 1.0, 0.0])]), 640, 368,
                   WpodDetectorOptions(min_width=1))
    corners = np.array(found[0].corners)
    assert corners[:, 0] == pytest.approx([20.5 * 16 - 0.25 * 7.75 * 16, 20.5 * 16 - 0.25 * 7.75 * 16,
                                           20.5 * 16 + 0.25 * 7.75 * 16, 20.5 * 16 + 0.25 * 7.75 * 16])


def test_cells_below_the_threshold_and_overlapping_cells_are_dropped() -> None:
    plate = [2.0, 0.0, 0.0, 0.0, 0.5, 0.0]
    out = _map(23, 40, [(10, 20, 0.9, plate), (10, 21, 0.7, plate), (3, 5, 0.4, plate), (18, 30, 0.6, plate)])
    found = decode(out, 640, 368, WpodDetectorOptions())
    assert [round(d.confidence, 2) for d in found] == [0.9, 0.6]  # 0.7 overlaps 0.9; 0.4 is below 0.5


def test_narrow_detections_are_dropped() -> None:
    out = _map(23, 40, [(10, 20, 0.9, [0.1, 0.0, 0.0, 0.0, 0.1, 0.0])])  # 12 pixels wide
    assert decode(out, 640, 368, WpodDetectorOptions(min_width=24)) == []


def test_the_input_is_scaled_and_rounded_up_to_the_stride() -> None:
    assert input_size(640, 360, 1.0) == (640, 368)
    assert input_size(640, 360, 1.5) == (960, 544)
    tensor = to_input(np.full((360, 640, 3), 255, np.uint8), (640, 368))
    assert tensor.shape == (1, 368, 640, 3) and tensor.dtype == np.float32
    assert tensor.max() == pytest.approx(1.0)


class _FakeNetwork:
    """Resizable like a LiteRT model; answers one plate at the centre cell of whatever input it gets."""

    def __init__(self) -> None:
        self.input_shape: tuple[int, ...] = (1, 1, 1, 3)
        self.inputs: list[tuple[int, ...]] = []

    def resize_input(self, shape: tuple[int, ...]) -> None:
        self.input_shape = shape

    def run(self, tensor: npt.NDArray[Any]) -> list[npt.NDArray[np.float32]]:
        assert tensor.shape == self.input_shape
        self.inputs.append(tensor.shape)
        rows, cols = tensor.shape[1] // 16, tensor.shape[2] // 16
        return [_map(rows, cols, [(rows // 2, cols // 2, 0.95, [1.0, 0.0, 0.0, 0.0, 0.25, 0.0])])[np.newaxis]]


def test_the_detector_enlarges_the_image_and_maps_boxes_back() -> None:
    network = _FakeNetwork()
    found = WpodPlateDetector(network, WpodDetectorOptions(scale=2.0)).detect(np.zeros((360, 640, 3), np.uint8))
    assert network.inputs == [(1, 720, 1280, 3)]
    assert len(found) == 1
    assert found[0].box.w == pytest.approx(7.75 * 16 / 2, abs=1)  # in the 640x360 image's pixels
    # the centre cell of the 45x80 map is (col 40, row 22): (648, 360) input pixels, (324, 180) image pixels
    assert found[0].box.centre == pytest.approx((324.0, 180.0), abs=1)


def test_a_model_with_the_wrong_input_is_refused() -> None:
    network = _FakeNetwork()
    network.input_shape = (1, 32, 128, 1)
    with pytest.raises(ModelError, match=r"expected \[1, height, width, 3\]"):
        WpodPlateDetector(network)


def test_the_factory_refuses_a_model_of_another_task(tmp_path: Path) -> None:
    shutil.copyfile(ROOT / "tests" / "data" / "tiny_ocr.tflite", tmp_path / "m.tflite")
    digest = hashlib.sha256((tmp_path / "m.tflite").read_bytes()).hexdigest()
    (tmp_path / "manifest.json").write_text(json.dumps({"models": [{
        "name": "m", "file": "m.tflite", "version": "t", "task": "plate-ocr", "input_size": [1, 32, 128, 1],
        "licence": "test", "source": "trained: test", "sha256": digest}]}))
    config = DetectConfig(backend="wpod", model=str(tmp_path / "m.tflite"), manifest=str(tmp_path / "manifest.json"))
    with pytest.raises(ConfigError, match="plate-detection-wpod"):
        build_detector(config)


def _detector() -> WpodPlateDetector:
    if not MODEL.is_file():
        pytest.skip("WPOD-NET model not installed: run tools/convert_wpod_net.py in .venv-convert")
    return WpodPlateDetector(open_model(MODEL, load_manifest(MANIFEST)))


@pytest.mark.parametrize("char_h", [12, 20, 28])
def test_the_converted_model_finds_a_plate_on_a_road(char_h: int) -> None:
    frame = _background(640, 360)
    plate = render_plate("AB12 CDE", char_height=char_h, rear=char_h == 20)
    h, w = plate.shape[:2]
    frame[200 : 200 + h, 300 : 300 + w] = plate
    found = _detector().detect(frame)
    assert found, "no plate found"
    assert found[0].box.iou(Box(300, 200, w, h)) >= 0.6
    assert found[0].confidence > 0.5
    assert found[0].corners is not None and len(found[0].corners) == 4


def test_the_converted_model_finds_nothing_on_an_empty_road() -> None:
    assert _detector().detect(_background(640, 360)) == []


def test_the_factory_builds_the_wpod_detector() -> None:
    if not MODEL.is_file():
        pytest.skip("WPOD-NET model not installed: run tools/convert_wpod_net.py in .venv-convert")
    config = DetectConfig(backend="wpod", model=str(MODEL), manifest=str(MANIFEST), wpod_bands=3)
    detector = build_detector(config)
    assert isinstance(detector, WpodPlateDetector) and detector._options.bands == 3
    assert detector._network.input_shape == (1, 16, 16, 3)  # prepared for one cell until it sees an image


def test_no_second_look_with_the_detector_that_already_looked() -> None:
    assert build_second_look(DetectConfig(backend="wpod", second_look="wpod")) is None
    assert build_second_look(DetectConfig(second_look="none")) is None


@pytest.mark.parametrize("rows", [16, 96, 192, 368, 544, 1088])
@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_bands_cover_the_input_in_equal_overlapping_runs_of_whole_cells(rows: int, count: int) -> None:
    ranges = bands(rows, count)
    assert 1 <= len(ranges) <= count
    assert ranges[0][0] == 0 and ranges[-1][1] == rows
    heights = {bottom - top for top, bottom in ranges}
    assert len(heights) == 1  # one shape: the model is prepared once for all of them
    assert all(top % 16 == 0 and bottom % 16 == 0 for top, bottom in ranges)
    for (_, bottom), (top, _) in itertools.pairwise(ranges):
        assert bottom - top >= BAND_OVERLAP
    assert len(ranges) == 1 or heights.pop() < rows


class _BrightNetwork(_FakeNetwork):
    """Answers a plate (an unstretched unit square) at every cell whose input pixels are white."""

    def run(self, tensor: npt.NDArray[Any]) -> list[npt.NDArray[np.float32]]:
        assert tensor.shape == self.input_shape
        self.inputs.append(tensor.shape)
        rows, cols = tensor.shape[1] // 16, tensor.shape[2] // 16
        cells = tensor[0, :, :, 0].reshape(rows, 16, cols, 16).min(axis=(1, 3))
        return [_map(rows, cols, [(y, x, 0.9, [0.5, 0.0, 0.0, 0.0, 0.5, 0.0])
                                  for y, x in zip(*np.nonzero(cells >= 1.0), strict=True)])[np.newaxis]]


@pytest.mark.parametrize("top", [16, 144, 176, 192, 208, 320])  # above, in, across the middle of and below the overlap
def test_a_plate_is_found_once_where_the_bands_find_it_as_one_look_does(top: int) -> None:
    image = np.zeros((368, 640, 3), np.uint8)  # the input as it is: one cell, 16x16, white
    image[top : top + 16, 320:336] = 255
    one = WpodPlateDetector(_BrightNetwork(), WpodDetectorOptions(min_width=1)).detect(image)
    network = _BrightNetwork()
    banded = WpodPlateDetector(network, WpodDetectorOptions(min_width=1, bands=2)).detect(image)
    assert network.inputs == [(1, 224, 640, 3), (1, 224, 640, 3)]
    assert len(one) == 1 and [d.box for d in banded] == [one[0].box]
    assert np.array(banded[0].corners) == pytest.approx(np.array(one[0].corners))


@pytest.mark.parametrize("top", [60, 150, 175, 200, 280])
def test_the_converted_model_finds_a_plate_in_two_bands_as_in_one(top: int) -> None:
    frame = _background(640, 360)
    plate = render_plate("AB12 CDE", char_height=20)
    h, w = plate.shape[:2]
    frame[top : top + h, 300 : 300 + w] = plate
    model = _detector()._network
    one = WpodPlateDetector(model).detect(frame)
    two = WpodPlateDetector(model, WpodDetectorOptions(bands=2)).detect(frame)
    assert len(one) == len(two) == 1
    assert two[0].box.iou(one[0].box) >= 0.9 and two[0].box.iou(Box(300, top, w, h)) >= 0.6
