"""The PP-OCR plate reader: decoding and preprocessing rules, and golden reads of rendered plates with the
converted model on the real LiteRT runtime (skipped until tools/convert_ppocr_rec.py has installed it)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import ModelError
from edge.read.charsets import PPOCR_PLATE_CLASSES
from edge.read.formats import FormatSet
from edge.read.lattice import FormatDecoder
from edge.read.ppocr import PpocrPlateReader, ctc_decode, layouts_to_try, preprocess
from edge.runtime import load_manifest, open_model
from edge.sample.plates import render_plate

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "models" / "manifest.json"
MODEL = ROOT / "models" / "ppocr_rec_plate.tflite"


def _probs(path: str, floor: float = 0.01) -> np.ndarray:
    """One frame per character of ``path`` ('_' is the blank), that class at 0.9."""
    p = np.full((len(path), len(PPOCR_PLATE_CLASSES) + 1), floor, np.float32)
    for t, c in enumerate(path):
        p[t, 0 if c == "_" else PPOCR_PLATE_CLASSES.index(c) + 1] = 0.9
    return p


def test_decode_merges_repeats_keeps_doubles_split_by_blank_and_drops_separators() -> None:
    read = ctc_decode(_probs("AA_A-b1 1_·7"))
    assert read.text == "AAB117"
    assert read.char_confidences == pytest.approx((0.9,) * 6, abs=0.03)


def test_decode_adds_a_lower_case_letter_to_its_capital_and_reads_l_as_i() -> None:
    p = _probs("ABC")
    p[2, PPOCR_PLATE_CLASSES.index("C") + 1] = 0.45
    p[2, PPOCR_PLATE_CLASSES.index("c") + 1] = 0.45
    p[2, PPOCR_PLATE_CLASSES.index("G") + 1] = 0.5
    read = ctc_decode(p)
    assert read.text == "ABC" and read.char_confidences[2] == pytest.approx(0.9)
    assert ctc_decode(_probs("1l")).text == "1I"


def test_decode_drops_unsure_characters_at_the_ends_only() -> None:
    p = _probs("XAB1CY")
    for t in (0, 3, 5):  # X, the inner 1 and Y are unsure
        p[t] = 0.01
        p[t, PPOCR_PLATE_CLASSES.index("XAB1CY"[t]) + 1] = 0.3
    read = ctc_decode(p)
    assert read.text == "AB1C"
    assert min(read.char_confidences) < 0.5  # the inner unsure character is kept, and so is its doubt


def test_decode_refuses_an_output_of_the_wrong_width() -> None:
    with pytest.raises(ValueError, match="expected"):
        ctc_decode(np.zeros((24, 37), np.float32))


def test_preprocess_keeps_aspect_pads_right_and_scales_to_minus_one_one() -> None:
    crop = np.full((20, 40, 3), 255, np.uint8)
    x = preprocess(crop, 48, 192, side_trim=0.0)
    assert x.shape == (48, 192, 3)
    assert np.allclose(x[:, :96], 1.0) and np.allclose(x[:, 96:], 0.0)


def test_preprocess_unfolds_a_two_line_plate_and_squeezes_a_long_one() -> None:
    two_line = np.zeros((100, 120, 3), np.uint8)
    two_line[:50] = 255  # top line white, bottom black: side by side they fill left and right halves
    x = preprocess(two_line, 48, 192, side_trim=0.0)
    assert x[:, :90].mean() > 0.5 and x[:, 100:].mean() < -0.5
    assert preprocess(np.zeros((10, 400, 3), np.uint8), 48, 192).shape == (48, 192, 3)


def test_a_crop_as_square_as_a_loosely_cut_one_line_plate_is_read_both_ways() -> None:
    def crop(w: int, h: int) -> np.ndarray:
        return np.zeros((h, w, 3), np.uint8)

    assert layouts_to_try(crop(120, 100), side_trim=0.0) == (True,)  # a two-line plate
    assert layouts_to_try(crop(300, 100), side_trim=0.0) == (False,)  # a one-line plate
    # 2:1 before the side trim, 1.8:1 after: a tight crop of a Brazilian or US plate with room above and below
    assert layouts_to_try(crop(160, 80)) == (False, True)


def test_preprocess_unfolds_only_as_asked() -> None:
    crop = np.zeros((100, 180, 3), np.uint8)
    crop[:50] = 255
    one_line = preprocess(crop, 48, 192, side_trim=0.0, two_line=False)
    assert one_line[:24, :80].mean() > 0.9 and one_line[30:, :80].mean() < -0.9  # the top stays above
    assert preprocess(crop, 48, 192, side_trim=0.0)[:, :60].mean() > 0.5  # by its aspect: unfolded


def test_preprocess_trims_the_sides_of_the_crop() -> None:
    crop = np.zeros((20, 100, 3), np.uint8)
    crop[:, 10:90] = 255  # dark margins of 10% each side
    assert preprocess(crop, 20, 100, side_trim=0.1)[:, :80].min() == pytest.approx(1.0)


def _pipeline_crop(plate: np.ndarray) -> np.ndarray:
    """The plate with the pipeline's crop margin (12% of its size on each side) of grey surroundings."""
    h, w = plate.shape[:2]
    my, mx = round(0.12 * h), round(0.12 * w)
    return cv2.copyMakeBorder(plate, my, my, mx, mx, cv2.BORDER_CONSTANT, value=(90, 90, 90))


def _reader(decoder: FormatDecoder | None = None) -> PpocrPlateReader:
    if not MODEL.is_file():
        pytest.skip("PP-OCR model not installed: run tools/convert_ppocr_rec.py in .venv-convert")
    return PpocrPlateReader(open_model(MODEL, load_manifest(MANIFEST)), decoder=decoder)


@pytest.mark.parametrize("text", ["AB12 CDE", "XY61 ZZB", "K123 ABC", "YK08 HNR"])
@pytest.mark.parametrize(("char_h", "rear"), [(12, False), (20, True), (40, False)])
def test_reads_rendered_plates_exactly(text: str, char_h: int, rear: bool) -> None:
    plate = render_plate(text, char_height=char_h, rear=rear)
    read = _reader().read(_pipeline_crop(plate))
    assert read.text == text.replace(" ", "")
    assert len(read.char_confidences) == len(read.text) and read.confidence > 0.5


@pytest.mark.parametrize("text", ["AB12 CDE", "K123 ABC", "ABC 123D", "XYZ 9", "AIZ 1234"])
@pytest.mark.parametrize(("char_h", "angle", "blur", "contrast"), [
    (12, 0.0, 0, 1.0), (20, 4.0, 3, 0.6), (40, -3.0, 5, 0.35),
])
def test_format_guided_reads_of_rendered_uk_plates_are_exact(
    text: str, char_h: int, angle: float, blur: int, contrast: float
) -> None:
    """Several sizes, slants, blurs and contrasts, read as the node reads them (UK formats guiding)."""
    plate = render_plate(text, char_height=char_h)
    h, w = plate.shape[:2]
    if angle:
        plate = np.asarray(cv2.warpAffine(plate, cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0), (w, h),
                                          borderMode=cv2.BORDER_REPLICATE), np.uint8)
    if blur:
        plate = np.asarray(cv2.GaussianBlur(plate, (blur, blur), 0), np.uint8)
    plate = np.clip(128 + (plate.astype(np.float32) - 128) * contrast, 0, 255).astype(np.uint8)
    read = _reader(FormatDecoder(FormatSet.load(["all"]))).read(_pipeline_crop(plate))
    assert read.text == text.replace(" ", "")
    assert read.confidence > 0.5


def test_reads_a_blurred_slanted_plate_and_a_two_line_plate() -> None:
    reader = _reader()
    plate = render_plate("AB12 CDE", char_height=24)
    h, w = plate.shape[:2]
    slanted = cv2.warpAffine(plate, cv2.getRotationMatrix2D((w / 2, h / 2), 3.0, 1.0), (w, h),
                             borderMode=cv2.BORDER_REPLICATE)
    assert reader.read(_pipeline_crop(cv2.GaussianBlur(slanted, (5, 5), 0))).text == "AB12CDE"
    two_line = render_plate("AB12 CDE", char_height=30, two_line=True)
    assert reader.read(_pipeline_crop(two_line)).text == "AB12CDE"


@pytest.mark.parametrize("text", ["XY61 ZZB", "K123 ABC"])
@pytest.mark.parametrize("glowing", [False, True])
def test_a_one_line_plate_cut_to_about_two_to_one_is_read_once_not_as_two_halves(text: str, glowing: bool) -> None:
    """A labelled night crop of a plate with room above and below (2:1, as square as a two-line plate): read
    unfolded, its halves gave the mark twice or junk (``MRV3990MBK3990``); read both ways, the one line wins."""
    plate = render_plate(text, char_height=24)
    if glowing:
        plate = np.asarray(255 - plate, np.uint8)  # an infrared plate whose characters outshine it
    h, w = plate.shape[:2]
    pad = round((w / 1.8 - h) / 2)
    crop = np.asarray(cv2.copyMakeBorder(plate, pad, pad, 4, 4, cv2.BORDER_CONSTANT, value=(40, 40, 40)), np.uint8)
    assert 1.5 < crop.shape[1] * 0.9 / crop.shape[0] < 2.0
    for reader in (_reader(), _reader(FormatDecoder(FormatSet.load(["all"])))):
        assert reader.read(crop).text == text.replace(" ", "")


def test_a_model_with_the_wrong_input_is_refused(tmp_path: Path) -> None:
    import hashlib
    import json
    import shutil

    tiny = ROOT / "tests" / "data" / "tiny_ocr.tflite"  # grey input: not a PP-OCR model
    shutil.copyfile(tiny, tmp_path / "m.tflite")
    digest = hashlib.sha256((tmp_path / "m.tflite").read_bytes()).hexdigest()
    (tmp_path / "manifest.json").write_text(json.dumps({"models": [{
        "name": "m", "file": "m.tflite", "version": "t", "task": "plate-ocr-ppocr", "input_size": [1, 32, 128, 1],
        "licence": "test", "source": "trained: test", "sha256": digest}]}))
    with pytest.raises(ModelError, match=r"expected \[1, height, width, 3\]"):
        PpocrPlateReader(open_model(tmp_path / "m.tflite", load_manifest(tmp_path / "manifest.json")))


def test_decode_says_each_character_s_options_without_those_far_below_a_sure_best() -> None:
    p = _probs("AB5")
    p[2, PPOCR_PLATE_CLASSES.index("S") + 1] = 0.1  # beside a sure 5 (0.9): plausible
    p[2, PPOCR_PLATE_CLASSES.index("6") + 1] = 0.02  # below 1/20 of it: no option
    read = ctc_decode(p)
    assert [c for c, _ in read.char_options[2]] == ["5", "S"]
    assert read.unconstrained is None  # a greedy read is the reader's own path
