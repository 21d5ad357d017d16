"""Read: OCR of a plate crop, then validation against the configured registration formats."""

from __future__ import annotations

from typing import Protocol

from edge.domain import Image, PlateText


class PlateReader(Protocol):
    """Reads the characters of one plate crop (BGR, any size)."""

    def read(self, crop: Image) -> PlateText: ...
