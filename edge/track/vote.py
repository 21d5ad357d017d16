"""Combine the per-frame reads of one track into one read.

Reads of the same length are aligned position by position and each character is chosen by the
sum of its confidences over the reads, with reads that fit a registration format weighted up.
The most supported length wins first, so a single misread length cannot outvote the rest.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from edge.domain import PlateRead

VALID_WEIGHT = 2.0


@dataclass(frozen=True, slots=True)
class Voted:
    text: str
    display: str
    format_name: str | None
    confidence: float
    char_confidences: tuple[float, ...]


def vote(reads: list[PlateRead]) -> Voted:
    if not reads:
        raise ValueError("cannot vote over no reads")
    by_length: dict[int, list[PlateRead]] = defaultdict(list)
    for read in reads:
        by_length[len(read.text)].append(read)
    group = max(by_length.values(), key=lambda rs: (sum(_weight(r) for r in rs), -len(rs[0].text)))
    chars: list[str] = []
    confs: list[float] = []
    total = sum(_weight(r) for r in group)
    for pos in range(len(group[0].text)):
        support: dict[str, float] = defaultdict(float)
        for read in group:
            c = read.raw.char_confidences[pos] if pos < len(read.raw.char_confidences) else read.confidence
            support[read.text[pos]] += c * (VALID_WEIGHT if read.valid else 1.0)
        char, score = max(support.items(), key=lambda kv: (kv[1], kv[0]))
        chars.append(char)
        confs.append(min(1.0, score / total) if total else 0.0)
    text = "".join(chars)
    # the format of a read that agrees with the vote, if any
    agreeing = [r for r in group if r.text == text]
    ref = max(agreeing, key=_weight) if agreeing else max(group, key=_weight)
    display = ref.match.display if ref.text == text else text
    return Voted(
        text=text,
        display=display,
        format_name=ref.match.format_name if ref.text == text else None,
        confidence=min(confs) if confs else 0.0,
        char_confidences=tuple(confs),
    )


def _weight(read: PlateRead) -> float:
    return read.confidence * (VALID_WEIGHT if read.valid else 1.0)
