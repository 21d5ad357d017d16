"""The plate locator: where an overview's other plates are, unread."""

from __future__ import annotations

import numpy as np

from edge.config.model import DetectConfig
from edge.detect.factory import build_fine_look
from edge.read.locate import PlateLocator
from edge.sample.plates import render_plate


def _locator() -> PlateLocator:
    fine = build_fine_look(DetectConfig())
    assert fine is not None
    return PlateLocator(fine, work_size=(1280, 720))


def test_a_small_far_plate_is_located_in_a_full_resolution_frame_and_a_bare_road_has_none() -> None:
    frame = np.full((1080, 1920, 3), (92, 96, 90), np.uint8)  # a grey road, 1080p
    plate = render_plate("W8 CLU", char_height=16)  # a far car's plate: 8 px characters where it is looked at
    h, w = plate.shape[:2]
    frame[400 : 400 + h, 1000 : 1000 + w] = plate
    (box,) = _locator().locate(frame)
    assert abs(box.x - 1000) <= 0.2 * w and abs(box.y - 400) <= h and box.w >= 0.6 * w
    assert _locator().locate(np.full((1080, 1920, 3), (92, 96, 90), np.uint8)) == []
