"""A stand-in plate reader for generated scenes: it matches each crop against the scene's own rendered
plates (normalised cross-correlation) instead of running the OCR model.

It implements :class:`edge.read.PlateReader` and is deterministic (its occasional misreads depend only
on the crop's pixels), so pipeline-level tests run before, or without, a trained OCR model.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import cv2
import numpy as np

from edge.domain import Image, PlateText
from edge.sample.plates import render_plate

_W = 120  # template width the crops are matched at


def _grey(image: Image) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image


class SceneTemplateReader:
    def __init__(self, plates: Sequence[str], *, misread_one_in: int = 0, min_score: float = 0.4) -> None:
        self.misread_one_in = misread_one_in
        self.min_score = min_score
        self.templates: list[tuple[str, np.ndarray]] = []
        for plate in plates:
            for rear in (False, True):
                t = _grey(render_plate(plate, rear=rear, char_height=32))
                h = round(t.shape[0] * _W / t.shape[1])
                self.templates.append((plate.replace(" ", ""), cv2.resize(t, (_W, h), interpolation=cv2.INTER_AREA)))

    def read(self, crop: Image) -> PlateText:
        grey = _grey(crop)
        # the pipeline adds a 12% margin on each side: the plate is about 1/1.24 of the crop
        scale = _W * 1.24 / max(1, grey.shape[1])
        size = (max(_W + 2, round(grey.shape[1] * scale)), max(4, round(grey.shape[0] * scale)))
        resized = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        best, text = -1.0, ""
        for plate, template in self.templates:
            if template.shape[0] > resized.shape[0] or template.shape[1] > resized.shape[1]:
                continue
            score = float(cv2.matchTemplate(resized, template, cv2.TM_CCOEFF_NORMED).max())
            if score > best:
                best, text = score, plate
        if best < self.min_score:
            return PlateText("", ())
        conf = min(0.99, max(0.0, best))
        if self.misread_one_in and text:
            h = zlib.crc32(crop.tobytes())
            if h % self.misread_one_in == 0:  # one character swapped for a look-alike
                i = (h >> 8) % len(text)
                text = text[:i] + {"0": "O", "O": "0", "1": "I", "8": "B", "B": "8"}.get(text[i], "X") + text[i + 1 :]
        return PlateText(text, (conf,) * len(text))
