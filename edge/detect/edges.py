"""A classical plate detector for real photos: rows of character-like blobs.

Any plate, whatever its colours, holds a row of 4 to 10 characters of one height, close together,
on a level line, darker than their background. The detector finds dark blobs against the local
background (adaptive threshold, at two block sizes so small and large plates both separate), keeps
the character-shaped ones, links neighbours of similar height on a common line, and turns each row
of enough characters into a plate box: the characters' box grown by the plate's margins (a UK/EU
plate is about 1.4 character heights tall). Light-on-dark plates are found on the inverted image.

It needs no model; its parameters come from plate geometry, not from any evaluation set.
Confidence grows with the number of characters (up to 7), how alike their heights are and how
straight their line is.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge.domain import Box, Image, PlateDetection


@dataclass(frozen=True, slots=True)
class EdgeDetectorOptions:
    min_width: int = 24  # smallest plate width, pixels
    min_confidence: float = 0.3
    min_chars: int = 4
    max_chars: int = 12
    min_char_h: int = 7  # pixels of the detection image
    max_char_h_share: float = 0.25  # of the image height
    max_detections: int = 4
    block_sizes: tuple[int, ...] = (15, 31)  # adaptive threshold neighbourhoods, pixels
    dark_on_light: bool = True
    light_on_dark: bool = False
    plate_h_per_char: float = 1.45  # plate height / character height
    side_margin_per_char: float = 0.55  # plate margin beyond the outer characters, in character heights


@dataclass(frozen=True, slots=True)
class _Blob:
    x: int
    y: int
    w: int
    h: int

    @property
    def cy(self) -> float:
        return self.y + self.h / 2.0


class EdgePlateDetector:
    """Implements :class:`edge.detect.PlateDetector` with thresholding and blob grouping only."""

    def __init__(self, options: EdgeDetectorOptions = EdgeDetectorOptions()) -> None:
        self.options = options

    def detect(self, image: Image) -> list[PlateDetection]:
        grey = image if image.ndim == 2 else np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), np.uint8)
        height, width = grey.shape[:2]
        polarities = [g for g, on in ((grey, self.options.dark_on_light), (255 - grey, self.options.light_on_dark))
                      if on]
        found: list[PlateDetection] = []
        for g in polarities:
            for block in self.options.block_sizes:
                blobs = char_blobs(g, block, self.options.min_char_h, self.options.max_char_h_share * height)
                for row in char_rows(blobs, self.options.min_chars, self.options.max_chars):
                    det = self._plate(row, width, height)
                    if det is not None:
                        found.append(det)
        kept = _suppress_overlaps(found)
        return kept[: self.options.max_detections]

    def _plate(self, row: list[_Blob], width: int, height: int) -> PlateDetection | None:
        o = self.options
        x0 = min(b.x for b in row)
        x1 = max(b.x + b.w for b in row)
        heights = np.array([b.h for b in row], np.float32)
        ch = float(np.median(heights))
        cy = float(np.median([b.cy for b in row]))
        margin = o.side_margin_per_char * ch
        plate_h = o.plate_h_per_char * ch
        box = Box(round(x0 - margin), round(cy - plate_h / 2), round(x1 - x0 + 2 * margin), round(plate_h))
        box = box.clipped(width, height)
        if box.w < o.min_width or box.w < 1.5 * box.h:
            return None
        score = _row_score(row, ch)
        if score < o.min_confidence:
            return None
        return PlateDetection(box, score)


def char_blobs(grey: npt.NDArray[np.uint8], block: int, min_h: float, max_h: float) -> list[_Blob]:
    """Dark connected components of character size and shape (pure function of the image)."""
    binary = cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, block, 7)
    n, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    blobs = []
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        if not min_h <= h <= max_h:
            continue
        aspect = w / h
        fill = area / float(w * h)
        if 0.12 <= aspect <= 1.0 and 0.2 <= fill <= 0.9:
            blobs.append(_Blob(x, y, w, h))
    return blobs


def char_rows(blobs: list[_Blob], min_chars: int, max_chars: int) -> list[list[_Blob]]:
    """Groups of blobs that sit side by side on one line with similar heights (union of close pairs)."""
    order = sorted(range(len(blobs)), key=lambda i: blobs[i].x)
    parent = list(range(len(blobs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a_pos, i in enumerate(order):
        a = blobs[i]
        for j in order[a_pos + 1 :]:
            b = blobs[j]
            h = max(a.h, b.h)
            gap = b.x - (a.x + a.w)
            if gap > 1.2 * h:
                break
            if gap < -0.3 * h:
                continue
            if max(a.h, b.h) > 1.3 * min(a.h, b.h) or abs(a.cy - b.cy) > 0.3 * h:
                continue
            parent[find(j)] = find(i)
    groups: dict[int, list[_Blob]] = {}
    for i, blob in enumerate(blobs):
        groups.setdefault(find(i), []).append(blob)
    return [g for g in groups.values() if min_chars <= len(g) <= max_chars]


def _row_score(row: list[_Blob], ch: float) -> float:
    heights = np.array([b.h for b in row], np.float32)
    centres = np.array([b.cy for b in row], np.float32)
    count_term = min(len(row), 7) / 7.0
    height_term = max(0.0, 1.0 - float(heights.std()) / (0.15 * ch))
    line_term = max(0.0, 1.0 - float(np.abs(centres - np.median(centres)).mean()) / (0.15 * ch))
    return float(np.clip(0.5 * count_term + 0.25 * height_term + 0.25 * line_term, 0.0, 1.0))


def _suppress_overlaps(found: list[PlateDetection], iou: float = 0.3) -> list[PlateDetection]:
    kept: list[PlateDetection] = []
    for det in sorted(found, key=lambda d: d.confidence, reverse=True):
        if all(det.box.iou(k.box) < iou and det.box.intersection(k.box) < 0.6 * min(det.box.area, k.box.area)
               for k in kept):
            kept.append(det)
    return kept
