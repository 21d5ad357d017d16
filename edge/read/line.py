"""The main line of characters in a plate crop, and whether the crop looks like a plate at all.

A detector's box holds more than the registration: a US plate's state name above and slogan below, a
dealer's frame, stickers, the country band of an EU plate; and what a detector proposes is not always a
plate (a shop sign, a road marking, a row of windows). Before the crop is read, this module finds its
*main line*: the row of dark character blobs of one height that holds the most characters (a second row of
the same height just above or below makes it a two-line plate), and drops text of another size above,
below or beside it. The reader then gets the crop cut to that line.

The same look decides whether the crop is a plate (:func:`plate_check`): a plate carries dark characters
on a light background, so a crop whose strongest row of characters is light on dark (a sign's letters, a
road marking) is not one; nor is a row of dark shapes on a strongly coloured background that is neither
white nor yellow (windows in a brick wall). Everything here is a pure function of the crop, sized by the
crop itself, with no parameter taken from any evaluation set.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge.detect.edges import Blob, linked_rows
from edge.domain import Box, Image
from edge.imaging import component_stats, monochrome

WORK_HEIGHT = 64  # crops are looked at this tall (small plates enlarged, large ones shrunk)
MAX_WORK_WIDTH = 640
MIN_CHAR_SHARE = 0.22  # least character height, as a share of the work crop's height
MAX_CHAR_SHARE = 0.95
SECOND_LINE_HEIGHT = 0.72  # a second line counts when its characters are at least this share of the main's
# A plate's background: white, grey or silver (little colour) or yellow. A background with more colour than
# this, of another hue, is a wall, a car's paint or a sign (OpenCV hue: 0-180; yellow about 20-35).
MAX_BACKGROUND_SATURATION = 100
YELLOW_HUES = (14, 40)
MIN_PLATE_CHARS = 4  # a registration has 4-8 characters (the rare shorter dateless mark is not told from clutter)
INK_SHARE = (0.18, 0.62)  # share of dark pixels between the characters' top and bottom on a plate
SIDE_MARGIN = 0.15  # character heights between the main line and the crop's sides (a plate has its margin)
# grey levels between a plate's background and its characters (medians of Otsu's two sides in the main line):
# real plates measured 21-160 (a dim Brazilian plate at night 21), road, gravel and brick read as rows of
# characters 10-29 (a toll lane's asphalt read as 70LO: 11)
MIN_CONTRAST = 20.0


@dataclass(frozen=True, slots=True)
class TextLine:
    """The main line of characters of a crop, in the crop's pixels."""

    box: Box  # the characters (both lines of a two-line plate)
    chars: int  # characters counted in it (a wide blob of touching characters counts as several)
    char_height: float
    lines: int  # 1, or 2 for a two-line plate
    dark_on_light: bool


def main_line(crop: Image, *, dark_on_light: bool = True) -> TextLine | None:
    """The crop's main line of characters of the given polarity; None when it has no row of characters."""
    return _main_line(*_work_grey(crop), dark_on_light)


def _main_line(grey: npt.NDArray[np.uint8] | None, scale: float, dark_on_light: bool) -> TextLine | None:
    """:func:`main_line` from the crop's work image (``grey``, the crop shrunk or enlarged by ``scale``)."""
    if grey is None:
        return None
    line = _best_line(grey if dark_on_light else 255 - grey)
    if line is None:
        return None
    box, chars, height, lines = line
    inv = 1.0 / scale
    return TextLine(
        Box(round(box.x * inv), round(box.y * inv), max(1, round(box.w * inv)), max(1, round(box.h * inv))),
        chars, height * inv, lines, dark_on_light,
    )


@dataclass(frozen=True, slots=True)
class PlateCheck:
    """What :func:`plate_check` found: the crop's main line (None: none of either polarity), how sure it is
    that the crop is a plate, and why it is not sure ('' when it is)."""

    line: TextLine | None
    level: str  # "plate": it looks like one; "maybe": a weak row of characters; "no": nothing like a plate
    reason: str
    whole: bool = False  # a "maybe" whose line passes every test of a plate (light characters in colour)

    @property
    def cut(self) -> TextLine | None:
        """The line to read the crop from (the rest of the crop left out): a plate's, or a whole plate's row of
        light characters that only may be a plate; None: read the whole crop."""
        return self.line if self.level == "plate" or self.whole else None


def plate_check(crop: Image, *, min_chars: int = MIN_PLATE_CHARS) -> PlateCheck:
    """How much ``crop`` looks like a plate.

    ``plate``: a row of at least ``min_chars`` dark characters of one height, strokes (not solid shapes) on a
    plain background that is white, grey or yellow, inside the crop (a row that runs out of the crop's side is
    part of a longer text: a sign).
    A row of ``min_chars`` light characters on dark that passes every test is a plate too in a monochrome
    crop (an infrared plate whose characters outshine their background, where no colour tells a sign from a
    plate); in a colour crop it only may be one, read from that row (``whole``).
    ``maybe``: a row of at least two dark characters that fails one of those tests, or a row of ``min_chars``
    light characters on dark (a few plates are; so are signs and road markings), or of two or more that passes
    every other test (:func:`whole_plate`: an older black-and-silver plate of a short mark).
    ``no``: nothing of the kind (a wall, a road, a bonnet's edge).
    """
    grey, scale = _work_grey(crop)  # one work image for both polarities
    dark = _main_line(grey, scale, True)
    why = "no row of dark characters" if dark is None else _not_a_plate(crop, dark, min_chars)
    if dark is not None and not why:
        return PlateCheck(dark, "plate", "")
    light = _main_line(grey, scale, False)  # looked for only where the dark characters leave it open
    if light is not None and not _not_a_plate(crop, light, min_chars):
        # light characters that pass every test: an infrared plate lit so that its characters outshine its
        # background; in a monochrome (infrared) crop no colour tells a sign from a plate, so it is one
        if monochrome(crop):
            return PlateCheck(light, "plate", "")
        return PlateCheck(light, "maybe", "light characters on dark", whole=True)
    if dark is not None and dark.chars >= 2:
        return PlateCheck(dark, "maybe", why)
    if light is not None and (light.chars >= min_chars or whole_plate(crop, light)):
        return PlateCheck(light, "maybe", "light characters on dark")
    return PlateCheck(dark or light, "no", why)



def whole_plate(crop: Image, line: TextLine) -> bool:
    """Whether ``line`` is the row of a whole plate in ``crop``, of either polarity and as few as two characters:
    inside the crop with a plate's margin, strokes of a plate's ink share and contrast, on a plate's colour. A
    short mark (``M1``) or a light-on-dark plate passes; a crop cut through a plate (its row runs out of the
    crop) does not."""
    return line.chars >= 2 and not _not_a_plate(crop, line, 2)


def _not_a_plate(crop: Image, line: TextLine, min_chars: int) -> str:
    """Why the crop's ``line`` is not a plate's ('' when it could be)."""
    kind = "dark" if line.dark_on_light else "light"
    if line.chars < min_chars:
        return f"{line.chars} {kind} characters"
    side = SIDE_MARGIN * line.char_height
    if line.box.x < side or line.box.x + line.box.w > crop.shape[1] - side:
        return f"the {kind} characters run out of the crop"
    split = _ink_split(crop, line.box, dark=line.dark_on_light)  # one split for ink, contrast and background
    ink = _ink_share(split)
    if not INK_SHARE[0] <= ink <= INK_SHARE[1]:
        return f"{kind} ink share {ink:.2f}"
    contrast = _ink_contrast(split, dark=line.dark_on_light)
    if contrast < MIN_CONTRAST:
        return f"contrast {contrast:.0f}"
    colour = _background_colour(crop, line.box, split)
    if colour is not None and not plate_coloured(colour):
        return f"background of hue {colour[0]:.0f}, saturation {colour[1]:.0f}"
    return ""


_Split = tuple[Image, npt.NDArray[np.bool_]]  # the grey pixels of a box, and which of them are ink


def _ink_split(crop: Image, box: Box, *, dark: bool) -> _Split | None:
    """The grey pixels of ``box`` in the crop and which of them are ink (Otsu's split: the dark side, or the
    light one; the other side is the background); None for an empty box."""
    patch = crop[box.y : box.y + box.h, box.x : box.x + box.w]
    if patch.size == 0:
        return None
    grey = patch if patch.ndim == 2 else np.asarray(cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY), np.uint8)
    mode = cv2.THRESH_BINARY_INV if dark else cv2.THRESH_BINARY
    _, ink = cv2.threshold(grey, 0, 255, mode + cv2.THRESH_OTSU)
    return grey, ink > 0


def _ink_share(split: _Split | None) -> float:
    """Share of ink pixels in the split: characters' strokes cover about 0.3-0.5 of their row."""
    return 0.0 if split is None else float(np.count_nonzero(split[1])) / float(split[1].size)


def _ink_contrast(split: _Split | None, *, dark: bool) -> float:
    """Grey levels from the ink to the background of the split, medians of each side; 0 where the split leaves
    one side empty. Printed characters stand well clear of their plate; the texture of a road or a wall that
    happens to fall into a row of blobs does not."""
    if split is None or split[1].all() or not split[1].any():
        return 0.0
    grey, inked = split
    gap = float(np.median(grey[~inked])) - float(np.median(grey[inked]))
    return gap if dark else -gap


def _background_colour(crop: Image, box: Box, split: _Split | None) -> tuple[float, float, float] | None:
    """Median hue, saturation and value (OpenCV scales) of the background pixels of ``box`` (those its split
    does not take for ink) in a colour crop."""
    if crop.ndim != 3 or split is None:
        return None
    patch = crop[box.y : box.y + box.h, box.x : box.x + box.w]
    hsv = cv2.cvtColor(patch, cv2.COLOR_BGR2HSV)[~split[1]]
    if hsv.size == 0:
        return None
    h, s, v = np.median(hsv, axis=0)
    return float(h), float(s), float(v)


def plate_coloured(hsv: tuple[float, float, float]) -> bool:
    """A plate's background colour: little saturation (white, grey, silver), or yellow."""
    hue, saturation, _ = hsv
    return saturation <= MAX_BACKGROUND_SATURATION or YELLOW_HUES[0] <= hue <= YELLOW_HUES[1]


def cut_to_line(crop: Image, line: TextLine, *, top: float = 0.25) -> Image:
    """The crop cut to the rows of its main line, with ``top`` character heights above and below (within the
    crop). The full width is kept: a character the line missed at either end (touching the frame) is still
    read, and the format decoder drops what is not part of the mark."""
    h = crop.shape[0]
    my = round(top * line.char_height)
    y0, y1 = max(0, line.box.y - my), min(h, line.box.y + line.box.h + my)
    return crop[y0:y1]


def _work_grey(crop: Image) -> tuple[npt.NDArray[np.uint8] | None, float]:
    """The crop in grey at WORK_HEIGHT rows (width capped), and the scale applied."""
    if crop.size == 0 or crop.shape[0] < 4 or crop.shape[1] < 4:
        return None, 1.0
    grey = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    h, w = grey.shape[:2]
    scale = min(WORK_HEIGHT / h, MAX_WORK_WIDTH / w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    inter = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(grey, size, interpolation=inter), np.uint8), scale


def _blobs(grey: npt.NDArray[np.uint8]) -> list[Blob]:
    """Dark connected components of character size and shape."""
    height = grey.shape[0]
    block = max(3, (height // 2) | 1)  # about a character's height: each character against its own background
    binary = cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, block, 5)
    stats = component_stats(binary)
    x, y, w, h, area = (stats[:, k].astype(np.float32) for k in range(5))
    aspect = w / np.maximum(h, 1)
    fill = area / np.maximum(w * h, 1)
    max_fill = np.where(aspect < 0.35, 1.0, 0.9)  # a 1 or an I fills its box
    inside = (y > 0) & (y + h < height) | (h < 0.8 * height)  # not a frame crossing the whole crop
    keep = ((h >= MIN_CHAR_SHARE * height) & (h <= MAX_CHAR_SHARE * height) & (aspect >= 0.08) & (aspect <= 2.4)
            & (fill >= 0.15) & (fill <= max_fill) & inside)
    boxes = zip(x[keep], y[keep], w[keep], h[keep], strict=True)
    return [Blob(int(a), int(b), int(c), int(d)) for a, b, c, d in boxes]


def _rows(blobs: list[Blob]) -> list[list[Blob]]:
    """Blobs side by side on one line with similar heights (:func:`edge.detect.edges.linked_rows`: heights
    within a factor of 1.3), up to 1.5 of the taller one's height apart and overlapping by any amount, each
    row left to right."""
    return [sorted(g, key=lambda b: b.x) for g in linked_rows(blobs, reach=1.5, max_overlap=None)]


def _chars(blob: Blob) -> int:
    """Characters a blob holds (touching neighbours make one wide blob); the plate check's own count, a little
    wider per character than the detector's :attr:`Blob.chars`."""
    return max(1, round(blob.w / (0.75 * blob.h)))


def _extent(row: list[Blob]) -> Box:
    x0, y0 = min(b.x for b in row), min(b.y for b in row)
    x1, y1 = max(b.x + b.w for b in row), max(b.y + b.h for b in row)
    return Box(x0, y0, x1 - x0, y1 - y0)


def _best_line(grey: npt.NDArray[np.uint8]) -> tuple[Box, int, float, int] | None:
    """The row with the most characters (ties: the taller), joined by a second line of its height if there
    is one just above or below; (box, characters, character height, lines)."""
    rows = _rows(_blobs(grey))
    if not rows:
        return None
    heights = [float(np.median([b.h for b in r])) for r in rows]
    counts = [sum(_chars(b) for b in r) for r in rows]
    best = max(range(len(rows)), key=lambda k: (counts[k], heights[k]))
    box, height, chars, lines = _extent(rows[best]), heights[best], counts[best], 1
    for k, row in enumerate(rows):
        if k == best or counts[k] < 2 or not SECOND_LINE_HEIGHT <= heights[k] / height <= 1 / SECOND_LINE_HEIGHT:
            continue
        other = _extent(row)
        gap = max(other.y - (box.y + box.h), box.y - (other.y + other.h))
        overlap = min(box.x + box.w, other.x + other.w) - max(box.x, other.x)
        if -0.2 * height <= gap <= 0.8 * height and overlap >= 0.3 * min(box.w, other.w):
            x0, y0 = min(box.x, other.x), min(box.y, other.y)
            x1, y1 = max(box.x + box.w, other.x + other.w), max(box.y + box.h, other.y + other.h)
            box, chars, lines = Box(x0, y0, x1 - x0, y1 - y0), chars + counts[k], 2
            break
    return box, chars, height, lines
