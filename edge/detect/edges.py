"""A classical plate detector for real photos: rows of character-like blobs.

Any plate, whatever its colours, holds a row of 4 to 10 characters of one height, close together,
on a level line, darker than their background. The detector finds dark blobs against the local
background (adaptive threshold, at two block sizes so small and large plates both separate), keeps
the character-shaped ones, links neighbours of similar height on a common line, and turns each row
of enough characters into a plate box: the characters' box grown by the plate's margins (a UK/EU
plate is about 1.4 character heights tall). Light-on-dark plates are found on the inverted image.

It needs no model; its parameters come from plate geometry, not from any evaluation set.
Confidence is a weighted sum of tests of the row: 5 to 9 characters, alike heights, a straight line,
even spacing, and plain plate background just above and below the characters. The best
``max_detections`` rows are returned, as each one costs a read.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge.detect import suppress_overlaps
from edge.domain import Box, Image, PlateDetection
from edge.imaging import component_stats


@dataclass(frozen=True, slots=True)
class EdgeDetectorOptions:
    min_width: int = 24  # smallest plate width, pixels
    min_confidence: float = 0.3
    min_chars: int = 4
    max_chars: int = 12
    min_char_h: int = 7  # pixels of the detection image
    max_char_h_share: float = 0.25  # of the image height
    max_char_h: int | None = None  # pixels: also at most this (a fine look for small plates only)
    min_blobs: int = 1  # separate blobs a row needs (wide blobs of touching characters count once here)
    max_detections: int = 3
    relative_score: float = 0.85  # rows scoring below this share of the best row are dropped (each costs a read)
    block_sizes: tuple[int, ...] = (15, 31)  # adaptive threshold neighbourhoods, pixels
    dark_on_light: bool = True
    light_on_dark: bool = False
    # the plate's background is followed out from the characters, within these bounds (character heights):
    # UK/EU plates are about 1.4 character heights tall, Brazilian and US ones about 2.1
    min_plate_h_per_char: float = 1.35
    max_plate_h_per_char: float = 2.3
    min_side_margin: float = 0.4  # plate margin beyond the outer characters
    max_side_margin: float = 1.6


# The fine look: small plates (characters of 5-16 pixels) on an image up to twice the detection stream's size,
# which the detection stream shows too small to separate (a 55x16 px plate at 1280x720 is 27x8 at 640x360).
# Small characters separate at this size (a row of two wide blobs is road texture); many candidates, as the
# finder reads only those that look like a plate (edge.read.line.plate_check).
FINE_LOOK = EdgeDetectorOptions(min_char_h=5, max_char_h=16, block_sizes=(9,), min_width=24, min_blobs=3,
                                max_detections=12, relative_score=0.5)


@dataclass(frozen=True, slots=True)
class Blob:
    """A character-like connected component (also the plate check's, :mod:`edge.read.line`)."""

    x: int
    y: int
    w: int
    h: int

    @property
    def cy(self) -> float:
        return self.y + self.h / 2.0

    @property
    def chars(self) -> int:
        """Characters this blob holds: touching neighbours make one wide blob."""
        return max(1, round(self.w / (0.7 * self.h)))


class EdgePlateDetector:
    """Implements :class:`edge.detect.PlateDetector` with thresholding and blob grouping only."""

    def __init__(self, options: EdgeDetectorOptions = EdgeDetectorOptions()) -> None:
        self.options = options

    def detect(self, image: Image) -> list[PlateDetection]:
        grey = image if image.ndim == 2 else np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), np.uint8)
        height = grey.shape[0]
        polarities = [grey] if self.options.dark_on_light else []
        if self.options.light_on_dark:
            polarities.append(255 - grey)
        found: list[PlateDetection] = []
        for g in polarities:
            for block in self.options.block_sizes:
                blobs = char_blobs(g, block, self.options.min_char_h, self._max_char_h(height))
                for row in char_rows(blobs, self.options.min_chars, self.options.max_chars):
                    if len(row) < self.options.min_blobs:
                        continue
                    det = self._plate(g, row)
                    if det is not None:
                        found.append(det)
        kept = suppress_overlaps(found, max_contained=0.6)
        if not kept:
            return []
        floor = self.options.relative_score * kept[0].confidence
        return [d for d in kept if d.confidence >= floor][: self.options.max_detections]

    def _max_char_h(self, height: int) -> float:
        most = self.options.max_char_h_share * height
        return most if self.options.max_char_h is None else min(most, float(self.options.max_char_h))

    def _plate(self, grey: npt.NDArray[np.uint8], row: list[Blob]) -> PlateDetection | None:
        o = self.options
        height, width = grey.shape[:2]
        x0 = min(b.x for b in row)
        x1 = max(b.x + b.w for b in row)
        ch = float(np.median([b.h for b in row]))
        cy = float(np.median([b.cy for b in row]))
        levels = _levels(grey, (x0, x1), cy, ch)
        box = plate_extent(grey, (x0, x1), cy, ch, o, levels=levels).clipped(width, height)
        if box.w < o.min_width or box.w < 1.5 * box.h:
            return None
        score = _row_score(row, ch, _framing(grey, (x0, x1), cy, ch, levels))
        if score < o.min_confidence:
            return None
        return PlateDetection(box, score)


def _band_rows(height: int, cy: float, ch: float) -> tuple[int, int]:
    """First and past-the-last image row of the characters' band (clipped to the image)."""
    return max(0, round(cy - ch / 2)), min(height, round(cy + ch / 2))


def _levels(grey: npt.NDArray[np.uint8], span: tuple[int, int], cy: float, ch: float) -> tuple[float, float] | None:
    """Background and ink grey levels of the characters' band (its 80th and 10th percentiles); None if empty."""
    top, bottom = _band_rows(grey.shape[0], cy, ch)
    band = grey[top:bottom, span[0] : span[1]]
    if band.size == 0:
        return None
    bg, ink = np.percentile(band, (80, 10))
    return float(bg), float(ink)


def plate_extent(grey: npt.NDArray[np.uint8], span: tuple[int, int], cy: float, ch: float,
                 o: EdgeDetectorOptions, *, levels: tuple[float, float] | None) -> Box:
    """The plate around a row of characters: its background followed up, down and sideways, within bounds.

    The background level is taken from the character band (its light pixels, ``levels`` from
    :func:`_levels`); a row or column still belongs to the plate while at least half its pixels are near
    that level.
    """
    height, width = grey.shape[:2]
    x0, x1 = span
    top, bottom = _band_rows(height, cy, ch)
    if levels is None:
        return Box(x0, top, x1 - x0, bottom - top)
    bg, ink = levels
    tol = max(18.0, 0.4 * (bg - ink))

    lo_v, hi_v = (o.min_plate_h_per_char - 1) / 2 * ch, (o.max_plate_h_per_char - 1) / 2 * ch
    lo_h, hi_h = o.min_side_margin * ch, o.max_side_margin * ch
    wy0, wy1 = max(0, top - int(hi_v) - 1), min(height, bottom + int(hi_v) + 1)
    wx0, wx1 = max(0, x0 - int(hi_h) - 1), min(width, x1 + int(hi_h) + 1)
    near = np.abs(grey[wy0:wy1, wx0:wx1].astype(np.float32) - bg) < tol  # window around the row
    cols = slice(x0 - wx0, x1 - wx0)
    above = near[: top - wy0, cols][::-1].mean(axis=1)  # first entry: the line just above the band
    below = near[bottom - wy0 :, cols].mean(axis=1)
    y0 = round(top - _reach(above, lo_v, hi_v))
    y1 = round(bottom + _reach(below, lo_v, hi_v))
    rows = slice(max(0, y0) - wy0, min(height, y1) - wy0)
    left = near[rows, : x0 - wx0][:, ::-1].mean(axis=0)
    right = near[rows, x1 - wx0 :].mean(axis=0)
    # sideways a character the row missed (a thin 1) must not stop the plate: step over short dark runs
    skip = max(1, round(0.3 * ch))
    reach_l, reach_r = _reach(left, lo_h, hi_h, skip), _reach(right, lo_h, hi_h, skip)
    return Box(round(x0 - reach_l), y0, round(x1 - x0 + reach_l + reach_r), y1 - y0)


def _reach(shares: npt.NDArray[np.floating], least: float, most: float, skip: int = 1) -> float:
    """Lines the plate background reaches (share of background-like pixels >= 0.5), within bounds.

    The plate ends where ``skip`` lines in a row are not background (the end of the last background line).
    """
    inside = shares >= 0.5
    d, run = 0, 0
    for k, ok in enumerate(inside.tolist()):
        run = 0 if ok else run + 1
        if ok:
            d = k + 1
        if run >= skip:
            break
    return float(min(max(d, least), most))


def char_blobs(grey: npt.NDArray[np.uint8], block: int, min_h: float, max_h: float) -> list[Blob]:
    """Dark connected components of character size and shape (pure function of the image)."""
    binary = cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, block, 7)
    stats = component_stats(binary)
    x, y, w, h, area = (stats[:, k].astype(np.float32) for k in range(5))
    aspect = w / h
    fill = area / (w * h)
    max_fill = np.where(aspect < 0.35, 1.0, 0.9)  # a 1 or an I fills its box
    keep = (h >= min_h) & (h <= max_h) & (aspect >= 0.08) & (aspect <= 2.4) & (fill >= 0.2) & (fill <= max_fill)
    boxes = zip(x[keep], y[keep], w[keep], h[keep], strict=True)
    return [Blob(int(a), int(b), int(c), int(d)) for a, b, c, d in boxes]


def char_rows(blobs: list[Blob], min_chars: int, max_chars: int) -> list[list[Blob]]:
    """The rows of :func:`linked_rows` that hold ``min_chars`` to ``max_chars`` characters."""
    return [g for g in linked_rows(blobs) if min_chars <= sum(b.chars for b in g) <= max_chars]


def linked_rows(blobs: list[Blob], *, reach: float = 1.2, max_overlap: float | None = 0.3) -> list[list[Blob]]:
    """Groups of blobs that sit side by side on one line with similar heights (union of close pairs).

    Going right from each blob (in order of x), the pairs are looked at until the first blob farther than
    ``reach`` of the taller one's height; a pair links when the two overlap by at most ``max_overlap`` of it
    (None: by any amount), have heights within a factor of 1.3 and centres within 0.3 of the taller height.
    Groups come in order of their first blob, each blob in the given order.
    """
    if not blobs:
        return []
    x, y, w, h = (np.array(v, np.float64) for v in zip(*((b.x, b.y, b.w, b.h) for b in blobs), strict=True))
    order = np.argsort(x, kind="stable")
    x, y, w, h = x[order], y[order], w[order], h[order]
    cy = y + h / 2.0
    first, second = _pairs_within(x, x + w + reach * float(h.max()))  # every pair the walk could reach
    hh = np.maximum(h[first], h[second])
    gap = x[second] - (x[first] + w[first])
    reached = _before_first(gap > reach * hh, first)
    link = reached & (hh <= 1.3 * np.minimum(h[first], h[second])) & (np.abs(cy[first] - cy[second]) <= 0.3 * hh)
    if max_overlap is not None:
        link &= gap >= -max_overlap * hh
    root = _components(len(blobs), order[first[link]], order[second[link]])
    groups: dict[int, list[Blob]] = {}
    for i, blob in enumerate(blobs):
        groups.setdefault(int(root[i]), []).append(blob)
    return list(groups.values())


def _pairs_within(start: npt.NDArray[np.float64], reach: npt.NDArray[np.float64]) -> tuple[
        npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Every (i, j), i < j, with ``start[j] <= reach[i]`` (``start`` ascending), in order of i then j."""
    ends = np.searchsorted(start, reach, side="right")
    counts = np.maximum(ends - np.arange(1, start.size + 1), 0)
    first = np.repeat(np.arange(start.size), counts)
    offsets = np.arange(first.size) - np.repeat(np.cumsum(counts) - counts, counts)
    return first, first + 1 + offsets


def _before_first(stop: npt.NDArray[np.bool_], group: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
    """Within each run of equal ``group`` values, the entries before the run's first ``stop``."""
    stops = np.cumsum(stop)
    run_start = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if group.size else np.zeros(0, np.intp)
    before_run: npt.NDArray[np.intp] = (stops - stop)[run_start]  # stops counted before each run
    lengths = np.diff(np.r_[run_start, group.size])
    return np.asarray((stops - np.repeat(before_run, lengths)) == 0, np.bool_)


def _components(n: int, a: npt.NDArray[np.intp], b: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """A label per node of the graph with edges (a[k], b[k]): the smallest node of its connected component."""
    label = np.arange(n)
    while True:
        low = np.minimum(label[a], label[b])
        new = label.copy()
        np.minimum.at(new, a, low)
        np.minimum.at(new, b, low)
        new = new[new]  # jump to the label's own label
        if np.array_equal(new, label):
            return label
        label = new


def _line_of(row: list[Blob]) -> tuple[float, float]:
    """Slope and offset of the line through the characters' centres (y = slope * x + offset)."""
    xs = np.array([b.x + b.w / 2.0 for b in row], np.float32)
    ys = np.array([b.cy for b in row], np.float32)
    if len(row) < 2 or float(np.ptp(xs)) < 1.0:
        return 0.0, float(ys.mean())
    slope, offset = np.polyfit(xs, ys, 1)
    return float(slope), float(offset)


def _framing(grey: npt.NDArray[np.uint8], span: tuple[int, int], cy: float, ch: float,
             levels: tuple[float, float] | None) -> float:
    """Share of plain background just above and below the characters (a plate has some; clutter rarely)."""
    height = grey.shape[0]
    x0, x1 = span
    if levels is None:  # an empty character band
        return 0.0
    bg, ink = levels
    if bg - ink < 25:
        return 0.0
    tol = max(18.0, 0.4 * (bg - ink))
    top, bottom = round(cy - ch / 2), round(cy + ch / 2)
    near, far = max(1, round(0.04 * ch)), max(2, round(0.15 * ch))  # UK/EU plates: about 0.2 ch of margin
    strips = [grey[max(0, top - far) : max(0, top - near + 1), x0:x1],
              grey[min(height, bottom + near - 1) : min(height, bottom + far), x0:x1]]
    shares = [float(np.mean(np.abs(s.astype(np.float32) - bg) < tol)) if s.size else 0.0 for s in strips]
    return min(shares)


def _row_score(row: list[Blob], ch: float, framing: float) -> float:
    """Plate-likeness of a row: enough characters, of one height, on one line, evenly spaced, framed."""
    ordered = sorted(row, key=lambda b: b.x)
    heights = np.array([b.h for b in ordered], np.float32)
    centres = np.array([b.cy for b in ordered], np.float32)
    n = sum(b.chars for b in ordered)
    count_term = 1.0 if 5 <= n <= 9 else 0.6
    height_term = max(0.0, 1.0 - float(heights.std()) / (0.15 * ch))
    xs = np.array([b.x + b.w / 2.0 for b in ordered], np.float32)
    slope, offset = _line_of(ordered)
    residual = float(np.abs(centres - (slope * xs + offset)).mean())  # a slanted plate is still one line
    line_term = max(0.0, 1.0 - residual / (0.15 * ch))
    gaps = np.array([b.x - (a.x + a.w) for a, b in itertools.pairwise(ordered)], np.float32) / ch
    pitch_term = float(np.mean((gaps > -0.1) & (gaps < 0.6))) if gaps.size else 0.0
    score = 0.3 * count_term + 0.15 * height_term + 0.15 * line_term + 0.2 * pitch_term + 0.2 * framing
    return float(np.clip(score, 0.0, 1.0))
