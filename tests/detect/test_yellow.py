"""The yellow detector: rear plates too small for their characters to separate are still a yellow rectangle."""

from __future__ import annotations

import cv2
import numpy as np

from edge.detect.edges import FINE_LOOK, EdgePlateDetector
from edge.detect.yellow import Together, YellowPlateDetector
from edge.domain import Box
from edge.sample.plates import render_plate


def _street(size: tuple[int, int] = (960, 540)) -> np.ndarray:
    rng = np.random.default_rng(5)
    image = np.full((size[1], size[0], 3), (95, 100, 105), np.uint8)
    return cv2.add(image, rng.integers(0, 25, image.shape, dtype=np.uint8))


def test_a_small_blurred_yellow_rear_plate_is_found() -> None:
    image = _street()
    plate = cv2.resize(render_plate("PG05 UVT", char_height=40, rear=True), (46, 11), interpolation=cv2.INTER_AREA)
    image[420:431, 430:476] = plate
    image = cv2.GaussianBlur(image, (3, 3), 0)
    found = YellowPlateDetector().detect(image)
    assert any(Box(430, 420, 46, 11).iou(d.box) >= 0.5 for d in found)


def test_yellow_that_is_not_plate_shaped_is_not_proposed() -> None:
    image = _street()
    cv2.rectangle(image, (100, 100), (400, 300), (0, 210, 230), -1)  # a yellow van's side
    cv2.line(image, (500, 400), (900, 520), (0, 210, 230), 3)  # a yellow road line
    cv2.rectangle(image, (600, 100), (640, 180), (0, 210, 230), -1)  # a yellow post
    assert YellowPlateDetector().detect(image) == []


def test_together_merges_the_boxes_of_both_detectors() -> None:
    image = _street()
    plate = render_plate("AB12 CDE", char_height=12, rear=True)
    h, w = plate.shape[:2]
    image[200 : 200 + h, 300 : 300 + w] = plate
    both = Together(EdgePlateDetector(FINE_LOOK), YellowPlateDetector()).detect(image)
    near = [d for d in both if Box(300, 200, w, h).iou(d.box) >= 0.3]
    assert len(near) == 1
