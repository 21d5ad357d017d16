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

A fit never overrules strong visual evidence: where the model is sure of a character (at least ``FIT_SURE``
at its frames), a fitted character it scored below ``min_ratio`` of that (``read.fit_min_ratio``, default
1/20) refuses the layout, and the next is tried. A fitted character's confidence is its own probability at
its frames, so it already carries the penalty: the best character's times the ratio. Where the model's best
there is the fitted one's look-alike of the other kind (the format's ``confusables``: a 5 where the layout
needs an S, as a blurred or bloomed S at night looks), it counts its own probability plus ``SWAP_SHARE`` of
the best's, never more than the best's: the same as a fit by position of the greedy read
(:func:`edge.read.crop.fit_by_position`), so the decoder is not stricter than no decoder. The same ratio prunes
the characters a read offers as plausible at each position (:func:`options_at`), which is what a later fit
by position (:mod:`edge.read.crop`) may choose from.

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

from edge.domain import CharOptions, PlateText
from edge.read.charsets import ALPHABET
from edge.read.formats import FormatSet, RegistrationFormat

COLUMNS = 2 + len(ALPHABET)  # blank, the alphabet, separator
BLANK = 0
SEPARATOR = COLUMNS - 1
TWINS = {"O": "0", "0": "O", "I": "1", "1": "I"}  # drawn alike in the UK plate font

SWAP_SHARE = 0.5  # a look-alike fitted where the model saw its pair: its own probability and this share of the pair's
TWIN_SHARE = 0.5  # a character's twin adds this share of its probability to the character's own
JUNK_WEIGHT = 0.01  # a frame read as a character outside the mark counts at this share of its probability
MAX_COST = 1.5  # nats: a format reading at most this much less likely than the greedy read is taken
FIT_MIN_RATIO = 0.05  # a fitted character scored below this share of a sure best character refuses the fit...
FIT_SURE = 0.5  # ... where that best is at least this sure (read.fit_min_ratio sets the share)
OPTION_FLOOR = 1e-3  # a character scored below this is no option at any position

_NEG = -1e9
_FLOOR = 1e-9
_BOUND_SLACK = 1e-3  # nats: rounding room for the layout bound (float32 sums), so it never prunes a layout in reach
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
    fmts: tuple[RegistrationFormat, ...]  # every format with these slots (their other rules differ: a reading
    # one of them refuses, such as a Swiss canton code, may be another's, a Latvian mark)


@dataclass(frozen=True, slots=True)
class Reading:
    """A format reading: its text, each character's confidence, its cost (nats below the greedy read), and
    each character's options (:func:`options_at`)."""

    text: str
    char_confidences: tuple[float, ...]
    cost: float
    char_options: tuple[CharOptions, ...] = ()

    def as_plate_text(self, unconstrained: str | None = None) -> PlateText:
        """As a :class:`PlateText`; ``unconstrained``: the greedy read of the same frames (kept when it differs)."""
        own = None if unconstrained == self.text else unconstrained
        return PlateText(self.text, self.char_confidences, own, self.char_options)


def whole_chars(lattice: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(time, 36): each character's probability with its twin's (O/0, I/1) counted whole, capped at 1."""
    chars = lattice[:, 1:SEPARATOR] + lattice[:, TWIN_COLUMN[1:SEPARATOR]] * (_TWIN_WEIGHT[1:SEPARATOR] > 0)
    return np.asarray(np.minimum(chars, 1.0), np.float32)


def options_at(probs: npt.NDArray[np.float32], min_ratio: float = FIT_MIN_RATIO) -> CharOptions:
    """The characters plausible at one position, from their probabilities there (36, twins counted whole): every
    one scored at least ``OPTION_FLOOR`` and, where the best is sure (``FIT_SURE``), at least ``min_ratio`` of
    it; likeliest first."""
    best = float(probs.max()) if probs.size else 0.0
    floor = max(OPTION_FLOOR, min_ratio * best) if best >= FIT_SURE else OPTION_FLOOR
    keep = np.flatnonzero(probs >= floor)
    keep = keep[np.argsort(-probs[keep], kind="stable")]
    return tuple((ALPHABET[int(c)], round(float(probs[c]), 4)) for c in keep)


def greedy_options(
    lattice: npt.NDArray[np.float32], spans: list[list[int]], min_ratio: float = FIT_MIN_RATIO
) -> tuple[CharOptions, ...]:
    """The options of each character of a greedy read, from the frames (``spans``) each one holds."""
    whole = whole_chars(lattice)
    return tuple(options_at(whole[ts].max(axis=0), min_ratio) for ts in spans)


class FormatDecoder:
    """Decodes a lattice (time, :data:`COLUMNS`) to the best reading that fits one of ``formats``' layouts."""

    def __init__(
        self, formats: FormatSet, *, junk_weight: float = JUNK_WEIGHT, max_cost: float = MAX_COST,
        min_ratio: float = FIT_MIN_RATIO,
    ) -> None:
        if not 0.0 < junk_weight <= 1.0:
            raise ValueError(f"junk_weight must be in (0, 1], got {junk_weight!r}")
        if max_cost < 0.0:
            raise ValueError(f"max_cost must be >= 0, got {max_cost!r}")
        if not 0.0 <= min_ratio <= 1.0:
            raise ValueError(f"min_ratio must be in [0, 1], got {min_ratio!r}")
        self.min_ratio = min_ratio
        swap = formats.lookalikes
        self._lookalike = np.array([ALPHABET.find(swap[c]) if c in swap else -1 for c in ALPHABET], np.intp)
        owners: dict[tuple[str, ...], list[RegistrationFormat]] = {}  # in order of first use
        for fmt in formats.formats:
            for slots in (lay.slots for lay in fmt.layouts):
                if slots and all(set(s) <= set(ALPHABET) for s in slots):
                    fmts = owners.setdefault(slots, [])
                    if not any(f is fmt for f in fmts):
                        fmts.append(fmt)
        layouts = [_Layout(slots, tuple(fmts)) for slots, fmts in owners.items()]
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
        # the distinct character sets of the slots (a few: letters, digits, ...); slot_class[n, k] indexes them,
        # and slots past a layout's end index an empty set
        sets = sorted({lay.slots[k] for lay in layouts for k in range(len(lay.slots))} | {""})
        self._class_chars = np.array([[c in chars for c in ALPHABET] for chars in sets], bool)
        self._slot_class = np.array(
            [[sets.index(lay.slots[k] if k < len(lay.slots) else "") for k in range(lmax)] for lay in layouts],
            np.intp,
        ).reshape(len(layouts), lmax)

    def decode(self, lattice: npt.NDArray[np.float32]) -> Reading | None:
        """The best reading within ``max_cost`` of the greedy one whose format's date-free rules hold and whose
        characters the model did not score far below its own sure best (``min_ratio``); None if there is none
        (or no layout at all)."""
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
        # within max_cost: leave it out, and every layout that cannot come within max_cost (_least_costs).
        deficit = frame[:, None] - char_log
        near = (-deficit >= -self.max_cost).any(axis=0)
        junk = np.maximum(quiet, best_char + self._junk_log)  # a frame outside the mark
        skip = frame - junk  # a frame no slot takes costs at least this
        fits = np.flatnonzero(self._least_costs(deficit, near, skip) <= self.max_cost + _BOUND_SLACK)
        if fits.size == 0:
            return None
        plausible = np.flatnonzero(near & self._allowed[fits].any(axis=(0, 1)))  # ... and some such layout allows
        allowed = self._allowed[:, :, plausible]
        in_subset = np.isin(_TWIN_CHAR[plausible], plausible)
        twin = np.where(in_subset, np.searchsorted(plausible, _TWIN_CHAR[plausible]), -1)
        scores = _Scores(char_log[:, plausible], quiet, junk)
        paths = _Viterbi(scores, _Slots(allowed[fits], self._lengths[fits], twin))
        order = sorted(range(fits.size), key=lambda i: (-round(float(paths.scores[i]), 6), int(fits[i])))
        # a character's confidence counts its twin whole, as the greedy decoder's does (the font draws them
        # alike); the half share above only ranks the layouts
        whole = whole_chars(lattice)
        for i in order:
            cost = greedy - float(paths.scores[i])
            if cost > self.max_cost:
                return None
            chars = [(int(plausible[c]), ts) for c, ts in paths.spell(i)]
            text = "".join(ALPHABET[c] for c, _ in chars)
            if not any(fmt.accepts(text, _EVER) for fmt in self._layouts[fits[i]].fmts):
                continue
            seen = [whole[ts].max(axis=0) for _, ts in chars]  # each slot's characters at its frames
            confs = tuple(float(p[c]) for (c, _), p in zip(chars, seen, strict=True))
            if any(bent(conf, float(p.max()), self.min_ratio) for conf, p in zip(confs, seen, strict=True)):
                continue  # a character the model scored far below its own sure best there: not this layout
            confs = tuple(self._swapped(c, p) for (c, _), p in zip(chars, seen, strict=True))
            options = tuple(options_at(p, self.min_ratio) for p in seen)
            return Reading(text, confs, max(cost, 0.0), options)
        return None

    def _swapped(self, c: int, seen: npt.NDArray[np.float32]) -> float:
        """Confidence of character ``c`` (an ALPHABET index) at a slot whose characters scored ``seen``: its own
        probability; where the model's best there is ``c``'s look-alike (a 5 where the format needs an S), its own
        plus ``SWAP_SHARE`` of the best's, never more than the best's (as a fit by position counts it)."""
        own, best = float(seen[c]), int(seen.argmax())
        if best == c or self._lookalike[best] != c:
            return own
        return min(float(seen[best]), own + SWAP_SHARE * float(seen[best]))

    def _least_costs(
        self, deficit: npt.NDArray[np.float32], near: npt.NDArray[np.bool_], skip: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float64]:
        """A lower bound of each layout's cost, from each frame's ``deficit`` (time, 36: how much less likely
        each character is there than the greedy choice), the characters ``near`` enough to be on a path within
        ``max_cost`` at all, and what a frame that holds no character of the mark costs at least (``skip``).

        On any path every frame scores at most its greedy score: a frame a slot takes costs at least the least
        deficit of the near characters the slot allows, any other frame at least ``skip``, and the slots take
        frames in their order, at least one each. The cheapest such assignment is found slot by slot, each a
        running minimum over the frames (a min-plus scan), so it costs a few array operations per slot. A
        layout whose bound exceeds ``max_cost`` could never be returned: leaving it out of the Viterbi pass
        changes no reading and spares most of its work (the words of signs and walls leave few layouts within
        reach, most often none).
        """
        masked = np.where(near, deficit, np.inf)  # (time, 36)
        per_class = np.where(self._class_chars[:, None, :], masked[None], np.inf).min(axis=2)  # (classes, time)
        n, t_len = self._slot_class.shape[0], deficit.shape[0]
        bounds = np.full(n, np.inf)
        placed = np.broadcast_to(np.cumsum(skip, dtype=np.float64), (n, t_len))  # no slot begun by frame t
        for k in range(self._slot_class.shape[1]):
            take = per_class[self._slot_class[:, k]]  # (layouts, time): slot k taking frame t
            stay = np.cumsum(np.minimum(skip, take), axis=1, dtype=np.float64)  # slot k holds on, or frames skipped
            before = np.empty((n, t_len))
            before[:, 0] = 0.0 if k == 0 else np.inf
            before[:, 1:] = placed[:, :-1]
            # placed[t]: slots 0..k placed by frame t, the least over s <= t of
            # (slots before k placed by s - 1) + take[s] + stay(s, t]
            placed = stay + np.minimum.accumulate(before + take - stay, axis=1)
            done = self._lengths == k + 1
            bounds[done] = placed[done, -1]
        return bounds


def bent(fitted: float, best: float, min_ratio: float = FIT_MIN_RATIO) -> bool:
    """A fitted character scored ``fitted`` where the model's best there scored ``best``: whether fitting it
    overrules strong visual evidence (the best is sure, and the fitted one below ``min_ratio`` of it)."""
    return best >= FIT_SURE and fitted < min_ratio * best


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
    """Best paths of every layout at once; any of them can then be spelled.

    States of a layout of L slots: leading junk; for each slot k the blank before it and one state per
    character (those the slot does not allow are never reached); the blank after the last slot; trailing
    junk. A character state is entered from itself, from its own blank, from the previous slot's character
    states (not from the same character or its twin: those need a blank between, as in CTC), or, for the
    first slot, from leading junk.

    The forward pass keeps each frame's state scores and no back-pointers: :meth:`spell` works out, frame by
    frame back from the end, which state the one path it follows came from (the same choices the forward
    pass made, ties included), so only the layouts actually spelled pay for it.
    """

    def __init__(self, scores: _Scores, slots: _Slots) -> None:
        t_len = scores.chars.shape[0]
        n, lmax, _ = slots.allowed.shape
        self._rows = np.arange(n)
        self._slots = slots
        self._scores = scores
        self._mask = np.where(slots.allowed, 0.0, _NEG)
        twin = slots.twin
        self._chars = np.arange(twin.size)
        self._twin_or_self = np.where(twin >= 0, twin, self._chars)
        self._last = slots.lengths - 1
        lead = float(scores.junk[0])
        blank = np.full((n, lmax + 1), _NEG)
        blank[:, 0] = scores.quiet[0]
        char = np.full((n, lmax, twin.size), _NEG)
        char[:, 0] = scores.chars[0] + self._mask[:, 0]
        tail = np.full(n, _NEG)
        # the scores of every state after each frame: (lead, blank, char, tail)
        self._history: list[tuple[float, npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]]
        self._history = [(lead, blank, char, tail)]
        for t in range(1, t_len):
            lead, blank, char, tail = self._step(t, lead, blank, char, tail)
            self._history.append((lead, blank, char, tail))
        self._end_char = char.max(axis=2)[self._rows, self._last]
        self._end_char_idx = char.argmax(axis=2)[self._rows, self._last]
        self._end_blank = blank[self._rows, slots.lengths]
        self._tail = tail
        self.scores = np.maximum(np.maximum(self._end_char, self._end_blank), tail)

    def _step(
        self, t: int, lead: float, blank: npt.NDArray[np.float64], char: npt.NDArray[np.float64],
        tail: npt.NDArray[np.float64],
    ) -> tuple[float, npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        sc = self._scores
        best_val = char.max(axis=2)  # (n, lmax)
        from_prev = np.empty_like(char)
        from_prev[:, 0] = lead
        from_prev[:, 1:] = self._best_other(char[:, :-1])  # from slot k-1 into slot k
        val = np.maximum(char, blank[:, :-1, None])  # stay, or from its own blank
        new_char = np.maximum(val, from_prev) + sc.chars[t][None, None, :] + self._mask
        into_blank = np.empty_like(blank)
        into_blank[:, 0] = lead
        into_blank[:, 1:] = best_val
        new_blank = np.maximum(blank, into_blank) + sc.quiet[t]
        j_best = np.maximum(best_val[self._rows, self._last], blank[self._rows, self._slots.lengths])
        new_tail = np.maximum(tail, j_best) + sc.junk[t]
        return lead + float(sc.junk[t]), new_blank, new_char, new_tail

    def _best_other(self, char: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """For each character c, the best score among the states of ``char`` (..., chars) that are neither c
        nor its twin: the best of all, unless c or its twin holds it; then the best outside that pair."""
        top = char.argmax(axis=-1)[..., None]  # (..., 1)
        top_val = np.take_along_axis(char, top, axis=-1)
        pair = (self._chars == top) | (self._chars == self._twin_or_self[top])  # (..., chars): the top's pair
        second = np.where(pair, -np.inf, char).max(axis=-1, keepdims=True)
        return np.where(pair, second, top_val)

    def spell(self, n: int) -> list[tuple[int, list[int]]]:
        """Layout ``n``'s best path: for each slot, its character (an index of the scored characters) and the
        frames it holds."""
        length = int(self._slots.lengths[n])
        frames: list[list[int]] = [[] for _ in range(length)]
        picked = [0] * length
        ends = (self._end_char[n], self._end_blank[n], self._tail[n])
        finals = [("c", length - 1, int(self._end_char_idx[n])), ("b", length, 0), ("j", length, 0)]
        state = finals[int(np.argmax(ends))]
        for t in range(len(self._history) - 1, -1, -1):
            kind, k, c = state
            if kind == "c":
                frames[k].append(t)
                picked[k] = c
            if kind == "lead" or t == 0:
                break
            state = self._back(state, t, n, length)
        return [(picked[k], sorted(frames[k])) for k in range(length)]

    def _back(self, state: tuple[str, int, int], t: int, n: int, length: int) -> tuple[str, int, int]:
        """The state the best path was in at frame ``t - 1``, given it is in ``state`` at ``t``: the choice the
        forward pass made there (the first of equal scores as it took them)."""
        lead, blank, char, tail = self._history[t - 1]
        kind, k, c = state
        if kind == "c":
            own_blank = float(blank[n, k])
            if k == 0:
                from_prev, prev = lead, ("lead", 0, 0)
            else:
                from_prev, p = self._previous_char(char[n, k - 1], c)
                prev = ("c", k - 1, p)
            stay = float(char[n, k, c])
            if from_prev > max(stay, own_blank):
                return prev
            return state if stay >= own_blank else ("b", k, 0)
        if kind == "b":
            if k == 0:
                return ("lead", 0, 0) if lead > float(blank[n, 0]) else state
            p = int(char[n, k - 1].argmax())
            return ("c", k - 1, p) if float(char[n, k - 1, p]) > float(blank[n, k]) else state
        if kind == "j":  # trailing junk: stays, or came from the last character or the blank after it
            p = int(char[n, length - 1].argmax())
            j_char, j_blank = float(char[n, length - 1, p]), float(blank[n, length])
            if float(tail[n]) < max(j_char, j_blank):
                return ("c", length - 1, p) if j_char >= j_blank else ("b", length, 0)
        return state

    def _previous_char(self, row: npt.NDArray[np.float64], c: int) -> tuple[float, int]:
        """The best character state of the previous slot that is neither ``c`` nor its twin (score, index)."""
        twin = int(self._twin_or_self[c])
        for p in np.argsort(-row, kind="stable")[:3].tolist():
            if p not in (c, twin):
                return float(row[p]), p
        return _NEG, 0
