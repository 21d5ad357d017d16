"""Detect: find number plates in the low-resolution image."""

from __future__ import annotations

from typing import Protocol

from edge.domain import Image, PlateDetection


class PlateDetector(Protocol):
    """Finds plates in an image; boxes are in that image's pixel coordinates."""

    def detect(self, image: Image) -> list[PlateDetection]: ...
