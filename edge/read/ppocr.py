"""The plate reader on PP-OCR's recogniser, converted to LiteRT (``tools/convert_ppocr_rec.py``).

PP-OCRv6's recogniser was trained on real photographed text, so it reads real plates far better than a
model trained on drawn ones. The converted model keeps only the plate classes
(:data:`edge.read.charsets.PPOCR_PLATE_CLASSES`): input 1x48xWx3, BGR scaled to -1..1, the crop resized
to the model height keeping its aspect (squeezed when wider than W) and padded on the right with 0;
output per column probabilities over the CTC blank and those classes. A lower-case letter's
probability is added to its capital's (``l`` to ``I``), separators (``- . : ·`` and space) are
dropped. Two-line plates are unfolded into one line first: a crop squarer than ``TWO_LINE_BELOW`` (width /
height, after the side trim) is read unfolded, one wider than ``ONE_LINE_FROM`` as it is, and one in between
both ways (a one-line plate cut loosely above and below, as a tight 2:1 crop of a Brazilian or a US plate, is
as square as a two-line one; unfolded, its halves read as two rows of junk), keeping the better read.

With a :class:`edge.read.lattice.FormatDecoder` the frames are decoded to the likeliest reading that fits
an allowed format (see that module); a crop whose frames support none is decoded greedily, as without.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt

from edge.domain import Image, PlateText
from edge.errors import ModelError
from edge.read.charsets import ALPHABET, PPOCR_PLATE_CLASSES
from edge.read.lattice import FIT_MIN_RATIO, TWIN_COLUMN, FormatDecoder, greedy_options
from edge.read.ocr import unfold_two_line
from edge.runtime import TfliteModel

_BLANK = 0
TWO_LINE_BELOW = 1.5  # width / height (after the side trim) below which a crop is read as a two-line plate only
ONE_LINE_FROM = 2.0  # ... from which as a one-line plate only; in between both ways, and the better read is kept

EDGE_CHAR_MIN = 0.5  # a first or last character less sure than this is dropped
SIDE_TRIM = 0.05  # share of the crop's width taken off each side before reading
RETRY_BELOW = 0.8  # a plate-like read with a character less sure than this is read again, cut tighter
RETRY_TRIM = 0.1


def preprocess(
    crop: Image, height: int, width: int, *, side_trim: float = SIDE_TRIM, two_line: bool | None = None,
) -> npt.NDArray[np.float32]:
    """A BGR crop as the model sees it: (height, width, 3), -1..1, aspect kept, right-padded with 0.

    PP-OCR's recogniser was trained on text lines cut with little padding, while the pipeline adds a
    margin of 12% of the plate on each side; ``side_trim`` takes part of it off again. ``two_line``: unfold
    the crop's top and bottom halves side by side (None: when it is squarer than ``ONE_LINE_FROM``).
    """
    crop = _trimmed(crop, side_trim)
    if crop.ndim == 2:
        crop = np.asarray(cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    if crop.ndim != 3 or crop.shape[2] != 3:
        raise ValueError(f"plate crop has shape {crop.shape}; expected (h, w, 3) BGR or (h, w) grey")
    if two_line is None:
        two_line = True in layouts_to_try(crop, 0.0)
    unfolded = unfold_two_line(crop) if two_line and crop.shape[0] >= 4 else crop
    h, w = unfolded.shape[:2]
    new_w = max(1, min(width, math.ceil(height * w / h)))
    resized = cv2.resize(unfolded, (new_w, height), interpolation=cv2.INTER_AREA if h > height else cv2.INTER_LINEAR)
    out = np.zeros((height, width, 3), np.float32)
    out[:, :new_w] = resized.astype(np.float32) / 127.5 - 1.0
    return out


def _trimmed(crop: Image, side_trim: float) -> Image:
    """The crop with ``side_trim`` of its width taken off each side (as it is when that leaves under 8 columns)."""
    if crop.size == 0:
        raise ValueError(f"plate crop is empty (shape {crop.shape})")
    trim = round(crop.shape[1] * side_trim)
    return crop[:, trim : crop.shape[1] - trim] if crop.shape[1] - 2 * trim >= 8 else crop


def layouts_to_try(crop: Image, side_trim: float = SIDE_TRIM) -> tuple[bool, ...]:
    """Whether to read the crop unfolded as a two-line plate (True), as one line (False), or both (one line
    first), from its aspect once ``side_trim`` is taken off its sides."""
    h, w = _trimmed(crop, side_trim).shape[:2]
    aspect = w / max(h, 1)
    if aspect < TWO_LINE_BELOW:
        return (True,)
    if aspect >= ONE_LINE_FROM:
        return (False,)
    return (False, True)


_SEPARATOR = len(ALPHABET) + 1  # merged class of everything that is not a plate character
_LOOKS_LIKE = {"l": "I"}  # lower-case letters read as another capital than their own


@lru_cache(maxsize=8)
def merge_matrix(classes: str = PPOCR_PLATE_CLASSES) -> npt.NDArray[np.float32]:
    """(1 + len(classes), 2 + 36): adds each model class's probability to the plate character it shows.

    Column 0 is the CTC blank, then ``ALPHABET`` (:mod:`edge.read.ocr`'s), then one column for separators
    (dropped). Cached, so one array is shared by every call: read-only, never to be written to.
    """
    m = np.zeros((len(classes) + 1, len(ALPHABET) + 2), np.float32)
    m[0, 0] = 1.0
    for k, c in enumerate(classes, start=1):
        target = _LOOKS_LIKE.get(c, c.upper())
        m[k, ALPHABET.index(target) + 1 if target in ALPHABET else _SEPARATOR] = 1.0
    m.flags.writeable = False
    return m


_HAS_TWIN = np.arange(TWIN_COLUMN.size) != TWIN_COLUMN


def ctc_decode(probs: npt.NDArray[np.float32], classes: str = PPOCR_PLATE_CLASSES) -> PlateText:
    """Greedy CTC over (time, 1 + len(classes)) after merging case variants; separators are dropped.

    A character's confidence is its best frame's (merged) probability, plus its twin's for O/0 and I/1,
    which the plate font draws alike (the format check decides between them by position). Unsure
    characters at either end (below ``EDGE_CHAR_MIN``) are dropped: at a plate's ends they are most
    often the country letters of its band, a bolt or the frame's print.
    """
    return greedy_decode(lattice(probs, classes))


def greedy_decode(merged: npt.NDArray[np.float32], min_ratio: float = FIT_MIN_RATIO) -> PlateText:
    """:func:`ctc_decode` of a lattice (the model's output already merged by :func:`lattice`), with each
    character's options (:func:`edge.read.lattice.options_at`, pruned by ``min_ratio``)."""
    best = merged.argmax(axis=1)
    sure = merged + merged[:, TWIN_COLUMN] * _HAS_TWIN
    chars: list[str] = []
    confs: list[float] = []
    spans: list[list[int]] = []
    previous = _BLANK
    for t, k in enumerate(best.tolist()):
        if k not in (_BLANK, previous):
            chars.append(ALPHABET[k - 1] if k != _SEPARATOR else " ")
            confs.append(float(sure[t, k]))
            spans.append([t])
        elif k != _BLANK:
            confs[-1] = max(confs[-1], float(sure[t, k]))
            spans[-1].append(t)
        previous = k
    kept = [(c, p, ts) for c, p, ts in zip(chars, confs, spans, strict=True) if c != " "]
    while kept and kept[0][1] < EDGE_CHAR_MIN:  # a band's country letters, a bolt, a frame's print
        kept.pop(0)
    while kept and kept[-1][1] < EDGE_CHAR_MIN:
        kept.pop()
    return PlateText(text="".join(c for c, _, _ in kept), char_confidences=tuple(p for _, p, _ in kept),
                     char_options=greedy_options(merged, [ts for _, _, ts in kept], min_ratio))


class PpocrPlateReader:
    """``PlateReader`` backed by the converted PP-OCR recogniser (input (1, 48, W, 3), output (1, W/8, C))."""

    def __init__(
        self, model: TfliteModel, classes: str = PPOCR_PLATE_CLASSES, decoder: FormatDecoder | None = None,
        min_ratio: float = FIT_MIN_RATIO,
    ) -> None:
        """``min_ratio``: a character the model scored below this share of its sure best at a position is no
        option there (``read.fit_min_ratio``; the decoder has its own, the same from the config)."""
        shape = model.input_shape
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
            raise ModelError(
                f"PP-OCR model {str(model.path)!r} has input shape {list(shape)}; expected [1, height, width, 3]"
            )
        self._model = model
        self._classes = classes
        self._decoder = decoder
        self._min_ratio = min_ratio
        self._height, self._width = int(shape[1]), int(shape[2])

    def read(self, crop: Image) -> PlateText:
        """Read the crop (both ways, as one line and unfolded, where its aspect leaves that open:
        :func:`layouts_to_try`); a plate-like read (one that fits a format, or 4-9 mostly sure characters) with
        an unsure character is read a second time with the sides cut tighter. Of all reads the better is kept:
        one that fits a format over one that does not, then the surer."""
        reads = [(*self._read(crop, SIDE_TRIM, two_line), two_line) for two_line in layouts_to_try(crop)]
        first, fitted, two_line = max(reads, key=lambda r: _rank(r[0], r[1]))
        confs = first.char_confidences
        plate_like = fitted or (4 <= len(confs) <= 9 and float(np.median(confs)) >= RETRY_BELOW)
        if not plate_like or first.confidence >= RETRY_BELOW:
            return first
        second, second_fitted = self._read(crop, RETRY_TRIM, two_line)
        return max(((first, fitted), (second, second_fitted)), key=lambda r: _rank(*r))[0]

    def _read(self, crop: Image, side_trim: float, two_line: bool) -> tuple[PlateText, bool]:
        """The read of one cut of the crop, and whether it came from a format (False: greedy)."""
        tensor = preprocess(crop, self._height, self._width, side_trim=side_trim, two_line=two_line)[None]
        probs = np.asarray(self._model.run(tensor)[0], dtype=np.float32)
        if probs.ndim == 3:
            probs = probs[0]
        merged = lattice(probs, self._classes)
        greedy = greedy_decode(merged, self._min_ratio)
        fitted = None if self._decoder is None else self._decoder.decode(merged)
        if fitted is not None:
            return fitted.as_plate_text(unconstrained=greedy.text), True
        return greedy, False


def _rank(text: PlateText, fitted: bool) -> tuple[bool, float, int]:
    """How good a read is (``fitted``: it fits a format): a fit first, then the surer, then the longer."""
    return fitted, text.confidence, len(text.text)


def lattice(probs: npt.NDArray[np.float32], classes: str = PPOCR_PLATE_CLASSES) -> npt.NDArray[np.float32]:
    """The model's (time, 1 + len(classes)) output as a :mod:`edge.read.lattice` lattice (case folded)."""
    if probs.ndim != 2 or probs.shape[1] != len(classes) + 1:
        raise ValueError(f"recogniser output has shape {probs.shape}; expected (time, {len(classes) + 1})")
    return np.asarray(probs @ merge_matrix(classes), np.float32)
