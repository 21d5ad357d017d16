"""UK registration formats: every format, every correction rule, and plates that must be rejected."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ConfigError
from edge.read.formats import FormatSet, normalise, uk_age_identifiers, uk_age_issued
from edge.sample.plates import random_registration

UK = ("uk_current", "uk_prefix", "uk_suffix", "uk_dateless", "uk_northern_ireland", "uk_diplomatic")
ON = dt.date(2026, 11, 22)


@pytest.fixture(scope="module")
def uk() -> FormatSet:
    return FormatSet.load(UK)


@pytest.mark.parametrize(
    ("read", "text", "fmt", "display"),
    [
        ("AB12CDE", "AB12CDE", "uk_current", "AB12 CDE"),
        ("LJ76XYZ", "LJ76XYZ", "uk_current", "LJ76 XYZ"),
        ("A123BCD", "A123BCD", "uk_prefix", "A123 BCD"),
        ("P7ABC", "P7ABC", "uk_prefix", "P7 ABC"),
        ("Q123ABC", "Q123ABC", "uk_prefix", "Q123 ABC"),
        ("ABC123D", "ABC123D", "uk_suffix", "ABC 123D"),
        ("WYX7A", "WYX7A", "uk_suffix", "WYX 7A"),
        ("ABC123", "ABC123", "uk_dateless", "ABC 123"),
        ("1234AB", "1234AB", "uk_dateless", "1234 AB"),
        ("A1", "A1", "uk_dateless", "A 1"),
        ("AIZ1234", "AIZ1234", "uk_northern_ireland", "AIZ 1234"),
        ("BIA7", "BIA7", "uk_northern_ireland", "BIA 7"),
        ("123D456", "123D456", "uk_diplomatic", "123 D 456"),
        ("123X456", "123X456", "uk_diplomatic", "123 X 456"),
    ],
)
def test_each_format_accepts_its_own_marks_unchanged(
    uk: FormatSet, read: str, text: str, fmt: str, display: str
) -> None:
    m = uk.match(read, ON)
    assert (m.text, m.format_name, m.corrected, m.display) == (text, fmt, False, display)


@pytest.mark.parametrize("read", ["ab12 cde", "AB12-CDE", " ab-12 c de ", "Ab12cDe"])
def test_reads_are_normalised_to_uppercase_without_spaces_or_hyphens(uk: FormatSet, read: str) -> None:
    assert normalise(read) == "AB12CDE"
    assert uk.match(read, ON).text == "AB12CDE"


@pytest.mark.parametrize(
    ("read", "corrected"),
    [
        ("ABI2CDE", "AB12CDE"),  # I -> 1 in a digit slot
        ("ABO2CDE", "AB02CDE"),  # O -> 0 (02: March 2002)
        ("ABS5CDE", "AB55CDE"),  # S -> 5
        ("AB6BCDE", "AB68CDE"),  # B -> 8
        ("ABZ2CDE", "AB22CDE"),  # Z -> 2
        ("ABG2CDE", "AB62CDE"),  # G -> 6
        ("0B12CDE", "OB12CDE"),  # 0 -> O in a letter slot
        ("AB12CD5", "AB12CDS"),  # 5 -> S
        ("AB128DE", "AB12BDE"),  # 8 -> B
        ("AB12CD2", "AB12CDZ"),  # 2 -> Z (Z allowed in the last three)
        ("AB12C6E", "AB12CGE"),  # 6 -> G
        ("A1Z1234", "AIZ1234"),  # 1 -> I in a Northern Ireland letter slot
        ("12OX456", "120X456"),  # O -> 0 in a diplomatic digit slot
    ],
)
def test_confusable_characters_are_corrected_by_position(uk: FormatSet, read: str, corrected: str) -> None:
    m = uk.match(read, ON)
    assert m.text == corrected
    assert m.corrected


def test_correction_never_brings_in_a_letter_the_slot_forbids(uk: FormatSet) -> None:
    # '1' could only be I, and I is never in the last three of a current mark: no fit anywhere.
    m = uk.match("AB12CD1", ON)
    assert m.format_name is None
    assert m.text == "AB12CD1"


def test_fewest_corrections_win(uk: FormatSet) -> None:
    # Exactly a prefix mark: kept as one rather than "corrected" into a current mark.
    assert uk.match("A812CDE", ON).format_name == "uk_prefix"
    # One correction as a current mark (O -> 0), two as a prefix mark: current wins.
    m = uk.match("AB1OCDE", ON)
    assert (m.text, m.format_name) == ("AB10CDE", "uk_current")


@pytest.mark.parametrize(
    "read",
    [
        "AA01AAA",  # 01 was never issued
        "XY77ABC",  # September 2027: in the future on the capture date
        "XY27ABC",  # March 2027: in the future
        "QA12BCD",  # Q never in a memory tag (and not a prefix mark)
        "AB12CDQ",  # Q never in the last three
        "ABZ12345",  # Northern Ireland has at most 4 digits
        "ABC1234",  # three letters + four digits without I or Z: not Northern Ireland, too long for dateless
        "A0123BC",  # a prefix number never starts with 0
        "ABC0123",  # nor a suffix/dateless one
        "12347A",  # dateless: at most 4 digits
        "ABCD12",  # dateless: at most 3 letters
        "123A456",  # diplomatic needs D or X
        "AB12CD",  # one letter short
        "",
        "AB12C?E",
    ],
)
def test_marks_that_fit_no_uk_format_are_kept_and_flagged(uk: FormatSet, read: str) -> None:
    m = uk.match(read, ON)
    assert m.format_name is None
    assert not m.corrected
    assert m.text == normalise(read)
    assert m.display == normalise(read)


def test_age_identifier_is_checked_against_the_capture_date(uk: FormatSet) -> None:
    assert uk.match("XY76ABC", dt.date(2026, 9, 1)).format_name == "uk_current"
    assert uk.match("XY76ABC", dt.date(2026, 8, 31)).format_name is None
    assert uk.match("XY26ABC", dt.date(2026, 3, 1)).format_name == "uk_current"
    assert uk.match("XY26ABC", dt.date(2026, 2, 28)).format_name is None
    assert uk.match("XY51ABC", dt.date(2001, 9, 1)).format_name == "uk_current"


def test_age_identifier_calendar() -> None:
    assert uk_age_issued("01") is None
    assert uk_age_issued("51") == dt.date(2001, 9, 1)
    assert uk_age_issued("02") == dt.date(2002, 3, 1)
    assert uk_age_issued("99") == dt.date(2049, 9, 1)
    assert uk_age_issued("50") == dt.date(2050, 3, 1)
    assert uk_age_identifiers(dt.date(2002, 9, 1)) == ["51", "02", "52"]
    assert uk_age_identifiers(dt.date(2001, 8, 31)) == []


def test_northern_ireland_needs_i_or_z_in_the_county_code(uk: FormatSet) -> None:
    assert uk.match("AZB123", ON).format_name == "uk_northern_ireland"
    assert uk.match("ABC123", ON).format_name == "uk_dateless"
    assert uk.match("ABC12345", ON).format_name is None


def test_only_the_named_formats_are_allowed() -> None:
    current_only = FormatSet.load(["uk_current"])
    assert current_only.names == ("uk_current",)
    assert current_only.match("A123BCD", ON).format_name is None
    assert current_only.match("AB12CDE", ON).format_name == "uk_current"


def test_unknown_format_name_is_a_config_error_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"'uk_future'.*known: uk_current, uk_prefix"):
        FormatSet.load(["uk_current", "uk_future"])


def test_another_countrys_formats_come_from_an_extra_file(tmp_path: Path) -> None:
    extra = tmp_path / "ie.yaml"
    extra.write_text(
        "formats:\n"
        "  - name: ie_current\n"
        "    pattern: 'digit{2,3} | letter{1,2} | nonzero digit{0,5}'\n"
    )
    formats = FormatSet.load(["uk_current", "ie_current"], extra_file=str(extra))
    m = formats.match("191-D-12345", ON)
    assert (m.text, m.format_name, m.display) == ("191D12345", "ie_current", "191 D 12345")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("formats:\n  - name: x\n    pattern: 'vowel{2}'\n", r"pattern token 'vowel\{2\}'.*from: digit"),
        ("formats:\n  - pattern: 'digit'\n", "needs a 'name'"),
        ("classes:\n  lower: abc\n", "class 'lower'"),
        ("formats:\n  - name: x\n    pattern: digit\n    age: {position: 0, scheme: fr}\n", "scheme"),
        ("[1, 2", "not valid YAML"),
        ("formats:\n  - name: none\n    pattern: digit\n", "reserved"),
    ],
)
def test_a_bad_formats_file_is_a_config_error_naming_the_problem(tmp_path: Path, content: str, message: str) -> None:
    extra = tmp_path / "bad.yaml"
    extra.write_text(content)
    with pytest.raises(ConfigError, match=message):
        FormatSet.load(["uk_current"], extra_file=str(extra))


def test_a_missing_formats_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read formats file"):
        FormatSet.load(["uk_current"], extra_file=str(tmp_path / "nope.yaml"))


def test_every_random_registration_is_a_valid_uk_mark_on_its_date(uk: FormatSet) -> None:
    rng = np.random.default_rng(7)
    for day in (dt.date(2001, 9, 1), dt.date(2014, 2, 28), ON):
        for _ in range(300):
            reg = random_registration(rng, on=day)
            m = uk.match(reg, day)
            assert m.format_name is not None, (reg, day)
            assert not m.corrected, reg


CONFIG_FORMATS = Path(__file__).resolve().parents[2] / "config" / "formats"


@pytest.mark.parametrize(
    ("file", "names", "read", "fitted", "name"),
    [
        ("europe.yaml", "sk_standard", "BA2681M", "BA268IM", "sk_standard"),
        ("europe.yaml", "sk_standard", "RK34OA0", "RK340AO", "sk_standard"),
        ("europe.yaml", "cz_standard", "4B21875", "4B21875", "cz_standard"),
        ("europe.yaml", "pl_standard", "WSQ3O21", "WSQ3021", "pl_standard"),
        ("brazil.yaml", "br_standard", "0KM0944", "OKM0944", "br_standard"),
        ("brazil.yaml", "br_mercosur", "RI02A18", "RIO2A18", "br_mercosur"),
    ],
)
def test_shipped_country_files_fit_and_correct_their_marks(
    file: str, names: str, read: str, fitted: str, name: str
) -> None:
    formats = FormatSet.load(names.split(","), str(CONFIG_FORMATS / file))
    match = formats.match(read, dt.date(2026, 3, 14))
    assert (match.text, match.format_name) == (fitted, name)


def test_all_selects_the_packaged_formats_then_the_files() -> None:
    formats = FormatSet.load(["all"], str(CONFIG_FORMATS / "brazil.yaml"))
    assert formats.names[:2] == ("uk_current", "uk_prefix")
    assert formats.names[-2:] == ("br_standard", "br_mercosur")


@pytest.mark.parametrize(
    ("read", "fits"),
    [
        ("191-D-12345", "191D12345"),  # 2019, first half, Dublin
        ("06-KY-1234", "06KY1234"),  # 2006, Kerry
        ("262-C-1", "262C1"),  # July-December 2026 (ON is November 2026)
        ("99-LK-456", "99LK456"),  # 1999, Limerick county (issued until 2013)
        ("87-W-1", "87W1"),
        ("131-T-12", "131T12"),
    ],
)
def test_irish_marks_fit_the_ie_format_of_a_uk_node(read: str, fits: str) -> None:
    m = FormatSet.load([*UK, "ie"]).match(read, ON)
    assert (m.text, m.format_name) == (fits, "ie")


@pytest.mark.parametrize(
    "read",
    [
        "271-D-5",  # a future year
        "13-D-1",  # 2013 on has the half-year digit
        "193-D-1",  # half-year 3
        "191-XY-1",  # no such county
        "191-D-0123",  # the number has no leading zero
        "191-D-1234567",  # at most six digits
    ],
)
def test_what_is_not_an_irish_mark_does_not_fit_ie(read: str) -> None:
    assert FormatSet.load(["ie"]).match(read, ON).format_name is None


def test_a_uk_node_accepts_irish_marks_by_default() -> None:
    from edge.config.model import ReadConfig

    assert "ie" in ReadConfig().formats
