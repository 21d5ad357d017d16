"""Format-guided decoding of the OCR's frames (edge.read.lattice), on hand-made lattices."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from edge.read.charsets import ALPHABET
from edge.read.formats import FormatSet
from edge.read.lattice import BLANK, COLUMNS, SEPARATOR, FormatDecoder, options_at

UK = FormatSet.load(["uk_current", "uk_prefix", "uk_suffix", "uk_dateless", "uk_northern_ireland"])


def frames(*spec: str | tuple[str, float] | tuple[tuple[str, float], ...]) -> npt.NDArray[np.float32]:
    """One frame per item: '-' a sure blank, ' ' a sure separator, 'A' a sure A, ('A', 0.4) an A at 0.4 (the
    rest blank), (('O', 0.5), ('0', 0.4)) several characters (the rest blank). Two blanks after each."""
    rows: list[npt.NDArray[np.float32]] = []

    def row(parts: dict[str, float]) -> npt.NDArray[np.float32]:
        r = np.zeros(COLUMNS, np.float32)
        for ch, p in parts.items():
            col = BLANK if ch == "-" else SEPARATOR if ch == " " else ALPHABET.index(ch) + 1
            r[col] += p
        r[BLANK] += 1.0 - sum(parts.values())
        return r

    for item in spec:
        if isinstance(item, str):
            parts = {item: 1.0}
        elif isinstance(item[0], str):
            parts = {item[0]: float(item[1])}
        else:
            parts = {ch: float(p) for ch, p in item}
        rows.append(row(parts))
        rows.append(row({"-": 1.0}))
    return np.stack(rows)


def test_a_sure_read_that_fits_comes_back_unchanged_at_no_cost() -> None:
    got = FormatDecoder(UK).decode(frames(*"AB12CDE"))
    assert got is not None
    assert (got.text, got.cost) == ("AB12CDE", 0.0)
    assert len(got.char_confidences) == 7


def test_a_faint_first_letter_that_greedy_decoding_drops_is_kept() -> None:
    lattice = frames(("A", 0.4), *"B12CDE")  # (B12CDE is a valid prefix-format mark: current format only here)
    got = FormatDecoder(FormatSet.load(["uk_current"])).decode(lattice)
    assert got is not None and got.text == "AB12CDE"
    assert got.char_confidences[0] == pytest.approx(0.4, abs=1e-3)


def test_a_letter_read_in_a_digit_position_becomes_its_digit_twin() -> None:
    got = FormatDecoder(UK).decode(frames(*"AB1", (("O", 0.6), ("0", 0.3)), *"CDE"))
    assert got is not None and got.text == "AB10CDE"


def test_where_either_twin_fits_the_model_s_own_preference_wins() -> None:
    eu = FormatSet.load(["all"], "config/formats/europe.yaml")
    digit = FormatDecoder(eu).decode(frames(*"TS26", (("0", 0.7), ("O", 0.2)), *"AK"))
    letter = FormatDecoder(eu).decode(frames(*"TS26", (("O", 0.7), ("0", 0.2)), *"AK"))
    assert digit is not None and digit.text == "TS260AK"  # Slovak
    assert letter is not None and letter.text == "TS26OAK"  # UK current


def test_an_unsure_extra_character_between_sure_ones_is_left_out() -> None:
    got = FormatDecoder(UK).decode(frames(*"AB12", ("8", 0.5), *"CDE"))
    assert got is not None and got.text == "AB12CDE"


def test_a_country_band_s_letters_at_the_start_are_read_as_junk() -> None:
    got = FormatDecoder(UK).decode(frames(("G", 0.55), ("B", 0.55), " ", *"AB12CDE"))
    assert got is not None and got.text == "AB12CDE"
    assert got.cost > 0.0


def test_a_sure_character_is_never_dropped_to_fit_a_shorter_format() -> None:
    # a Brazilian mark under the UK formats: "JT2905" would fit uk_dateless, but the P is sure
    assert FormatDecoder(UK).decode(frames(*"PJT2905")) is None


def test_one_run_of_frames_is_never_read_as_two_alike_characters() -> None:
    # "AB11CDE" needs two 1s; two frames of one 1 with no blank between are one character (CTC), so the
    # read is not forced into that layout (were alike neighbours allowed, it would fit at no cost)
    one = frames("1")[0]
    lattice = np.vstack([frames(*"AB"), one, one, frames(*"CDE")])
    got = FormatDecoder(FormatSet.load(["uk_current"])).decode(lattice)
    assert got is None or got.text != "AB11CDE"


def test_a_read_far_from_every_format_is_left_to_the_greedy_decoder() -> None:
    assert FormatDecoder(UK).decode(frames(*"HELLOWORLD")) is None


def test_the_formats_date_free_rules_still_hold() -> None:
    # Northern Ireland marks need an I or Z in letters 2-3; "ABC1234" fits no UK layout at all
    assert FormatDecoder(FormatSet.load(["uk_northern_ireland"])).decode(frames(*"ABC1234")) is None
    assert FormatDecoder(FormatSet.load(["uk_northern_ireland"])).decode(frames(*"AIZ1234")) is not None


def test_a_lattice_of_the_wrong_width_is_refused_naming_its_shape() -> None:
    with pytest.raises(ValueError, match=r"\(5, 3\)"):
        FormatDecoder(UK).decode(np.zeros((5, 3), np.float32))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="junk_weight"):
        FormatDecoder(UK, junk_weight=0.0)
    with pytest.raises(ValueError, match="max_cost"):
        FormatDecoder(UK, max_cost=-1.0)


def _ctc_like(rng: np.random.Generator, t_len: int = 24) -> npt.NDArray[np.float32]:
    """A random lattice shaped like a recogniser's: each frame mostly one class (a blank half the time),
    some of it spread over a few others."""
    out = np.zeros((t_len, COLUMNS), np.float32)
    for t in range(t_len):
        peak = BLANK if rng.random() < 0.5 else int(rng.integers(1, COLUMNS))
        rest = rng.dirichlet(np.full(4, 0.5)) * (1.0 - rng.uniform(0.3, 1.0))
        out[t, peak] = 1.0 - rest.sum()
        np.add.at(out[t], rng.integers(0, COLUMNS, size=4), rest)
    return out


@pytest.mark.parametrize("formats", [UK, FormatSet.load(["all"], "config/formats/europe.yaml")], ids=["uk", "eu"])
def test_layouts_left_out_by_the_cost_bound_change_no_reading(formats: FormatSet) -> None:
    # the decoder runs the Viterbi pass only on layouts whose lower bound of cost is within max_cost;
    # with the bound switched off (every layout kept) every reading is the same
    rng = np.random.default_rng(13)
    pruned = FormatDecoder(formats)
    everything = FormatDecoder(formats)
    everything._least_costs = lambda *_: np.zeros(len(everything._layouts))  # type: ignore[method-assign]
    lattices = [_ctc_like(rng) for _ in range(150)]
    marks = ["AB12CDE", "BA268IM", "TS260AK", "W053011", "PG05UVT", "A123BCD", "191D12345"]
    lattices += [frames(*m) for m in marks]
    for m in marks:  # one character less and less sure, a wrong one more so: costs sweep through max_cost
        lattices += [frames(*m[:2], ((m[2], p), ("X", 0.9 - p)), *m[3:]) for p in np.linspace(0.02, 0.5, 25)]
    found = 0
    for lattice in lattices:
        a, b = pruned.decode(lattice), everything.decode(lattice)
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            found += 1
            assert (a.text, a.char_confidences) == (b.text, b.char_confidences)
            assert a.cost == pytest.approx(b.cost, abs=1e-9)
    assert found >= len(marks)  # the test saw readings, not only Nones


def test_a_fit_whose_character_the_model_scored_far_below_its_sure_best_is_refused() -> None:
    # the last frame is a sure 5 (0.96); uk_current needs a letter there, and E got only 0.03 (ratio 1/32)
    lattice = frames(*"AB12CD", (("5", 0.96), ("E", 0.03)))
    current = FormatSet.load(["uk_current"])
    anyhow = FormatDecoder(current, max_cost=10.0, min_ratio=0.0).decode(lattice)
    assert anyhow is not None and anyhow.text == "AB12CDE"
    assert anyhow.char_confidences[6] == pytest.approx(0.03, abs=1e-3)  # the fitted character carries its own score
    assert FormatDecoder(current, max_cost=10.0).decode(lattice) is None  # the default 1/20 refuses it


def test_an_unsure_best_character_does_not_refuse_a_fit() -> None:
    lattice = frames(*"AB12CD", (("5", 0.45), ("E", 0.02)))  # the model is not sure of its 5 either
    got = FormatDecoder(FormatSet.load(["uk_current"]), max_cost=10.0).decode(lattice)
    assert got is not None and got.text == "AB12CDE"


def test_a_fitted_reading_keeps_the_unconstrained_one_and_each_character_s_options() -> None:
    got = FormatDecoder(FormatSet.load(["uk_current"])).decode(frames(("A", 0.4), *"B12CDE"))
    assert got is not None
    text = got.as_plate_text(unconstrained="B12CDE")
    assert (text.text, text.unconstrained) == ("AB12CDE", "B12CDE")
    assert len(text.char_options) == 7 and text.char_options[1] == (("B", 1.0),)
    assert got.as_plate_text(unconstrained="AB12CDE").unconstrained is None  # the same: nothing to keep


def test_options_leave_out_what_the_model_scored_far_below_its_sure_best() -> None:
    probs = np.zeros(len(ALPHABET), np.float32)
    probs[ALPHABET.index("5")], probs[ALPHABET.index("S")], probs[ALPHABET.index("6")] = 0.9, 0.06, 0.02
    assert [c for c, _ in options_at(probs)] == ["5", "S"]  # 6 is below 1/20 of 0.9
    assert [c for c, _ in options_at(probs, min_ratio=0.0)] == ["5", "S", "6"]
    probs[ALPHABET.index("5")] = 0.4  # an unsure best: everything the model gave at least 0.001 is an option
    assert [c for c, _ in options_at(probs)] == ["5", "S", "6"]


BR = FormatSet.load(["br_standard"], "config/formats/brazil.yaml")


def test_a_look_alike_fitted_where_the_model_saw_its_pair_counts_half_the_pair_s_probability() -> None:
    # a bloomed S read as a sure 5 where the Brazilian layout (LLL NNNN) needs a letter: as a fit by position
    # counts it, its own probability plus half the 5's, not its own alone (the decoder no stricter than none)
    got = FormatDecoder(BR).decode(frames(*"AA", (("5", 0.7), ("S", 0.2)), *"1664"))
    assert got is not None and got.text == "AAS1664"
    assert got.char_confidences[2] == pytest.approx(0.2 + 0.5 * 0.7, abs=1e-3)


def test_a_fitted_character_that_is_no_look_alike_of_the_model_s_best_counts_its_own_probability() -> None:
    got = FormatDecoder(BR).decode(frames(*"AA", (("7", 0.7), ("S", 0.2)), *"1664"))
    assert got is not None and got.text == "AAS1664"
    assert got.char_confidences[2] == pytest.approx(0.2, abs=1e-3)


def test_a_fitted_look_alike_never_counts_more_than_the_character_the_model_saw() -> None:
    got = FormatDecoder(BR).decode(frames(*"AA", (("5", 0.5), ("S", 0.45)), *"1664"))
    assert got is not None and got.text == "AAS1664"
    assert got.char_confidences[2] == pytest.approx(0.5, abs=1e-3)
