"""Box motion for tracking, direction of travel, zones, and the sharpness of a crop: pure functions.

Coordinates are image pixels with y down. Angles are in degrees, 0 = moving right, 90 = moving
down the image (towards a camera that looks down the road), -90 = moving up, 180 = moving left.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import cv2
import numpy as np

from edge.domain import Box, Image

SMOOTHING = 0.6  # share of a new velocity measurement taken into the estimate
MIN_SIZE_CHANGE = math.log(1.12)  # plate width change over a track that says approaching / receding


@dataclass(frozen=True, slots=True)
class Motion:
    """A box's centre and width with their velocities (per second); height follows the width."""

    cx: float
    cy: float
    w: float
    h: float
    vx: float = 0.0
    vy: float = 0.0
    vlogw: float = 0.0  # d(log width)/dt: > 0 while the plate grows (approaching)
    at: datetime | None = None
    observations: int = 1

    @classmethod
    def start(cls, box: Box, at: datetime) -> Motion:
        cx, cy = box.centre
        return cls(cx, cy, float(max(1, box.w)), float(max(1, box.h)), at=at)

    def predict(self, at: datetime) -> Box:
        """The box expected at ``at`` under constant velocity (and constant rate of growth)."""
        dt = (at - self.at).total_seconds() if self.at is not None else 0.0
        grow = math.exp(max(-2.0, min(2.0, self.vlogw * dt)))
        w, h = self.w * grow, self.h * grow
        cx, cy = self.cx + self.vx * dt, self.cy + self.vy * dt
        return Box(round(cx - w / 2), round(cy - h / 2), round(w), round(h))

    def updated(self, box: Box, at: datetime) -> Motion:
        dt = (at - self.at).total_seconds() if self.at is not None else 0.0
        cx, cy = box.centre
        w, h = float(max(1, box.w)), float(max(1, box.h))
        if dt <= 0:
            return Motion(cx, cy, w, h, self.vx, self.vy, self.vlogw, at, self.observations + 1)
        a = 1.0 if self.observations == 1 else SMOOTHING
        vx = a * (cx - self.cx) / dt + (1 - a) * self.vx
        vy = a * (cy - self.cy) / dt + (1 - a) * self.vy
        vlogw = a * math.log(w / self.w) / dt + (1 - a) * self.vlogw
        return Motion(cx, cy, w, h, vx, vy, vlogw, at, self.observations + 1)


def direction_of(times: Sequence[float], boxes: Sequence[Box]) -> tuple[str | None, float | None]:
    """Approaching / receding from the fitted change of plate width, and the image-plane angle.

    ``times`` in seconds. Least-squares fits over all sightings, so one bad box does not flip it.
    None where the track is too short or the plate barely changes size (or barely moves, for the angle).
    """
    if len(boxes) < 3 or len(times) != len(boxes):
        return None, None
    t = np.asarray(times, dtype=np.float64)
    span = float(t.max() - t.min())
    if span <= 0:
        return None, None
    logw = np.log(np.asarray([max(1, b.w) for b in boxes], dtype=np.float64))
    xs = np.asarray([b.centre[0] for b in boxes], dtype=np.float64)
    ys = np.asarray([b.centre[1] for b in boxes], dtype=np.float64)
    size_change = _slope(t, logw) * span
    direction = None
    if size_change > MIN_SIZE_CHANGE:
        direction = "approaching"
    elif size_change < -MIN_SIZE_CHANGE:
        direction = "receding"
    vx, vy = _slope(t, xs), _slope(t, ys)
    mean_w = float(np.exp(logw.mean()))
    moved = math.hypot(vx, vy) * span
    angle = round(math.degrees(math.atan2(vy, vx)), 1) if moved > 0.5 * mean_w else None
    return direction, angle


def _slope(t: np.ndarray, y: np.ndarray) -> float:
    tc = t - t.mean()
    denom = float((tc * tc).sum())
    return float((tc * (y - y.mean())).sum() / denom) if denom > 0 else 0.0


def inside(polygon: Sequence[tuple[float, float]], x: float, y: float) -> bool:
    """Point in polygon (even-odd rule); a point on an edge may fall either side."""
    result = False
    n = len(polygon)
    for i in range(n):
        x0, y0 = polygon[i]
        x1, y1 = polygon[(i + 1) % n]
        if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
            result = not result
    return result


def sharpness(crop: Image) -> float:
    """Focus measure in 0..1: the variance of the Laplacian of the grey crop, squashed."""
    if crop.size == 0:
        return 0.0
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    variance = float(cv2.Laplacian(grey, cv2.CV_32F).var())
    return variance / (variance + 300.0)


def out_of_frame(box: Box, width: int, height: int) -> bool:
    """True when less than half of the box is inside the frame."""
    return box.clipped(width, height).area * 2 < box.area or box.area == 0
