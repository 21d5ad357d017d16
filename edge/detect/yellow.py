"""Yellow plates: UK (and Dutch, Luxembourg...) rear plates are a saturated yellow rectangle.

A plate too small or too blurred for its characters to separate (a taxi's rear plate 45 pixels wide in a
960x540 street video) still shows as a yellow rectangle of a plate's aspect. This detector finds those:
saturated yellow pixels, closed over the characters, in components of a plate's shape that fill most of
their box. What it finds is only a proposal: the plate check (:mod:`edge.read.line`) and the formats
decide whether it is read as a plate (a yellow sign or a road marking fails one or the other).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.detect import PlateDetector, suppress_overlaps
from edge.domain import Box, Image, PlateDetection
from edge.imaging import component_stats

# OpenCV HSV: hue 0-180. A UK rear plate's yellow is about hue 20-30; dusk, shade and cameras spread it.
YELLOW_LOW = (15, 70, 90)
YELLOW_HIGH = (40, 255, 255)


@dataclass(frozen=True, slots=True)
class YellowDetectorOptions:
    min_width: int = 16  # pixels of the image given
    min_height: int = 5
    min_aspect: float = 2.0  # one-line plates are about 4.7, a two-line one 1.4 (left to the other detectors)
    max_aspect: float = 7.0
    min_fill: float = 0.5  # share of the component's box that is yellow (after closing over the characters)
    max_height_share: float = 0.15  # of the image height: larger yellow things are vehicles, signs, walls
    max_detections: int = 4
    work_width: int = 640  # a wider image is searched at every n-th pixel (colour survives; a 4th of the cost)


class YellowPlateDetector:
    """Implements :class:`edge.detect.PlateDetector` with a colour mask and connected components."""

    def __init__(self, options: YellowDetectorOptions = YellowDetectorOptions()) -> None:
        self.options = options

    def detect(self, image: Image) -> list[PlateDetection]:
        if image.ndim != 3:
            return []
        o = self.options
        step = max(1, image.shape[1] // o.work_width)
        found = self._detect(image[::step, ::step] if step > 1 else image, step)
        return [PlateDetection(d.box.scaled(step, step), d.confidence) for d in found] if step > 1 else found

    def _detect(self, image: Image, step: int) -> list[PlateDetection]:
        """Candidates in ``image`` (the given one at every ``step``-th pixel), in its own pixels."""
        o = self.options
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
        mask = cv2.inRange(hsv, YELLOW_LOW, YELLOW_HIGH)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (5, 3)))
        most_h = o.max_height_share * image.shape[0]
        found = []
        for x, y, w, h, area in component_stats(mask).tolist():
            if w * step < o.min_width or h * step < o.min_height or h > most_h:
                continue
            aspect, fill = w / h, area / float(w * h)
            if not (o.min_aspect <= aspect <= o.max_aspect) or fill < o.min_fill:
                continue
            score = 0.5 + 0.5 * min(1.0, fill) * max(0.0, 1.0 - abs(np.log(aspect / 4.7)))
            found.append(PlateDetection(Box(x, y, w, h), float(score)))
        return suppress_overlaps(found)[: o.max_detections]


class Together:
    """Implements :class:`edge.detect.PlateDetector`: every detector's boxes, overlapping ones merged."""

    def __init__(self, *detectors: PlateDetector) -> None:
        self.detectors = detectors

    def detect(self, image: Image) -> list[PlateDetection]:
        found: list[PlateDetection] = []
        for detector in self.detectors:
            found.extend(detector.detect(image))
        return suppress_overlaps(found, max_contained=0.6)
