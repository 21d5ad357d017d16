"""The plate reader on LiteRT: a small fully convolutional CTC model over a grey plate crop.

The model (``tools/train_plate_ocr.py``) takes one grey crop of height x width (from the
manifest's ``input_size``) normalised per crop, and gives per-column probabilities over
``ALPHABET`` plus a final CTC blank. Two-line plates are cut into their top and bottom halves,
placed side by side, then read as one line. A crop squarer than ``TWO_LINE_BELOW`` is taken for
a two-line plate, one wider than ``ONE_LINE_ABOVE`` for a one-line plate; in between (a tilted
one-line plate in a loose box looks as square as a two-line one) both readings are made and the
more confident one is kept. With a :class:`edge.read.lattice.FormatDecoder`, each reading is the likeliest
that fits an allowed format, where the frames support one (greedy otherwise).
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
import numpy.typing as npt

from edge.domain import Image, PlateText
from edge.errors import ModelError
from edge.read.charsets import ALPHABET
from edge.read.lattice import FIT_MIN_RATIO, FormatDecoder, greedy_options
from edge.runtime import TfliteModel

log = logging.getLogger(__name__)
BLANK = len(ALPHABET)
TWO_LINE_BELOW = 1.5  # width / height of a crop below which it is read as a two-line plate only
ONE_LINE_ABOVE = 2.6  # ... above which as a one-line plate only
_TWO_LINE_OVERLAP = 0.06  # each half keeps this fraction of the other half, so no line is cut


def to_grey(crop: Image) -> npt.NDArray[np.uint8]:
    if crop.ndim == 2:
        return crop
    if crop.ndim == 3 and crop.shape[2] == 3:
        return np.asarray(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
    raise ValueError(f"plate crop has shape {crop.shape}; expected (h, w) grey or (h, w, 3) BGR")


def unfold_two_line(grey: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The top and bottom halves of a two-line plate crop side by side (each keeps a little overlap)."""
    h = grey.shape[0]
    cut = max(1, round(h * (0.5 + _TWO_LINE_OVERLAP)))
    return np.hstack([grey[:cut], grey[h - cut :]])


def layouts_to_try(crop: Image) -> tuple[bool, ...]:
    """Whether to read the crop as two-line (True), one-line (False), or both, from its aspect ratio."""
    h, w = crop.shape[:2]
    aspect = w / max(h, 1)
    if aspect < TWO_LINE_BELOW:
        return (True,)
    if aspect > ONE_LINE_ABOVE:
        return (False,)
    return (False, True)


def preprocess(crop: Image, height: int, width: int, *, two_line: bool) -> npt.NDArray[np.float32]:
    """A crop as the model sees it: grey, unfolded if two-line, resized, zero mean and unit spread."""
    if crop.size == 0 or crop.shape[0] < 2:
        raise ValueError(f"plate crop is empty (shape {crop.shape})")
    grey = to_grey(crop)
    if two_line:
        grey = unfold_two_line(grey)
    shrinking = grey.shape[0] > height or grey.shape[1] > width
    resized = cv2.resize(grey, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    x = resized.astype(np.float32)
    x -= float(x.mean())
    x /= max(float(x.std()), 8.0)
    return x


def ctc_greedy(probs: npt.NDArray[np.float32], min_ratio: float = FIT_MIN_RATIO) -> PlateText:
    """Greedy CTC decode of (time, classes) probabilities; a character's confidence is its best frame; each
    character's options as :func:`edge.read.lattice.options_at` gives them."""
    if probs.ndim != 2 or probs.shape[1] != len(ALPHABET) + 1:
        raise ValueError(f"CTC output has shape {probs.shape}; expected (time, {len(ALPHABET) + 1})")
    best = probs.argmax(axis=1)
    chars: list[str] = []
    confs: list[float] = []
    spans: list[list[int]] = []
    previous = BLANK
    for t, k in enumerate(best.tolist()):
        if k not in (BLANK, previous):
            chars.append(ALPHABET[k])
            confs.append(float(probs[t, k]))
            spans.append([t])
        elif k != BLANK:
            confs[-1] = max(confs[-1], float(probs[t, k]))
            spans[-1].append(t)
        previous = k
    options = greedy_options(to_lattice(probs), spans, min_ratio)
    return PlateText(text="".join(chars), char_confidences=tuple(confs), char_options=options)


class TflitePlateReader:
    """``PlateReader`` backed by the OCR ``.tflite`` model (input (1, H, W, 1), output (1, T, 37))."""

    def __init__(
        self, model: TfliteModel, decoder: FormatDecoder | None = None, min_ratio: float = FIT_MIN_RATIO
    ) -> None:
        shape = model.input_shape
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 1:
            raise ModelError(
                f"OCR model {str(model.path)!r} has input shape {list(shape)}; expected [1, height, width, 1]"
            )
        self._model = model
        self._decoder = decoder
        self._min_ratio = min_ratio  # read.fit_min_ratio: see edge.read.lattice
        self._height, self._width = int(shape[1]), int(shape[2])

    def read(self, crop: Image) -> PlateText:
        """Text and per-character confidences; an empty or degenerate crop reads as nothing."""
        if crop.size == 0 or min(crop.shape[:2]) < 2:
            log.debug("plate crop of shape %s is too small to read", crop.shape)
            return PlateText(text="", char_confidences=())
        readings = [self._read_as(crop, two_line=t) for t in layouts_to_try(crop)]
        if len(readings) > 1:
            log.debug("crop %s read both ways: %s", crop.shape[:2], [(r.text, r.confidence) for r in readings])
        return max(readings, key=lambda r: (r.confidence, len(r.text)))

    def _read_as(self, crop: Image, *, two_line: bool) -> PlateText:
        tensor = preprocess(crop, self._height, self._width, two_line=two_line)[None, :, :, None]
        probs = np.asarray(self._model.run(tensor)[0], dtype=np.float32)
        if probs.ndim == 3:
            probs = probs[0]
        greedy = ctc_greedy(probs, self._min_ratio)
        if self._decoder is not None:
            fitted = self._decoder.decode(to_lattice(probs))
            if fitted is not None:
                return fitted.as_plate_text(unconstrained=greedy.text)
        return greedy


def to_lattice(probs: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(time, ALPHABET + blank) as a :mod:`edge.read.lattice` lattice: blank first, no separator column."""
    if probs.ndim != 2 or probs.shape[1] != len(ALPHABET) + 1:
        raise ValueError(f"CTC output has shape {probs.shape}; expected (time, {len(ALPHABET) + 1})")
    out = np.zeros((probs.shape[0], len(ALPHABET) + 2), np.float32)
    out[:, 0] = probs[:, BLANK]
    out[:, 1 : len(ALPHABET) + 1] = probs[:, : len(ALPHABET)]
    return out
