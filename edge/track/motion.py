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
MIN_SIZE_CHANGE = math.log(1.12)  # plate scale change over a track that says approaching / receding
END_SIGHTINGS = 5  # sightings at each end of a track whose median size and place are compared
MIN_DROP = 0.5  # plate heights down (up) the image that say approaching (receding) when the scale is unsure
MAX_FLATNESS = 0.4  # vertical over horizontal motion below which the vehicle crosses the view instead


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


def direction_of(
    times: Sequence[float], boxes: Sequence[Box], frame_size: tuple[int, int] = (0, 0)
) -> tuple[str | None, float | None]:
    """Approaching / receding, and the image-plane angle of travel, from a track's sightings.

    A fixed camera sees a plate grow as its vehicle comes nearer. The plate's scale is compared
    between the start and the end of the track (the median of a few sightings at each end, so a
    noisy box or a vehicle that stood still for a while does not hide the change), as the mean
    change of log height and log width: height is what yaw leaves alone when a vehicle turns,
    width what a short box leaves alone. Boxes that touch the frame's edge (``frame_size``, width
    and height; (0, 0) when unknown) are cut, so they do not count for scale.

    The plate's motion down or up the image says the same: a camera that looks along the road from
    above sees an approaching vehicle move down the image and a receding one up, and by far more
    (in plate heights) than the plate grows; it is what tells a close vehicle that drives out of
    the bottom of the frame, or a plate that turns as it comes. Each cue is measured against its
    own threshold (``MIN_SIZE_CHANGE``; ``MIN_DROP`` plate heights, on a path no flatter than
    ``MAX_FLATNESS``: a vehicle that crosses the view is neither), and the stronger one decides
    where they disagree (a stray box at one end of a short track can fake a change of scale).

    ``times`` in seconds. None where the track is too short or tells nothing (or barely moves, for
    the angle: 0 = moving right, 90 = down the image).
    """
    if len(boxes) < 3 or len(times) != len(boxes):
        return None, None
    order = sorted(range(len(boxes)), key=lambda i: times[i])
    if times[order[-1]] - times[order[0]] <= 0:
        return None, None
    ordered = [boxes[i] for i in order]
    whole = [b for b in ordered if not _touches_edge(b, frame_size)]
    size_change = 0.0
    if len(whole) >= 3:
        first, last = _ends(whole)
        size_change = (_median_log(last, "h") - _median_log(first, "h")
                       + _median_log(last, "w") - _median_log(first, "w")) / 2.0
    first, last = _ends(ordered)
    (x0, y0), (x1, y1) = _median_centre(first), _median_centre(last)
    dx, dy = x1 - x0, y1 - y0
    height = float(np.median([max(1, b.h) for b in ordered]))
    width = float(np.median([max(1, b.w) for b in ordered]))
    scale = size_change / MIN_SIZE_CHANGE
    drop = dy / (MIN_DROP * height) if abs(dy) >= MAX_FLATNESS * abs(dx) else 0.0
    evidence = scale if abs(scale) >= abs(drop) else drop
    direction = None
    if evidence >= 1.0:
        direction = "approaching"
    elif evidence <= -1.0:
        direction = "receding"
    angle = round(math.degrees(math.atan2(dy, dx)), 1) if math.hypot(dx, dy) > 0.5 * width else None
    return direction, angle


def _ends(boxes: Sequence[Box]) -> tuple[Sequence[Box], Sequence[Box]]:
    """The first and the last few boxes of a track (a third of them, at most END_SIGHTINGS)."""
    k = max(1, min(END_SIGHTINGS, len(boxes) // 3))
    return boxes[:k], boxes[-k:]


def _median_log(boxes: Sequence[Box], side: str) -> float:
    return float(np.median([math.log(max(1, b.h if side == "h" else b.w)) for b in boxes]))


def _median_centre(boxes: Sequence[Box]) -> tuple[float, float]:
    return (float(np.median([b.centre[0] for b in boxes])), float(np.median([b.centre[1] for b in boxes])))


def _touches_edge(box: Box, frame_size: tuple[int, int]) -> bool:
    width, height = frame_size
    if width <= 0 or height <= 0:
        return False
    return box.x <= 0 or box.y <= 0 or box.x + box.w >= width or box.y + box.h >= height


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
