"""The classical detector finds rendered plates in scene frames and nothing on an empty road."""

from __future__ import annotations

import numpy as np

from edge.capture.video import make_lores
from edge.detect.contour import ContourPlateDetector
from edge.domain import Box
from edge.sample.plates import render_plate
from edge.sample.scene import _background


def test_finds_a_plate_pasted_on_a_road() -> None:
    frame = _background(640, 360)
    plate = render_plate("AB12 CDE", char_height=14)
    h, w = plate.shape[:2]
    frame[200 : 200 + h, 400 : 400 + w] = plate
    found = ContourPlateDetector().detect(frame)
    assert len(found) == 1
    assert found[0].box.iou(Box(400, 200, w, h)) > 0.6
    assert found[0].confidence > 0.5


def test_finds_two_plates_side_by_side() -> None:
    frame = _background(640, 360)
    for x, text in ((150, "AB12 CDE"), (400, "XY65 ZZA")):
        plate = render_plate(text, char_height=14, rear=x > 300)
        frame[250 : 250 + plate.shape[0], x : x + plate.shape[1]] = plate
    assert len(ContourPlateDetector().detect(frame)) == 2


def test_empty_road_gives_nothing() -> None:
    assert ContourPlateDetector().detect(_background(640, 360)) == []


def test_lores_scaling_keeps_the_aspect() -> None:
    image = np.zeros((720, 1280, 3), np.uint8)
    assert make_lores(image, (640, 360)).shape == (360, 640, 3)
