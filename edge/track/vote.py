"""Combine the per-frame reads of one track into one read, character by character.

Frigate clusters a track's reads by string similarity and keeps the best read of the largest
cluster, so one wrong character in every read still wins, and reads of another length are thrown
away. Here every read votes per character instead:

1. A read's weight is its mean confidence, doubled when it fits a registration format.
2. For a candidate length, each read is aligned to the heaviest read of that length by edit
   distance, so a read that lost or gained a character still votes for the characters it has, in
   the right positions.
3. Each position takes the character with the most confidence behind it (the OCR's per-character
   confidences, format-valid reads weighted up, reads of another length weighted down).
4. Each length present proposes its vote; the proposal closest (by edit distance) to all the
   weighted reads wins.
5. Given a format checker, the winner is corrected by position (O/0, I/1); when it fits no format
   but a read that does is nearly as well supported, that read wins. Without one, the format is taken
   from a valid read with the same letter/digit pattern. The checker fits the winner by position only to
   characters some read spelled there (or their twins O/0, I/1).
6. A fit must not overrule what the model saw: where the winner has, in place of what the reads' own
   reader saw, a character that no read found plausible there (:attr:`PlateText.char_options`: scored below
   ``read.fit_min_ratio`` of a sure best in every read, as Vietnam's 15C-171.76 read 151717 and fitted as
   ISI717 by position), the fit is refused: the pass is the reads' own best path, fitting no format.

Beside the voted text, the track's *unconstrained* reading is the reader's own best path (before any
format bent it) that the most weight of reads gave.

The confidence of each character is its support divided by the weight of the reads that cover
that position: all reads agreeing with confidence 0.9 give 0.9; half of them disagreeing about 0.45.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from edge.domain import FormatMatch, PlateRead
from edge.read.crop import FormatMatcher
from edge.read.lattice import TWINS

VALID_WEIGHT = 2.0  # a read that fits a registration format counts this many times
OTHER_LENGTH_WEIGHT = 0.5  # a read of another length than the winning one, aligned by edit distance
VALID_SWITCH = 0.8  # a valid read wins over an invalid vote when it has this share of its support


@dataclass(frozen=True, slots=True)
class Voted:
    text: str
    display: str
    format_name: str | None
    confidence: float
    char_confidences: tuple[float, ...]
    unconstrained: str = ""  # the reader's own best path the reads gave most weight to ("": none)


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insert, delete, substitute: cost 1 each)."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def similarity(a: str, b: str) -> float:
    """1.0 for equal strings, 0.0 for nothing in common (1 - edit distance / longer length)."""
    longest = max(len(a), len(b))
    return 1.0 - levenshtein(a, b) / longest if longest else 1.0


def align(reference: str, text: str) -> list[int | None]:
    """For each position of ``reference``, the index of ``text`` aligned to it (None: deleted there).

    A minimum edit-distance alignment; ties prefer a substitution, so equal lengths map one to one.
    """
    n, m = len(reference), len(text)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        cost[i][0] = i
    for j in range(m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i][j] = min(
                cost[i - 1][j - 1] + (reference[i - 1] != text[j - 1]), cost[i - 1][j] + 1, cost[i][j - 1] + 1
            )
    mapping: list[int | None] = [None] * n
    i, j = n, m
    while i > 0 and j > 0:
        if cost[i][j] == cost[i - 1][j - 1] + (reference[i - 1] != text[j - 1]):
            mapping[i - 1] = j - 1
            i, j = i - 1, j - 1
        elif cost[i][j] == cost[i - 1][j] + 1:
            i -= 1
        else:
            j -= 1
    return mapping


def read_weight(read: PlateRead) -> float:
    confs = read.raw.char_confidences
    mean = sum(confs) / len(confs) if confs else read.confidence
    return mean * (VALID_WEIGHT if read.valid else 1.0)


def vote(reads: Sequence[PlateRead], formats: FormatMatcher | None = None) -> Voted:
    """One read from many; raises ValueError on no reads or reads with no text."""
    reads = [r for r in reads if r.text]
    if not reads:
        raise ValueError("cannot vote over no reads (or only empty ones)")
    weights = [read_weight(r) for r in reads]
    by_length: dict[int, float] = defaultdict(float)
    for read, weight in zip(reads, weights, strict=True):
        by_length[len(read.text)] += weight
    # each length present proposes its own per-character vote; the proposal closest to all reads wins
    proposals = [_vote_length(reads, n) for n in sorted(by_length)]
    text, support, cover = max(
        proposals,
        key=lambda p: (sum(w * similarity(r.text, p[0]) for r, w in zip(reads, weights, strict=True)),
                       by_length[len(p[0])]),
    )
    length = len(text)
    match = _format_of(text, reads, formats, support)
    if formats is not None and (match is None or match.format_name is None):
        text = _prefer_valid(text, reads, support)
        match = _format_of(text, reads, formats, support)
    confs = tuple(min(1.0, support[p].get(text[p], 0.0) / cover[p]) if cover[p] else 0.0 for p in range(length))
    if match is not None and match.text != text and len(match.text) == length:
        text = match.text  # corrected by position (O/0, I/1) once the format is known
    if match is not None and match.format_name is not None and bent(text, reads):
        own = unconstrained(reads, weights)  # the fit overrules what the model saw: refused
        return Voted(own, own, None, min(confs) if confs else 0.0, confs if len(own) == length else (), own)
    return Voted(
        text=text,
        display=match.display if match is not None else text,
        format_name=match.format_name if match is not None else None,
        confidence=min(confs) if confs else 0.0,
        char_confidences=confs,
        unconstrained=unconstrained(reads, weights),
    )


def unconstrained(reads: Sequence[PlateRead], weights: Sequence[float]) -> str:
    """The reads' own best path (:attr:`PlateRead.unconstrained`) with the most weight behind it."""
    total: dict[str, float] = defaultdict(float)
    for read, weight in zip(reads, weights, strict=True):
        total[read.unconstrained] += weight
    return max(sorted(total), key=lambda t: total[t]) if total else ""


def bent(text: str, reads: Sequence[PlateRead]) -> bool:
    """Whether ``text`` has, at some position, a character that the reads' reader saw otherwise there (neither it
    nor its twin) in some read, and that no read of ``text``'s length found plausible (its options there; a read
    that does not say its options counts as finding any character plausible)."""
    seen = [(_raw(r), r.raw.char_options) for r in reads]
    seen = [(raw, opts) for raw, opts in seen if len(raw) == len(text)]
    for p, c in enumerate(text):
        if all(raw[p] in (c, TWINS.get(c)) for raw, _ in seen):
            continue
        if not any(raw[p] in (c, TWINS.get(c)) or len(opts) != len(raw) or c in dict(opts[p]) for raw, opts in seen):
            return True
    return False


def _raw(read: PlateRead) -> str:
    """The read as its reader made it, before any fit by position (normalised)."""
    return read.raw.text.upper().replace(" ", "").replace("-", "")


def _vote_length(reads: Sequence[PlateRead], length: int) -> tuple[str, list[dict[str, float]], list[float]]:
    """The per-character vote of all reads aligned to the heaviest read of ``length`` characters."""
    reference = max((r for r in reads if len(r.text) == length), key=read_weight).text
    support: list[dict[str, float]] = [defaultdict(float) for _ in range(length)]
    cover = [0.0] * length
    for read in reads:
        factor = (VALID_WEIGHT if read.valid else 1.0) * (1.0 if len(read.text) == length else OTHER_LENGTH_WEIGHT)
        mapping = list(range(length)) if len(read.text) == length else align(reference, read.text)
        for pos, j in enumerate(mapping):
            cover[pos] += factor
            if j is not None:
                support[pos][read.text[j]] += _char_confidence(read, j) * factor
    chars = [max(s.items(), key=lambda kv: (kv[1], kv[0]))[0] if s else reference[p] for p, s in enumerate(support)]
    return "".join(chars), support, cover


def _char_confidence(read: PlateRead, index: int) -> float:
    confs = read.raw.char_confidences
    # char_confidences follow the raw OCR text; the normalised text has the same length unless it dropped spaces
    if len(confs) == len(read.text) and index < len(confs):
        return confs[index]
    return read.confidence


def _prefer_valid(text: str, reads: Sequence[PlateRead], support: list[dict[str, float]]) -> str:
    """A valid read's text instead of a vote that fits no format, when it is nearly as well supported."""

    def total(candidate: str) -> float:
        return sum(support[p].get(c, 0.0) for p, c in enumerate(candidate))

    valid = sorted({r.text for r in reads if r.valid and len(r.text) == len(text)})
    if not valid:
        return text
    best = max(valid, key=total)
    return best if total(best) >= VALID_SWITCH * total(text) else text


def _pattern(text: str) -> str:
    return "".join("9" if c.isdigit() else "A" for c in text)


def _format_of(
    text: str, reads: Sequence[PlateRead], formats: FormatMatcher | None, support: list[dict[str, float]]
) -> FormatMatch | None:
    """The format of the voted text: a read's with that text, the checker's, or (no checker) a valid read's
    with the same letter/digit pattern, its display spacing carried over. The checker's fit may swap a
    character only to one a read spelled there (``support``) or to its twin."""
    same = [r for r in reads if r.text == text]
    if same:
        ref = max(same, key=read_weight)
        if ref.valid or formats is None:
            return ref.match
    if formats is not None:
        match = formats.match(text, reads[0].timestamp.date())
        if match.format_name is not None and len(match.text) == len(text) and not all(
            a == b or TWINS.get(a) == b or support[p].get(b, 0.0) > 0.0
            for p, (a, b) in enumerate(zip(text, match.text, strict=True))
        ):
            return FormatMatch(text, None, False, text)  # a swap no read saw: the text stays its own, unfitted
        return match
    alike = [r for r in reads if r.valid and _pattern(r.text) == _pattern(text)]
    if not alike:
        return None
    ref = max(alike, key=read_weight)
    return FormatMatch(text, ref.match.format_name, False, _respace(text, ref.match.display))


def _respace(text: str, display: str) -> str:
    """``text`` with spaces where ``display`` (a same-length text with spaces) has them."""
    out: list[str] = []
    chars = iter(text)
    for c in display:
        out.append(" " if c == " " else next(chars, ""))
    return "".join(out) + "".join(chars)
