"""Format-guided decoding: the best reading of a plate that fits an allowed format, from the OCR's frames.

A CTC recogniser gives, for each column (frame) of the crop, probabilities over the blank, the plate
characters and a separator. Greedy decoding takes the likeliest class of each frame, so one unsure frame
drops a character (a faint first letter), adds one (a sticker or an emblem read as ``8``), or picks the
wrong one of a pair the plate font draws alike (``O``/``0``). The formats say what a plate can be: this
module finds, for every layout of the allowed formats at once, the likeliest path through the frames that
spells a mark of that layout (a Viterbi pass over the CTC states), and keeps the best layout when its
path is nearly as likely as the greedy one.

The *cost* of a layout is how much less likely its best path is than the greedy path, in nats. A path may
start and end on frames read as *junk* (a country band's letters, a bolt, the frame's print); each such
frame with a character on it costs ``log(1 / junk_weight)``. A reading whose best layout costs more than
``max_cost`` is left as the greedy read (and the format check flags it), so nothing is forced into a format
the frames do not support.

Characters the plate font draws alike (``O``/``0``, ``I``/``1``) lend each other half their probability:
a layout that needs the other twin in a position pays little for it, so the format decides by position
where only one twin fits, and the model's own preference decides where either would (a read that fits
two countries' layouts). Exact ties go to the earlier format (the order of ``read.formats``).

Columns of a lattice: 0 the CTC blank, 1..36 :data:`ALPHABET`, 37 a separator.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.domain import PlateText
from edge.read.formats import FormatSet, RegistrationFormat
from edge.read.ocr import ALPHABET

COLUMNS = 2 + len(ALPHABET)  # blank, the alphabet, separator
BLANK = 0
SEPARATOR = COLUMNS - 1
TWINS = {"O": "0", "0": "O", "I": "1", "1": "I"}  # drawn alike in the UK plate font

TWIN_SHARE = 0.5  # a character's twin adds this share of its probability to the character's own
JUNK_WEIGHT = 0.01  # a frame read as a character outside the mark counts at this share of its probability
MAX_COST = 1.5  # nats: a format reading at most this much less likely than the greedy read is taken

_NEG = -1e9
_FLOOR = 1e-9
_EVER = dt.date.max  # the reader does not know the capture date; the format check tests the age later


def _twin_column() -> npt.NDArray[np.intp]:
    """For each lattice column, the column of its twin character (O/0, I/1), else its own. Read-only."""
    twin = np.arange(COLUMNS)
    for a, b in TWINS.items():
        twin[ALPHABET.index(a) + 1] = ALPHABET.index(b) + 1
    twin.flags.writeable = False
    return twin


TWIN_COLUMN = _twin_column()
_TWIN_WEIGHT = (np.arange(COLUMNS) != TWIN_COLUMN).astype(np.float32) * TWIN_SHARE


@dataclass(frozen=True, slots=True)
class _Layout:
    slots: tuple[str, ...]
    fmt: RegistrationFormat


@dataclass(frozen=True, slots=True)
class Reading:
    """A format reading: its text, each character's confidence, and its cost (nats below the greedy read)."""

    text: str
    char_confidences: tuple[float, ...]
    cost: float

    def as_plate_text(self) -> PlateText:
        return PlateText(self.text, self.char_confidences)


class FormatDecoder:
    """Decodes a lattice (time, :data:`COLUMNS`) to the best reading that fits one of ``formats``' layouts."""

    def __init__(
        self, formats: FormatSet, *, junk_weight: float = JUNK_WEIGHT, max_cost: float = MAX_COST
    ) -> None:
        if not 0.0 < junk_weight <= 1.0:
            raise ValueError(f"junk_weight must be in (0, 1], got {junk_weight!r}")
        if max_cost < 0.0:
            raise ValueError(f"max_cost must be >= 0, got {max_cost!r}")
        seen: set[tuple[str, ...]] = set()
        layouts: list[_Layout] = []
        for fmt in formats.formats:
            for slots in (lay.slots for lay in fmt.layouts):
                if slots and slots not in seen and all(set(s) <= set(ALPHABET) for s in slots):
                    seen.add(slots)
                    layouts.append(_Layout(slots, fmt))
        self._layouts = tuple(layouts)
        self._junk_log = float(np.log(junk_weight))
        self.max_cost = max_cost
        lmax = max((len(lay.slots) for lay in layouts), default=1)
        self._lengths = np.array([len(lay.slots) for lay in layouts], np.intp)
        # allowed[n, k, c]: character c (of ALPHABET) may stand in slot k of layout n
        self._allowed = np.zeros((len(layouts), lmax, len(ALPHABET)), bool)
        for n, lay in enumerate(layouts):
            for k, chars in enumerate(lay.slots):
                self._allowed[n, k, [ALPHABET.index(c) for c in chars]] = True

    def decode(self, lattice: npt.NDArray[np.float32]) -> Reading | None:
        """The best reading within ``max_cost`` of the greedy one whose format's date-free rules hold; None
        if there is none (or no layout at all)."""
        if lattice.ndim != 2 or lattice.shape[1] != COLUMNS:
            raise ValueError(f"lattice has shape {lattice.shape}; expected (time, {COLUMNS})")
        if not self._layouts or lattice.shape[0] == 0:
            return None
        sure = _sure(lattice)[:, 1:SEPARATOR]  # (time, 36)
        quiet = np.log(np.maximum(np.maximum(lattice[:, BLANK], lattice[:, SEPARATOR]), _FLOOR))
        char_log = np.log(np.maximum(sure, _FLOOR))
        best_char = char_log.max(axis=1)
        frame = np.maximum(quiet, best_char)  # the greedy path's score of each frame
        greedy = float(frame.sum())
        # A character whose share of every frame's greedy score is below exp(-max_cost) cannot be on a path
        # within max_cost: leave it out, and every layout that then has a slot with nothing left.
        plausible = np.flatnonzero((char_log - frame[:, None] >= -self.max_cost).any(axis=0))
        allowed = self._allowed[:, :, plausible]
        padding = np.arange(allowed.shape[1]) >= self._lengths[:, None]
        fits = np.flatnonzero((allowed.any(axis=2) | padding).all(axis=1))
        if fits.size == 0:
            return None
        in_subset = np.isin(_TWIN_CHAR[plausible], plausible)
        twin = np.where(in_subset, np.searchsorted(plausible, _TWIN_CHAR[plausible]), -1)
        scores = _Scores(char_log[:, plausible], quiet, np.maximum(quiet, best_char + self._junk_log))
        paths = _Viterbi(scores, _Slots(allowed[fits], self._lengths[fits], twin))
        order = sorted(range(fits.size), key=lambda i: (-round(float(paths.scores[i]), 6), int(fits[i])))
        for i in order:
            cost = greedy - float(paths.scores[i])
            if cost > self.max_cost:
                return None
            chars = [(int(plausible[c]), ts) for c, ts in paths.spell(i)]
            text = "".join(ALPHABET[c] for c, _ in chars)
            if self._layouts[fits[i]].fmt.accepts(text, _EVER):
                # a character's confidence counts its twin whole, as the greedy decoder's does (the font
                # draws them alike); the half share above only ranks the layouts
                whole = lattice[:, 1:SEPARATOR] + lattice[:, TWIN_COLUMN[1:SEPARATOR]] * (_TWIN_WEIGHT[1:SEPARATOR] > 0)
                confs = tuple(float(min(1.0, whole[ts, c].max())) for c, ts in chars)
                return Reading(text, confs, max(cost, 0.0))
        return None


def _sure(lattice: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Each character's probability plus a share of its twin's (the font draws them alike)."""
    return np.asarray(lattice + lattice[:, TWIN_COLUMN] * _TWIN_WEIGHT, np.float32)


_TWIN_CHAR = TWIN_COLUMN[1:SEPARATOR] - 1  # the twin of each ALPHABET index, as an ALPHABET index


@dataclass(frozen=True, slots=True)
class _Scores:
    """Log-scores per frame: of each character (time, chars), of a blank or separator, of a junk frame."""

    chars: npt.NDArray[np.float32]
    quiet: npt.NDArray[np.float32]
    junk: npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class _Slots:
    """The layouts: ``allowed[n, k, c]`` character c may stand in slot k of layout n; each layout's length;
    each character's twin (-1: none)."""

    allowed: npt.NDArray[np.bool_]
    lengths: npt.NDArray[np.intp]
    twin: npt.NDArray[np.intp]


class _Viterbi:
    """Best paths of every layout at once, with back-pointers to spell any of them.

    States of a layout of L slots: leading junk; for each slot k the blank before it and one state per
    character (those the slot does not allow are never reached); the blank after the last slot; trailing
    junk. A character state is entered from itself, from its own blank, from the previous slot's character
    states (not from the same character or its twin: those need a blank between, as in CTC), or, for the
    first slot, from leading junk.
    """

    def __init__(self, scores: _Scores, slots: _Slots) -> None:
        t_len, n_chars = scores.chars.shape
        n, lmax, _ = slots.allowed.shape
        self._rows = np.arange(n)
        self._slots = slots
        self._scores = scores
        self._mask = np.where(slots.allowed, 0.0, _NEG)
        self._c_src = np.zeros((t_len, n, lmax, n_chars), np.int8)  # 0 stay, 1 own blank, 2 previous char/junk
        self._c_prev = np.zeros((t_len, n, lmax, n_chars), np.int8)  # which previous character
        self._b_src = np.zeros((t_len, n, lmax + 1), np.bool_)  # False stay, True from the character before
        self._b_prev = np.zeros((t_len, n, lmax + 1), np.int8)
        self._j_src = np.zeros((t_len, n), np.int8)  # trailing junk: 0 stay, 1 last character, 2 last blank
        self._j_prev = np.zeros((t_len, n), np.int8)
        self._lead = float(scores.junk[0])
        self._blank = np.full((n, lmax + 1), _NEG)
        self._blank[:, 0] = scores.quiet[0]
        self._char = np.full((n, lmax, n_chars), _NEG)
        self._char[:, 0] = scores.chars[0] + self._mask[:, 0]
        self._tail = np.full(n, _NEG)
        for t in range(1, t_len):
            self._step(t)
        last, lengths = slots.lengths - 1, slots.lengths
        self._end_char = self._char.max(axis=2)[self._rows, last]
        self._end_char_idx = self._char.argmax(axis=2)[self._rows, last]
        self._end_blank = self._blank[self._rows, lengths]
        self.scores = np.maximum(np.maximum(self._end_char, self._end_blank), self._tail)

    def _step(self, t: int) -> None:
        char, blank, lead, sc = self._char, self._blank, self._lead, self._scores
        best_val, best_idx = char.max(axis=2), char.argmax(axis=2)  # (n, lmax)
        prev_val, prev_idx = _best_other(char[:, :-1], self._slots.twin)  # from slot k-1 into slot k
        from_prev = np.empty_like(char)
        from_prev[:, 0] = lead
        from_prev[:, 1:] = prev_val
        own_blank = blank[:, :-1, None]
        src = np.where(char >= own_blank, 0, 1)
        val = np.maximum(char, own_blank)
        self._c_src[t] = np.where(from_prev > val, 2, src)
        self._c_prev[t, :, 1:] = prev_idx
        self._char = np.maximum(val, from_prev) + sc.chars[t][None, None, :] + self._mask
        into_blank = np.full(blank.shape, _NEG)
        into_blank[:, 0] = lead
        into_blank[:, 1:] = best_val
        self._b_src[t] = into_blank > blank
        self._b_prev[t, :, 1:] = best_idx
        self._blank = np.maximum(blank, into_blank) + sc.quiet[t]
        last, lengths = self._slots.lengths - 1, self._slots.lengths
        j_char, j_blank = best_val[self._rows, last], blank[self._rows, lengths]
        j_best = np.maximum(j_char, j_blank)
        self._j_src[t] = np.where(self._tail >= j_best, 0, np.where(j_char >= j_blank, 1, 2))
        self._j_prev[t] = best_idx[self._rows, last]
        self._tail = np.maximum(self._tail, j_best) + sc.junk[t]
        self._lead = lead + float(sc.junk[t])

    def spell(self, n: int) -> list[tuple[int, list[int]]]:
        """Layout ``n``'s best path: for each slot, its character (an index of the scored characters) and the
        frames it holds."""
        length = int(self._slots.lengths[n])
        frames: list[list[int]] = [[] for _ in range(length)]
        picked = [0] * length
        ends = (self._end_char[n], self._end_blank[n], self._tail[n])
        finals = [("c", length - 1, int(self._end_char_idx[n])), ("b", length, 0), ("j", length, 0)]
        state = finals[int(np.argmax(ends))]
        for t in range(self._c_src.shape[0] - 1, -1, -1):
            kind, k, c = state
            if kind == "c":
                frames[k].append(t)
                picked[k] = c
            if kind == "lead" or t == 0:
                break
            state = self._back(state, t, n, length)
        return [(picked[k], sorted(frames[k])) for k in range(length)]

    def _back(self, state: tuple[str, int, int], t: int, n: int, length: int) -> tuple[str, int, int]:
        """The state the best path was in at frame ``t - 1``, given it is in ``state`` at ``t``."""
        kind, k, c = state
        if kind == "c":
            src = int(self._c_src[t, n, k, c])
            if src == 1:
                return ("b", k, 0)
            if src == 2:
                return ("c", k - 1, int(self._c_prev[t, n, k, c])) if k > 0 else ("lead", 0, 0)
        elif kind == "b" and self._b_src[t, n, k]:
            return ("c", k - 1, int(self._b_prev[t, n, k])) if k > 0 else ("lead", 0, 0)
        elif kind == "j":
            src = int(self._j_src[t, n])
            if src == 1:
                return ("c", length - 1, int(self._j_prev[t, n]))
            if src == 2:
                return ("b", length, 0)
        return state


def _best_other(
    char: npt.NDArray[np.float64], twin: npt.NDArray[np.intp]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]:
    """For each character c, the best state of the previous slot that is neither c nor its twin."""
    n_chars = char.shape[-1]
    top = np.argsort(-char, axis=-1, kind="stable")[..., :3]  # c and its twin rule out at most two of these
    top_val = np.take_along_axis(char, top, axis=-1)
    c = np.arange(n_chars)
    best_val = np.full(char.shape, _NEG)
    best_idx = np.zeros(char.shape, np.intp)
    for j in range(top.shape[-1] - 1, -1, -1):  # the first allowed of the three wins
        ok = (top[..., j, None] != c) & (top[..., j, None] != twin)
        best_val = np.where(ok, top_val[..., j, None], best_val)
        best_idx = np.where(ok, top[..., j, None], best_idx)
    return best_val, best_idx
