"""Voting: per-character, aligned, confidence- and format-weighted."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pytest
from track_builders import sighting

from edge.domain import FormatMatch, PlateRead, PlateText
from edge.read.formats import FormatSet
from edge.track.vote import align, levenshtein, similarity, vote


def test_every_read_wrong_somewhere_still_votes_the_true_plate() -> None:
    # no two reads agree, so "the best read of the largest cluster" cannot be right; per-character voting is
    reads = [sighting(t, i, 100, 100) for i, t in enumerate(["AB12CDF", "AB72CDE", "A812CDE", "AB12C0E", "XB12CDE"])]
    assert vote(reads).text == "AB12CDE"


def test_a_read_that_lost_a_character_is_aligned_not_thrown_away() -> None:
    reads = [
        sighting("AB12CDE", 0, 100, 100, conf=0.6),
        sighting("AB12CD", 1, 100, 100, conf=0.95),  # lost the last character, otherwise confident
        sighting("AB1CDE", 2, 100, 100, conf=0.95),  # lost a digit
        sighting("AB12COE", 3, 100, 100, conf=0.5),
    ]
    voted = vote(reads)
    assert voted.text == "AB12CDE"
    assert len(voted.char_confidences) == 7


def test_confident_characters_outvote_more_numerous_unsure_ones() -> None:
    sure = (0.95,) * 7
    unsure = (0.95, 0.95, 0.95, 0.95, 0.2, 0.95, 0.95)
    reads = [sighting("AB12CDE", 0, 100, 100, confs=sure)] + [
        sighting("AB12ODE", i, 100, 100, confs=unsure) for i in (1, 2)
    ]
    assert vote(reads).text == "AB12CDE"


def test_reads_that_fit_a_format_weigh_more() -> None:
    reads = [
        sighting("AB12CDE", 0, 100, 100, conf=0.8, valid=True),
        sighting("AB12CD8", 1, 100, 100, conf=0.8, valid=False),
    ]
    voted = vote(reads)
    assert voted.text == "AB12CDE"
    assert voted.format_name == "uk_current"


def test_the_most_supported_length_wins() -> None:
    reads = [sighting("AB12CDE", i, 100, 100) for i in range(3)] + [sighting("AB12CDEE", 3, 100, 100, conf=0.99)]
    assert vote(reads).text == "AB12CDE"


def test_character_confidence_falls_where_reads_disagree() -> None:
    reads = [sighting("AB12CDE", 0, 100, 100, conf=0.9), sighting("AB12CDF", 1, 100, 100, conf=0.9)]
    voted = vote(reads)
    assert voted.char_confidences[0] == pytest.approx(0.9)
    assert voted.char_confidences[6] == pytest.approx(0.45)
    assert voted.confidence == pytest.approx(0.45)


class _UkDigits:
    """A stand-in format checker: AB12CDE shape, O->0 in the digit slots."""

    def match(self, text: str, captured_on: date) -> FormatMatch:
        fixed = text[:2] + text[2:4].replace("O", "0") + text[4:]
        ok = len(fixed) == 7 and fixed[:2].isalpha() and fixed[2:4].isdigit() and fixed[4:].isalpha()
        return FormatMatch(fixed, "uk_current" if ok else None, fixed != text, f"{fixed[:4]} {fixed[4:]}")


def test_a_format_checker_corrects_the_vote_by_position() -> None:
    reads = [sighting("AB1OCDE", i, 100, 100, valid=False) for i in range(3)]
    voted = vote(reads, _UkDigits())
    assert (voted.text, voted.display, voted.format_name) == ("AB10CDE", "AB10 CDE", "uk_current")


def test_no_reads_is_an_error() -> None:
    with pytest.raises(ValueError, match="no reads"):
        vote([])


def test_edit_distance_helpers() -> None:
    assert levenshtein("AB12CDE", "AB1CDE") == 1
    assert similarity("AB12CDE", "AB12CDE") == 1.0
    assert align("AB12CDE", "AB1CDE") == [0, 1, 2, None, 3, 4, 5]
    assert align("ABC", "ABXC") == [0, 1, 3]


def _largest_cluster_best(reads: list[tuple[str, float]]) -> str:
    """Frigate's way: cluster reads by similarity, keep the most confident read of the largest cluster."""
    clusters: list[list[tuple[str, float]]] = []
    for text, conf in reads:
        for cluster in clusters:
            if similarity(cluster[0][0], text) >= 0.8:
                cluster.append((text, conf))
                break
        else:
            clusters.append([(text, conf)])
    return max(max(clusters, key=len), key=lambda r: r[1])[0]


def test_voting_beats_the_largest_cluster_on_noisy_simulated_tracks() -> None:
    rng = np.random.default_rng(0)
    alphabet = "ABCDEFGHJKLMNOPRSTUVWXYZ0123456789"
    voted_ok = cluster_ok = 0
    trials = 150
    for _ in range(trials):
        plate = "".join(alphabet[i] for i in rng.integers(0, 24, 2)) + "".join(
            str(i) for i in rng.integers(0, 10, 2)) + "".join(alphabet[i] for i in rng.integers(0, 24, 3))
        reads = []
        for i in range(8):  # 15% of characters misread, 3% lost
            chars, confs = [], []
            for c in plate:
                r = rng.random()
                if r < 0.03:
                    continue
                wrong = r < 0.18
                chars.append(alphabet[rng.integers(len(alphabet))] if wrong else c)
                confs.append(float(rng.uniform(0.4, 0.9) if wrong else rng.uniform(0.85, 0.99)))
            reads.append(sighting("".join(chars), i, 100, 100, confs=tuple(confs), valid=len(chars) == 7))
        voted_ok += vote(reads).text == plate
        cluster_ok += _largest_cluster_best([(r.text, r.confidence) for r in reads]) == plate
    assert voted_ok / trials >= 0.95
    assert voted_ok - cluster_ok >= 0.1 * trials


def _bent_read(frame: int, seen: str, fitted: str, options: tuple[tuple[tuple[str, float], ...], ...]) -> PlateRead:
    """A read the reader made as ``seen`` (with its options), fitted by position to ``fitted``."""
    r = sighting(fitted, frame, 100, 100)
    return replace(r, raw=PlateText(seen, r.raw.char_confidences, None, options))


def test_a_fit_no_read_found_plausible_is_refused_and_the_pass_is_the_reads_own() -> None:
    # Vietnam's 15C-171.76 read 151717 in every frame, fitted by position as Northern Ireland's ISI717: no read
    # gave the S beside its sure 5 (1 -> I is a twin the font draws alike)
    sure = tuple(((c, 0.99),) for c in "151717")
    voted = vote([_bent_read(i, "151717", "ISI717", sure) for i in range(4)], FormatSet.load(["uk_northern_ireland"]))
    assert (voted.text, voted.format_name, voted.unconstrained) == ("151717", None, "151717")


def test_a_look_alike_fit_stands_when_some_read_found_it_plausible() -> None:
    # the UK street taxi PG05UVT: its 5 read as a sure S; one read gave the 5 a tenth of the S
    sure = tuple(((c, 0.99),) for c in "PGOSUVT")
    plausible = (*sure[:3], (("S", 0.88), ("5", 0.1)), *sure[4:])
    reads = [_bent_read(i, "PGOSUVT", "PG05UVT", sure) for i in range(3)]
    reads.append(_bent_read(3, "PGOSUVT", "PG05UVT", plausible))
    voted = vote(reads, FormatSet.load(["uk_current"]))
    assert (voted.text, voted.format_name) == ("PG05UVT", "uk_current")


def test_the_vote_is_fitted_by_position_only_to_characters_some_read_saw() -> None:
    # uk_current would take 5B12CDE as SB12CDE, yet no read saw an S there; an O for a 0 is a twin, and fits
    reads = [sighting("5B12CDE", i, 100, 100, valid=False) for i in range(3)]
    voted = vote(reads, FormatSet.load(["uk_current"]))
    assert (voted.text, voted.format_name) == ("5B12CDE", None)
    twins = vote([sighting("0B12CDE", i, 100, 100, valid=False) for i in range(3)], FormatSet.load(["uk_current"]))
    assert (twins.text, twins.format_name) == ("OB12CDE", "uk_current")


def test_the_vote_keeps_the_reads_own_best_path_beside_the_fitted_text() -> None:
    reads = [sighting("AB12CDE", i, 100, 100) for i in range(3)]
    reads = [replace(r, raw=PlateText("AB12CDE", r.raw.char_confidences, "B12CDE")) for r in reads]
    reads.append(sighting("AB12CDE", 3, 100, 100))  # one read was the model's own path
    assert vote(reads).unconstrained == "B12CDE"
