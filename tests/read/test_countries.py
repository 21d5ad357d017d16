"""Every country's formats, as data: each pattern takes its rule's own examples (as text and through the
format-guided decoder) and refuses its non-examples; a deployment names a country instead of format names."""

from __future__ import annotations

import configparser
import datetime as dt
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from edge.config.model import ReadConfig
from edge.errors import ConfigError
from edge.read.charsets import ALPHABET
from edge.read.countries import COUNTRIES
from edge.read.formats import FormatSet, RegistrationFormat, normalise
from edge.read.lattice import BLANK, COLUMNS, FormatDecoder

ROOT = Path(__file__).resolve().parents[2]
ON = dt.date(2026, 12, 7)
EU = ("at", "be", "bg", "hr", "cy", "cz", "dk", "ee", "fi", "fr", "de", "gr", "hu", "ie", "it", "lv", "lt", "lu",
      "mt", "nl", "pl", "pt", "ro", "sk", "si", "es", "se")
EFTA = ("is", "li", "no", "ch")
OWN = tuple(sorted(set(COUNTRIES) - {"gb", "ie"}))  # the countries whose formats live in their own file


def _formats(code: str) -> FormatSet:
    return FormatSet.load((), countries=(code,))


def _cases(kind: str) -> list[tuple[str, str, str]]:
    """(country, format name, mark) for every example (kind 'examples') or non-example of every country."""
    cases = []
    for code in OWN:
        for fmt in _formats(code).formats:
            cases += [(code, fmt.name, mark) for mark in getattr(fmt, kind)]
    return cases


def _sure(mark: str) -> npt.NDArray[np.float32]:
    """A lattice that spells ``mark`` surely: each character on one frame, a blank frame after each."""
    rows = []
    for ch in mark:
        for col in (ALPHABET.index(ch) + 1, BLANK):
            row = np.zeros(COLUMNS, np.float32)
            row[col] = 1.0
            rows.append(row)
    return np.stack(rows)


def test_every_eu_and_efta_country_ukraine_and_the_crown_dependencies_have_formats() -> None:
    assert set(EU + EFTA + ("ua", "gb", "je", "gg", "im")) == set(COUNTRIES)
    for code in COUNTRIES:
        assert _formats(code).formats, code


def test_each_country_file_is_named_for_its_code_and_ships_with_the_package() -> None:
    files = {p.name for p in resources.files("edge.read.countries").iterdir() if p.name.endswith(".yaml")}
    assert files == {f"{code}.yaml" for code in COUNTRIES}
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert setup["options.package_data"]["edge.read.countries"].strip() == "*.yaml"


@pytest.mark.parametrize("code", OWN)
def test_each_format_carries_its_country_rule_source_and_examples(code: str) -> None:
    for fmt in _formats(code).formats:
        assert fmt.name.startswith(f"{code}_"), fmt.name
        assert fmt.country == code
        assert fmt.description and fmt.source, fmt.name
        assert len(fmt.examples) >= 2 and fmt.not_examples, fmt.name


@pytest.mark.parametrize(("code", "name", "mark"), _cases("examples"))
def test_each_pattern_accepts_its_rule_s_own_examples(code: str, name: str, mark: str) -> None:
    m = _formats(code).match(mark, ON)
    assert (m.format_name, m.text, m.corrected) == (name, normalise(mark), False)


@pytest.mark.parametrize(("code", "name", "mark"), _cases("not_examples"))
def test_each_country_refuses_its_rule_s_non_examples(code: str, name: str, mark: str) -> None:
    assert _formats(code).match(mark, ON).format_name is None


@pytest.mark.parametrize(("code", "name", "mark"), _cases("examples"))
def test_the_format_guided_decoder_reads_each_example_back(code: str, name: str, mark: str) -> None:
    got = FormatDecoder(_formats(code)).decode(_sure(normalise(mark)))
    assert got is not None
    assert (got.text, got.cost) == (normalise(mark), 0.0)


def test_every_position_allows_only_characters_the_reader_can_read() -> None:
    every: list[RegistrationFormat] = [f for code in OWN for f in _formats(code).formats]
    for fmt in every:
        for layout in fmt.layouts:
            assert all(set(slot) <= set(ALPHABET) for slot in layout.slots), fmt.name


def test_spain_displays_its_mark_with_the_space_of_the_rule() -> None:
    m = _formats("es").match("1234bcd", ON)
    assert (m.text, m.format_name, m.display) == ("1234BCD", "es_standard", "1234 BCD")


def test_a_letter_read_in_a_digit_position_is_corrected_by_the_country_s_layout() -> None:
    m = _formats("es").match("12O4 BCD", ON)
    assert (m.text, m.corrected) == ("1204BCD", True)


def test_gb_is_today_s_default_uk_and_irish_formats_and_ie_the_irish_one() -> None:
    assert FormatSet.load((), countries=("gb",)).names == ReadConfig().formats
    assert FormatSet.load((), countries=("ie",)).names == ("ie",)


def test_countries_come_first_in_their_order_then_the_named_formats_once_each() -> None:
    got = FormatSet.load(["uk_current", "es_standard"], countries=("es", "pt"))
    assert got.names == ("es_standard", "pt_standard", "uk_current")


def test_all_takes_the_named_countries_formats_too_but_no_others() -> None:
    names = FormatSet.load(["all"], countries=("es",)).names
    assert "es_standard" in names and "uk_current" in names
    assert "fr_siv" not in names
    assert "fr_siv" not in FormatSet.load(["all"]).names  # 'all' alone is what it was: the packaged formats


def test_an_unknown_country_is_refused_naming_it_and_the_known_codes() -> None:
    with pytest.raises(ConfigError, match=r"unknown country 'xx'; known: at, be, .*ua"):
        FormatSet.load((), countries=("xx",))


def test_the_readme_lists_every_country_code() -> None:
    readme = ROOT.joinpath("README.md").read_text(encoding="utf-8")
    assert [code for code in COUNTRIES if f"| `{code}` | {COUNTRIES[code]} |" not in readme] == []


def test_a_layout_two_countries_share_is_decoded_for_either_s_rules() -> None:
    # ch_standard and lv_standard both have two letters and four digits; only Switzerland's checks the canton
    formats = FormatSet.load((), countries=("ch", "lv"))
    for mark in ("AB1234", "ZH1234"):
        got = FormatDecoder(formats).decode(_sure(mark))
        assert got is not None and got.text == mark
