"""Render UK-looking number plates and draw random valid UK registrations.

Pure functions with OpenCV drawing only (Hershey fonts, thick strokes, narrowed to the
proportions of the UK plate font). Used for golden tests, scene generation and OCR training.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import cv2
import numpy as np

from edge.domain import Image
from edge.read.formats import uk_age_identifiers

# Proportions of a UK plate in mm (single line 520 x 111, characters 79 high, 50 wide).
_PLATE_ASPECT = 520.0 / 111.0
_PLATE_H_PER_CHAR = 111.0 / 79.0
_CHAR_W = 50.0 / 79.0
_CHAR_GAP = 11.0 / 79.0
_SPACE_GAP = 33.0 / 79.0
_STROKE = 14.0 / 79.0
_TWO_LINE_ASPECT = 285.0 / 203.0
_TWO_LINE_CHAR_H = 64.0 / 203.0  # two-line plates use 64 mm characters
_TWO_LINE_LINE_GAP = 19.0 / 64.0

_WHITE = (250, 250, 250)
_YELLOW = (10, 200, 250)  # BGR
_INK = (20, 20, 20)

_GLYPH_SIZE = 100  # the height glyphs are drawn at before being scaled down

# Letters allowed by position (DVLA rules, see ../shared/BRIEF.md).
_MEMORY_TAG = "ABCDEFGHJKLMNOPRSTUVWXY"  # no I, Q, Z
_RANDOM_LETTERS = "ABCDEFGHJKLMNOPRSTUVWXYZ"  # no I, Q
_PREFIX_YEAR = "ABCDEFGHJKLMNPRSTUVWXY"  # no I, O, Q, Z
_PREFIX_SERIAL = "ABCDEFGHJKLMNOPRSTUVWXY"  # no I, Q, Z
_SUFFIX_YEAR = "ABCDEFGHJKLMNPRSTUVWXY"
_NI_COUNTY = ("IA", "IB", "IG", "IJ", "IL", "IW", "OI", "AZ", "BZ", "CZ", "DZ", "FZ", "GZ",
              "HZ", "JI", "JZ", "KZ", "LZ", "MZ", "NZ", "PZ", "RZ", "SZ", "TZ", "UI", "UZ", "WZ", "XI", "XZ", "YZ")


@dataclass(frozen=True, slots=True)
class _Style:
    stroke: float  # stroke width as a fraction of the character height
    char_gap: float  # gap between characters as a fraction of the character height
    font: int  # a cv2 Hershey font


def _glyph(ch: str, height: int, width: int, stroke: float, font: int) -> np.ndarray:
    """A float mask (height x <=width) of one character, drawn big, cropped, then scaled down."""
    scale = cv2.getFontScaleFromHeight(font, _GLYPH_SIZE, max(1, round(stroke * _GLYPH_SIZE)))
    thick = max(1, round(stroke * _GLYPH_SIZE))
    canvas = np.zeros((_GLYPH_SIZE * 2, _GLYPH_SIZE * 2), np.uint8)
    cv2.putText(canvas, ch, (_GLYPH_SIZE // 3, int(_GLYPH_SIZE * 1.5)), font, scale, 255, thick, cv2.LINE_AA)
    x, y, w, h = cv2.boundingRect(canvas)
    if w == 0 or h == 0:
        return np.zeros((height, 1), np.float32)
    glyph = canvas[y : y + h, x : x + w]
    gh, gw = glyph.shape
    out_w = max(1, min(width, round(gw * height / gh * 0.78)))  # narrowed like the plate font
    small = cv2.resize(glyph, (out_w, height), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


def _line_width(text: str, ch: float, char_gap: float) -> float:
    cw = _CHAR_W * ch
    width = 0.0
    for i, c in enumerate(text):
        width += _SPACE_GAP * ch if c == " " else cw
        if i + 1 < len(text) and c != " " and text[i + 1] != " ":
            width += char_gap * ch
    return width


def _draw_line(ink: np.ndarray, text: str, *, cx: float, top: int, ch: int, style: _Style,
               jitter: np.ndarray) -> None:
    """Accumulate the ink mask of one line of text centred at ``cx``."""
    cw = _CHAR_W * ch
    char_gap = style.char_gap
    x = cx - _line_width(text, ch, char_gap) / 2.0
    for i, c in enumerate(text):
        if c == " ":
            x += _SPACE_GAP * ch
            continue
        g = _glyph(c, ch, max(1, round(cw)), style.stroke, style.font)
        gh, gw = g.shape
        x0 = round(x + (cw - gw) / 2.0 + jitter[i, 0])
        y0 = top + round(jitter[i, 1])
        y0c, x0c = max(0, y0), max(0, x0)
        y1c, x1c = min(ink.shape[0], y0 + gh), min(ink.shape[1], x0 + gw)
        if y1c > y0c and x1c > x0c:
            region = ink[y0c:y1c, x0c:x1c]
            np.maximum(region, g[y0c - y0 : y1c - y0, x0c - x0 : x1c - x0], out=region)
        x += cw + (char_gap * ch if i + 1 < len(text) and text[i + 1] != " " else 0.0)


def render_plate(
    text: str,
    *,
    rear: bool = False,
    char_height: int = 40,
    two_line: bool = False,
    rng: np.random.Generator | None = None,
) -> Image:
    """Draw a UK plate (BGR uint8) showing ``text`` as given; a space leaves the conventional gap.

    Front plates are black on white, rear plates black on yellow, with a thin border.
    ``two_line`` puts the part before the first space on the top line (motorcycle style).
    With ``rng`` the stroke, spacing, glyph positions and colours vary slightly; without it the
    output is deterministic.
    """
    if char_height < 8:
        raise ValueError(f"char_height {char_height} is too small to draw a plate (minimum 8)")
    text = text.upper().strip()
    stroke, char_gap, font = _STROKE, _CHAR_GAP, cv2.FONT_HERSHEY_SIMPLEX
    bg = np.array(_YELLOW if rear else _WHITE, np.float32)
    ink_colour = np.array(_INK, np.float32)
    if rng is not None:
        stroke *= rng.uniform(0.8, 1.2)
        char_gap *= rng.uniform(0.7, 1.4)
        font = int(rng.choice([cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX]))
        bg = np.clip(bg + rng.uniform(-25, 5, 3), 0, 255).astype(np.float32)
        ink_colour = np.clip(ink_colour + rng.uniform(-20, 30), 0, 255).astype(np.float32)
    style = _Style(stroke=stroke, char_gap=char_gap, font=font)
    n = max(1, len(text))
    jitter = np.zeros((n, 2)) if rng is None else rng.normal(0.0, 0.02 * char_height, (n, 2))

    if two_line:
        top_text, _, bottom_text = text.partition(" ")
        if not bottom_text:
            half = (len(top_text) + 1) // 2
            top_text, bottom_text = top_text[:half], top_text[half:]
        plate_h = round(char_height / _TWO_LINE_CHAR_H)
        plate_w = round(plate_h * _TWO_LINE_ASPECT)
        needed = max(_line_width(top_text, char_height, char_gap), _line_width(bottom_text, char_height, char_gap))
        plate_w = max(plate_w, round(needed + char_height * 0.6))
        ink = np.zeros((plate_h, plate_w), np.float32)
        line_gap = round(_TWO_LINE_LINE_GAP * char_height)
        top = (plate_h - 2 * char_height - line_gap) // 2
        _draw_line(ink, top_text, cx=plate_w / 2.0, top=top, ch=char_height, style=style, jitter=jitter)
        _draw_line(ink, bottom_text, cx=plate_w / 2.0, top=top + char_height + line_gap, ch=char_height,
                   style=style, jitter=jitter[len(top_text):])
    else:
        plate_h = round(char_height * _PLATE_H_PER_CHAR)
        plate_w = round(plate_h * _PLATE_ASPECT)
        plate_w = max(plate_w, round(_line_width(text, char_height, char_gap) + char_height * 0.6))
        ink = np.zeros((plate_h, plate_w), np.float32)
        _draw_line(ink, text, cx=plate_w / 2.0, top=(plate_h - char_height) // 2, ch=char_height, style=style,
                   jitter=jitter)

    image = bg[None, None, :] * (1.0 - ink[..., None]) + ink_colour[None, None, :] * ink[..., None]
    out: Image = np.clip(image, 0, 255).astype(np.uint8)
    border = max(1, round(char_height / 40))
    cv2.rectangle(out, (0, 0), (plate_w - 1, plate_h - 1), tuple(int(v) for v in ink_colour), border)
    return out


def _letters(rng: np.random.Generator, alphabet: str, n: int) -> str:
    return "".join(alphabet[int(i)] for i in rng.integers(0, len(alphabet), n))


def _number(rng: np.random.Generator, max_digits: int) -> str:
    digits = int(rng.integers(1, max_digits + 1))
    return str(int(rng.integers(10 ** (digits - 1), 10**digits)))


def random_registration(rng: np.random.Generator, *, on: dt.date) -> str:
    """A valid UK registration in display form (with its conventional space), as of ``on``.

    About 80% current format (an age identifier already issued on ``on``), the rest prefix,
    suffix, dateless and Northern Ireland marks. ``.replace(" ", "")`` gives the stored form.
    """
    ages = uk_age_identifiers(on)
    kind = rng.random()
    if ages and kind < 0.8:
        age = ages[int(rng.integers(0, len(ages)))]
        return f"{_letters(rng, _MEMORY_TAG, 2)}{age} {_letters(rng, _RANDOM_LETTERS, 3)}"
    if kind < 0.87:
        return f"{_letters(rng, _PREFIX_YEAR, 1)}{_number(rng, 3)} {_letters(rng, _PREFIX_SERIAL, 3)}"
    if kind < 0.92:
        return f"{_letters(rng, _PREFIX_SERIAL, 3)} {_number(rng, 3)}{_letters(rng, _SUFFIX_YEAR, 1)}"
    if kind < 0.96:
        letters = _letters(rng, _PREFIX_SERIAL, int(rng.integers(1, 4)))
        number = _number(rng, min(4, 6 - len(letters)))
        return f"{letters} {number}" if rng.random() < 0.5 else f"{number} {letters}"
    county = _NI_COUNTY[int(rng.integers(0, len(_NI_COUNTY)))]
    return f"{_letters(rng, _RANDOM_LETTERS, 1)}{county} {_number(rng, 4)}"
