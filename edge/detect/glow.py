"""Glowing plates: under an infrared lamp a retro-reflective plate is the brightest rectangle on a dark vehicle.

At night a NoIR plate camera records a grey picture in which bodywork and road are dark and the plate shines.
Its characters may be dark on the glowing plate or, where the lamp over-lights it, brighter still than the plate:
either way the plate stands out as a bright rectangle. This detector looks at monochrome images only (a colour
image is left to the others): pixels clearly brighter than their wide surroundings, closed over the characters,
in components of a plate's shape that fill most of their box. Headlights, lane markings and signs glow too: what
it finds is only a proposal, which the plate check (:mod:`edge.read.line`) and the formats decide on.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.detect import suppress_overlaps
from edge.domain import Box, Image, PlateDetection
from edge.imaging import component_stats, monochrome


@dataclass(frozen=True, slots=True)
class GlowDetectorOptions:
    min_width: int = 16  # pixels of the image given
    min_height: int = 5
    min_aspect: float = 1.8  # one-line plates are about 4.7 (and a Brazilian one about 3); blur shortens them
    max_aspect: float = 7.0
    min_fill: float = 0.6  # share of the component's box that glows (after closing over the characters)
    max_height_share: float = 0.15  # of the image height: larger bright things are lit vehicles or signs
    surround: float = 0.2  # the surroundings a pixel is compared with: a window of this share of the image width
    margin: float = 25.0  # grey levels a pixel must stand above its surroundings' mean
    least: float = 60.0  # and this bright at least (noise on a black road is not a plate)
    max_detections: int = 4


class GlowPlateDetector:
    """Implements :class:`edge.detect.PlateDetector`: bright rectangles of a plate's shape in a monochrome image."""

    def __init__(self, options: GlowDetectorOptions = GlowDetectorOptions()) -> None:
        self.options = options

    def detect(self, image: Image) -> list[PlateDetection]:
        if not monochrome(image):
            return []
        o = self.options
        grey = image if image.ndim == 2 else np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), np.uint8)
        k = max(15, round(o.surround * grey.shape[1]))
        around = cv2.blur(grey.astype(np.float32), (k, k))
        bright = ((grey > around + o.margin) & (grey > o.least)).astype(np.uint8) * 255
        close = max(3, round(grey.shape[1] / 160)) | 1  # over a character's stroke at this size
        mask = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (close, close)))
        most_h = o.max_height_share * grey.shape[0]
        found = []
        for x, y, w, h, area in component_stats(mask).tolist():
            if w < o.min_width or h < o.min_height or h > most_h:
                continue
            aspect, fill = w / h, area / float(w * h)
            if not (o.min_aspect <= aspect <= o.max_aspect) or fill < o.min_fill:
                continue
            score = 0.5 + 0.5 * min(1.0, fill) * max(0.0, 1.0 - abs(float(np.log(aspect / 4.7))))
            found.append(PlateDetection(Box(x, y, w, h), float(score)))
        return suppress_overlaps(found)[: o.max_detections]
