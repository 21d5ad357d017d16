"""A classical plate detector: bright, plate-shaped rectangles that hold dark characters.

It needs no model and is fast on the low-resolution stream; it suits clean views such as the
generated sample scenes. Confidence combines how rectangular the region is, how close its aspect
ratio is to a UK plate's (about 4.7), and how much character-like ink it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.detect import suppress_overlaps
from edge.domain import Box, Image, PlateDetection, as_image

PLATE_ASPECT = 520.0 / 111.0


@dataclass(frozen=True, slots=True)
class ContourDetectorOptions:
    min_width: int = 24
    min_aspect: float = 2.2
    max_aspect: float = 7.0
    min_confidence: float = 0.3


class ContourPlateDetector:
    """Implements :class:`edge.detect.PlateDetector` with OpenCV morphology only."""

    def __init__(self, options: ContourDetectorOptions = ContourDetectorOptions()) -> None:
        self.options = options

    def detect(self, image: Image) -> list[PlateDetection]:
        mask = plate_background_mask(image)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        grey = as_image(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        found: list[PlateDetection] = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            if w < self.options.min_width or h < 6:
                continue
            aspect = w / h
            if not self.options.min_aspect <= aspect <= self.options.max_aspect:
                continue
            fill = cv2.contourArea(contour) / float(w * h)
            ink = _ink_share(grey[y : y + h, x : x + w])
            score = _score(fill, aspect, ink)
            if score >= self.options.min_confidence:
                found.append(PlateDetection(Box(x, y, w, h), score))
        return suppress_overlaps(found)


def plate_background_mask(image: Image) -> Image:
    """Pixels that look like a plate's background (white or UK-rear yellow), closed over the characters."""
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    white = (s < 70) & (v > 150)
    yellow = (h >= 15) & (h <= 40) & (s > 80) & (v > 120)
    mask = np.where(white | yellow, 255, 0).astype(np.uint8)
    # close the gaps the dark characters leave, so a plate is one blob
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (9, 5))
    closed = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    return np.asarray(cv2.morphologyEx(closed, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)), dtype=np.uint8)


def _ink_share(patch: Image) -> float:
    if patch.size == 0:
        return 0.0
    inner = patch[patch.shape[0] // 5 : patch.shape[0] * 4 // 5, patch.shape[1] // 20 : patch.shape[1] * 19 // 20]
    if inner.size == 0:
        return 0.0
    _, dark = cv2.threshold(inner, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    return float(np.count_nonzero(dark)) / float(dark.size)


def _score(fill: float, aspect: float, ink: float) -> float:
    aspect_term = max(0.0, 1.0 - abs(np.log(aspect / PLATE_ASPECT)))
    ink_term = 1.0 if 0.12 <= ink <= 0.55 else max(0.0, 1.0 - abs(ink - 0.3) * 4)
    return float(np.clip(0.4 * fill + 0.3 * aspect_term + 0.3 * ink_term, 0.0, 1.0))
