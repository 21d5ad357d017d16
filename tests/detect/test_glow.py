"""Glowing plates in monochrome (infrared) frames."""

from __future__ import annotations

import cv2
import numpy as np

from edge.detect.glow import GlowPlateDetector
from edge.sample.plates import render_plate
from edge.sample.stills import render_still


def test_the_glowing_plate_of_a_night_frame_is_found() -> None:
    found = 0
    for i in range(8):
        still = render_still(11, i, size=(640, 360))
        boxes = [d.box for d in GlowPlateDetector().detect(still.image)]
        found += any(still.box.iou(b) >= 0.5 for b in boxes)
    assert found >= 7


def test_dark_characters_and_glowing_characters_are_both_found() -> None:
    plate = cv2.cvtColor(render_plate("AB12 CDE", char_height=20), cv2.COLOR_BGR2GRAY)
    for glyphs in (plate, np.where(plate < 128, 250, 120).astype(np.uint8)):  # dark on bright; bright on dull
        frame = np.full((360, 640), 25, np.uint8)
        frame[200 : 200 + plate.shape[0], 300 : 300 + plate.shape[1]] = glyphs
        boxes = [d.box for d in GlowPlateDetector().detect(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))]
        assert any(abs(b.x - 300) <= 3 and abs(b.w - plate.shape[1]) <= 6 for b in boxes), boxes


def test_a_colour_frame_is_left_to_the_other_detectors() -> None:
    still = render_still(11, 0, look="day", size=(640, 360))
    assert GlowPlateDetector().detect(still.image) == []
