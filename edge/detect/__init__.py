"""Detect: find number plates in the low-resolution image."""

from __future__ import annotations

import threading
from typing import Protocol

from edge.domain import Image, PlateDetection


class PlateDetector(Protocol):
    """Finds plates in an image; boxes are in that image's pixel coordinates."""

    def detect(self, image: Image) -> list[PlateDetection]: ...


class InTurn:
    """One detector that several threads use in turn (its model is not thread-safe, and too large to load
    once per thread)."""

    def __init__(self, detector: PlateDetector) -> None:
        self.detector = detector
        self._lock = threading.Lock()

    def detect(self, image: Image) -> list[PlateDetection]:
        with self._lock:
            return self.detector.detect(image)


def suppress_overlaps(
    found: list[PlateDetection], iou: float = 0.3, max_contained: float | None = None
) -> list[PlateDetection]:
    """The detections, most confident first, less any that overlaps a kept one by ``iou`` or more.

    With ``max_contained``, a detection is also dropped when its intersection with a kept one covers
    more than that share of the smaller of the two boxes (a box inside another one).
    """
    kept: list[PlateDetection] = []
    for det in sorted(found, key=lambda d: d.confidence, reverse=True):
        if all(
            det.box.iou(k.box) < iou
            and (max_contained is None
                 or det.box.intersection(k.box) < max_contained * min(det.box.area, k.box.area))
            for k in kept
        ):
            kept.append(det)
    return kept
