"""Cut a detected plate from the full-resolution image, read it, and fit it to the formats.

The pipeline and ``edge-anpr eval plates`` both read through :func:`read_box`, so what eval scores is
what the node does. (Tried and left out: reading a mark that fits no format again from a crop widened
sideways. On openalpr-br it recovered no plate, since PP-OCR misses those first characters at any width,
and the second reads of clutter raised the median time on openalpr-eu from 19 to 25 ms.)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from edge.domain import Box, FormatMatch, Image, PlateText
from edge.read import PlateReader

CROP_MARGIN = 0.12  # share of the plate box added on each side before OCR


class FormatMatcher(Protocol):
    def match(self, text: str, captured_on: dt.date) -> FormatMatch: ...


@dataclass(frozen=True, slots=True)
class CropRead:
    """What one plate box gave: the crop read, its text, and the format fit (None: rejected read)."""

    crop: Image
    text: PlateText
    match: FormatMatch | None


def crop_box(box: Box, width: int, height: int) -> Box:
    """The plate box grown by CROP_MARGIN of its size on every side, inside the image."""
    return box.expanded(CROP_MARGIN).clipped(width, height)


def read_box(
    image: Image,
    box: Box,
    reader: PlateReader,
    formats: FormatMatcher,
    captured_on: dt.date,
    *,
    min_confidence: float,
) -> CropRead | None:
    """Read the plate in ``box`` (full-image pixels); None when the crop is too small to read.

    A read that is empty or less sure than ``min_confidence`` comes back with ``match`` None (rejected).
    """
    height, width = image.shape[:2]
    c = crop_box(box, width, height)
    if c.w < 8 or c.h < 4:
        return None
    crop = image[c.y : c.y + c.h, c.x : c.x + c.w].copy()
    text = reader.read(crop)
    ok = bool(text.text) and text.confidence >= min_confidence
    return CropRead(crop, text, formats.match(text.text, captured_on) if ok else None)
