"""Cut a detected plate from the full-resolution image, look whether it is a plate, read it, and fit it to the
formats.

Before a crop is read, :func:`edge.read.line.plate_check` looks at it: a crop with no row of characters at
all (a wall, a road, a bonnet's edge) is not read; one that looks like a plate is read from the rows of its
main line of characters; one that only may be a plate is read whole, and its read counts only when it is
long. A short read (fewer than ``LONG_READ`` characters: the words of signs, windows and road
markings read as ``M1`` or ``BU5``) counts only from a crop that is a *whole plate* with as many characters
(within one): its main line of dark, or light, characters passes every test of a plate but perhaps the count
(:func:`edge.read.line.whole_plate`), so a genuine short mark or an older black-and-silver plate can count;
the tracker then asks more sightings of such reads (:mod:`edge.track.tracker`).

A fit by position (a confusable character swapped to fit a format: ``5`` read where a letter must be becomes
``S``) is made here, and judged where a vehicle's reads are voted (:mod:`edge.track.vote`): it stands only
where some read of the vehicle found the fitted character plausible (:attr:`PlateText.char_options`: not
scored below ``read.fit_min_ratio`` of a sure best). The twins the plate font draws alike (O/0, I/1) always
fit, at no cost. A character swapped to a look-alike (S/5, B/8...) carries its own probability (0 when it is
no option) plus half the seen one's (``SWAP_SHARE``, as the format decoder counts a look-alike it fits): a sure
S taken for a 5 counts about 0.5, not 0.97. ``read.min_confidence`` is judged on the read as the reader made it.

The pipeline and ``edge-anpr eval plates`` both read through :func:`read_box`, so what eval scores is
what the node does. (Tried and left out: reading a mark that fits no format again from a crop widened
sideways. On openalpr-br it recovered no plate, since PP-OCR misses those first characters at any width,
and the second reads of clutter raised the median time on openalpr-eu from 19 to 25 ms.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from edge.domain import Box, FormatMatch, Image, PlateText
from edge.read import PlateReader
from edge.read.formats import normalise
from edge.read.lattice import SWAP_SHARE, TWINS
from edge.read.line import PlateCheck, cut_to_line, plate_check, whole_plate

CROP_MARGIN = 0.12  # share of the plate box added on each side before OCR
LONG_READ = 5  # a read of a crop that only may be a plate must have this many characters and fit a format


class FormatMatcher(Protocol):
    def match(self, text: str, captured_on: dt.date) -> FormatMatch: ...


@dataclass(frozen=True, slots=True)
class CropRead:
    """What one plate box gave: the crop read, its text, and the format fit (None: rejected read)."""

    crop: Image
    text: PlateText
    match: FormatMatch | None
    look: str = "plate"  # the plate check's verdict on the crop: plate, maybe or no (plate when not checked)
    ocr: bool = True  # the reader ran on it (False: not read, for its look or as asked)
    whole: bool = True  # the crop is a whole plate with about as many characters as the read (unchecked: True)


def crop_box(box: Box, width: int, height: int) -> Box:
    """The plate box grown by CROP_MARGIN of its size on every side, inside the image."""
    return box.expanded(CROP_MARGIN).clipped(width, height)


def crop_corners(image: Image, corners: Sequence[tuple[float, float]]) -> Image | None:
    """The plate whose corners (top-left, top-right, bottom-right, bottom-left; image pixels) are given,
    straightened to a rectangle of its own mean side lengths, with CROP_MARGIN of its width on the left and
    right (WPOD-NET's corners already take in the plate's border, about 10% of its height beyond the
    characters' rows; a margin above and below brought in a city strip's text). Pixels beyond the image
    repeat its edge. None when it is too small or degenerate."""
    src = np.asarray(corners, np.float32).reshape(4, 2)
    w = (np.linalg.norm(src[1] - src[0]) + np.linalg.norm(src[2] - src[3])) / 2.0
    h = (np.linalg.norm(src[3] - src[0]) + np.linalg.norm(src[2] - src[1])) / 2.0
    mx = CROP_MARGIN * w  # the sides only: a detector's corners take in the plate's border already
    if w + 2 * mx < 8 or h < 4 or not np.isfinite([w, h]).all():
        return None
    dst = np.array([[mx, 0.0], [mx + w, 0.0], [mx + w, h], [mx, h]], np.float32)
    size = (round(w + 2 * mx), round(h))
    warp = cv2.getPerspectiveTransform(src, dst)
    return np.asarray(cv2.warpPerspective(image, warp, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))


def read_box(
    image: Image,
    box: Box,
    reader: PlateReader,
    formats: FormatMatcher,
    captured_on: dt.date,
    *,
    min_confidence: float,
    corners: Sequence[tuple[float, float]] | None = None,
    verify: bool = True,
    only_plates: bool = False,
    read_maybe: bool = True,
) -> CropRead | None:
    """Read the plate in ``box`` (full-image pixels); None when the crop is too small to read.

    With ``corners`` (a detector that finds them) the plate is straightened from them first. With
    ``only_plates``, only a crop that looks like a plate is read (a detector that proposes many boxes); without
    ``read_maybe``, a crop that only may be a plate is not read either (it read as none here a moment ago).
    Without ``verify`` (a box known to be a plate: ``eval plates --truth-boxes``) nothing is refused, but the
    crop is still read from its main line where the plate check finds one, as the node reads it.
    A read that is empty or less sure than ``min_confidence`` comes back with ``match`` None (rejected).
    """
    height, width = image.shape[:2]
    if corners is not None:
        crop = crop_corners(image, corners)
        if crop is None:
            return None
    else:
        c = crop_box(box, width, height)
        if c.w < 8 or c.h < 4:
            return None
        crop = image[c.y : c.y + c.h, c.x : c.x + c.w].copy()
    check = plate_check(crop)  # without ``verify`` (a box known to be a plate) only for the line to read
    look = check.level if verify else "plate"
    if look == "no" or (look == "maybe" and (only_plates or not read_maybe)):
        return CropRead(crop, PlateText("", ()), None, look, ocr=False)
    # a crop that looks like a plate is read from the rows of its main line only: a US plate's state name
    # and slogan, a dealer's frame and a Brazilian plate's city strip are not read into the mark
    # (and one of light characters that passes every test of a plate: an infrared plate whose characters glow)
    line = check.cut
    text = reader.read(crop if line is None else cut_to_line(crop, line))
    ok = bool(text.text) and text.confidence >= min_confidence
    match = formats.match(text.text, captured_on) if ok else None
    if match is not None and match.corrected:
        text = fit_by_position(text, match)
    whole = not verify or (match is not None and _whole(crop, check, len(match.text)))
    # a long read counts from any crop with a row of characters (one that fits no format is not published by a
    # node with formats, but counts where none are set); a short one only from a whole plate, and from one that
    # only may be a plate (a short or light-on-dark mark) only when it fits a format
    if match is not None and len(match.text) < LONG_READ and not (
            whole and (look == "plate" or match.format_name is not None)):
        match = None
    return CropRead(crop, text, match, look, whole=whole)


def fit_by_position(text: PlateText, match: FormatMatch) -> PlateText:
    """``text`` with the confidences of the characters ``match`` swapped to a look-alike to fit its format: each
    its own probability at that position (0 when it is none of the read's options) plus ``SWAP_SHARE`` of the
    seen character's, never more than the seen one's. A twin (O/0, I/1) fits at no cost; a read that does not
    say its options (``char_options`` empty), or whose fit changed its length, is returned as it is."""
    raw = normalise(text.text)
    options = text.char_options
    if not options or len(options) != len(raw) or len(match.text) != len(raw) or len(text.char_confidences) != len(raw):
        return text
    confs = list(text.char_confidences)
    for k, (seen, fitted) in enumerate(zip(raw, match.text, strict=True)):
        if seen != fitted and TWINS.get(seen) != fitted and options[k]:
            confs[k] = min(confs[k], dict(options[k]).get(fitted, 0.0) + SWAP_SHARE * options[k][0][1])
    return PlateText(text.text, tuple(confs), text.unconstrained, options)


def _whole(crop: Image, check: PlateCheck, chars: int) -> bool:
    """Whether the crop is a whole plate whose main line has ``chars`` characters, within one."""
    line = check.line
    if line is None or abs(line.chars - chars) > 1:
        return False
    return check.level == "plate" or whole_plate(crop, line)
