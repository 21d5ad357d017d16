"""Golden tests: rendered UK plates through the real OCR model on the real LiteRT runtime.

Plates are drawn by edge.sample.plates at several sizes, angles, blurs and contrasts, placed on
a plain surround and cut out as a loose box (as a detector would), then read exactly.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.domain import Image
from edge.read.ocr import (
    ALPHABET,
    BLANK,
    TflitePlateReader,
    ctc_greedy,
    layouts_to_try,
    preprocess,
    unfold_two_line,
)
from edge.runtime import load_manifest, open_model
from edge.sample.plates import random_registration, render_plate

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def reader() -> TflitePlateReader:
    if not (MODELS / "plate_ocr.tflite").is_file():
        pytest.skip("models/plate_ocr.tflite not trained yet (tools/train_plate_ocr.py)")
    return TflitePlateReader(open_model(MODELS / "plate_ocr.tflite", load_manifest(MODELS / "manifest.json")))


def camera_crop(plate: Image, *, angle: float = 0.0, blur: float = 0.0, contrast: float = 1.0,
                margin: float = 0.1, surround: int = 90) -> Image:
    """The plate rotated by ``angle`` degrees on a plain surround, blurred, contrast-scaled, loosely cropped."""
    h, w = plate.shape[:2]
    pad = round(max(h, w) * 0.5)
    canvas = cv2.copyMakeBorder(plate, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(surround,) * 3)
    centre = (canvas.shape[1] / 2, canvas.shape[0] / 2)
    rot = cv2.getRotationMatrix2D(centre, angle, 1.0)
    canvas = cv2.warpAffine(canvas, rot, (canvas.shape[1], canvas.shape[0]), borderValue=(surround,) * 3)
    a = math.radians(abs(angle))
    bw, bh = w * math.cos(a) + h * math.sin(a), w * math.sin(a) + h * math.cos(a)
    mx, my = margin * bw, margin * bh * 2
    x0, y0 = round(centre[0] - bw / 2 - mx), round(centre[1] - bh / 2 - my)
    x1, y1 = round(centre[0] + bw / 2 + mx), round(centre[1] + bh / 2 + my)
    crop = canvas[y0:y1, x0:x1]
    if blur > 0:
        crop = cv2.GaussianBlur(crop, (0, 0), blur)
    out = np.clip((crop.astype(np.float32) - 128.0) * contrast + 128.0, 0, 255)
    return out.astype(np.uint8)


FIXED = ["AB12 CDE", "LJ76 XYZ", "OU15 GSB", "A123 BCD", "ABC 123D", "AIZ 1234", "123 D 456", "M5 XSX"]


@pytest.mark.parametrize("text", FIXED)
@pytest.mark.parametrize("rear", [False, True])
def test_clean_plates_read_exactly(reader: TflitePlateReader, text: str, rear: bool) -> None:
    got = reader.read(camera_crop(render_plate(text, rear=rear)))
    assert got.text == text.replace(" ", "")
    assert len(got.char_confidences) == len(got.text)
    assert got.confidence > 0.5


@pytest.mark.parametrize("char_height", [14, 20, 30, 48, 80])
def test_plates_read_exactly_across_sizes(reader: TflitePlateReader, char_height: int) -> None:
    for text in FIXED[:4]:
        assert reader.read(camera_crop(render_plate(text, char_height=char_height))).text == text.replace(" ", "")


@pytest.mark.parametrize("angle", [-15.0, -10.0, -5.0, 5.0, 10.0, 15.0])
def test_plates_read_exactly_when_tilted(reader: TflitePlateReader, angle: float) -> None:
    for text in FIXED[:4]:
        crop = camera_crop(render_plate(text, rear=True), angle=angle)
        assert reader.read(crop).text == text.replace(" ", "")


@pytest.mark.parametrize(("blur", "contrast"), [(1.0, 1.0), (1.5, 1.0), (0.0, 0.4), (1.0, 0.5), (0.0, 1.5)])
def test_plates_read_exactly_when_blurred_or_low_contrast(
    reader: TflitePlateReader, blur: float, contrast: float
) -> None:
    for text in FIXED[:4]:
        crop = camera_crop(render_plate(text), blur=blur, contrast=contrast)
        assert reader.read(crop).text == text.replace(" ", "")


def test_two_line_plates_read_top_line_then_bottom(reader: TflitePlateReader) -> None:
    for text in ["LJ13 ABC", "AB12 CDE", "A123 BCD"]:
        crop = camera_crop(render_plate(text, two_line=True, rear=True, char_height=40), margin=0.06)
        assert reader.read(crop).text == text.replace(" ", "")


def test_random_registrations_with_random_variation_read_exactly(reader: TflitePlateReader) -> None:
    rng = np.random.default_rng(2026)
    misses = []
    for _ in range(60):
        text = random_registration(rng, on=dt.date(2026, 11, 22))
        two_line = bool(rng.random() < 0.2)
        ch = int(rng.integers(14, 60))
        plate = render_plate(text, rear=bool(rng.random() < 0.5), char_height=ch, two_line=two_line, rng=rng)
        # Blur in proportion to the character size; two-line plates tilted less (they are read less well
        # beyond about 8 degrees: the halves then cut through the other line's characters).
        angle = rng.uniform(-6, 6) if two_line else rng.uniform(-12, 12)
        crop = camera_crop(plate, angle=float(angle), blur=float(rng.uniform(0, 0.035 * ch)),
                           contrast=float(rng.uniform(0.3, 1.3)), margin=float(rng.uniform(0.03, 0.12)))
        got = reader.read(crop).text
        if got != text.replace(" ", ""):
            misses.append((text, two_line, got))
    assert misses == []


def test_an_empty_crop_reads_as_nothing(reader: TflitePlateReader) -> None:
    got = reader.read(np.zeros((0, 40, 3), np.uint8))
    assert (got.text, got.char_confidences, got.confidence) == ("", (), 0.0)


def test_greedy_ctc_collapses_repeats_drops_blanks_and_keeps_the_best_frame() -> None:
    k = len(ALPHABET) + 1
    frames = [("A", 0.6), ("A", 0.9), (None, 0.8), ("A", 0.7), ("1", 0.95), (None, 0.99)]
    probs = np.full((len(frames), k), 0.001, np.float32)
    for t, (ch, p) in enumerate(frames):
        probs[t, BLANK if ch is None else ALPHABET.index(ch)] = p
    got = ctc_greedy(probs)
    assert got.text == "AA1"
    assert got.char_confidences == pytest.approx((0.9, 0.7, 0.95))
    assert got.confidence == pytest.approx(0.7)


def test_two_line_crops_are_unfolded_into_one_line() -> None:
    two = cv2.cvtColor(render_plate("LJ13 ABC", two_line=True), cv2.COLOR_BGR2GRAY)
    unfolded = unfold_two_line(two)
    assert unfolded.shape[1] == 2 * two.shape[1]
    assert unfolded.shape[1] / unfolded.shape[0] > 4


def test_square_crops_are_read_as_two_line_wide_ones_as_one_line_and_between_both_ways() -> None:
    assert layouts_to_try(render_plate("LJ13 ABC", two_line=True)) == (True,)
    assert layouts_to_try(render_plate("LJ13 ABC")) == (False,)
    assert set(layouts_to_try(np.zeros((50, 100, 3), np.uint8))) == {False, True}


def test_preprocess_gives_the_model_input_with_zero_mean() -> None:
    x = preprocess(render_plate("AB12 CDE"), 32, 128, two_line=False)
    assert x.shape == (32, 128)
    assert x.dtype == np.float32
    assert abs(float(x.mean())) < 1e-3
