"""read.country: a deployment names its country (or countries) instead of listing format names."""

from __future__ import annotations

import pytest

from edge.config import parse_config
from edge.config.model import ReadConfig
from edge.errors import ConfigError

NODE = {"node": {"site": "a40", "camera": "cam1"}}
UK_DEFAULT = ("uk_current", "uk_prefix", "uk_suffix", "uk_dateless", "uk_northern_ireland", "uk_diplomatic", "ie")


def _read(**read: object) -> ReadConfig:
    return parse_config({**NODE, "read": read}).read


def test_without_a_country_the_formats_are_today_s_uk_and_irish_default() -> None:
    read = parse_config(NODE).read
    assert (read.country, read.formats) == ((), UK_DEFAULT)


def test_one_code_is_a_list_of_one_and_case_does_not_matter() -> None:
    assert _read(country="es").country == ("es",)
    assert _read(country=["FR", "be"]).country == ("fr", "be")


def test_a_country_without_formats_reads_that_country_s_formats_alone() -> None:
    assert _read(country="es").formats == ()


def test_a_country_with_formats_reads_both() -> None:
    read = _read(country=["es"], formats=["ie"])
    assert (read.country, read.formats) == (("es",), ("ie",))


def test_the_resolved_config_dumps_and_loads_to_the_same() -> None:
    config = parse_config({**NODE, "read": {"country": "es"}})
    assert parse_config(config.model_dump()).read == config.read


@pytest.mark.parametrize("bad", ["xx", ["es", "uk"], ""])
def test_an_unknown_code_is_refused_naming_it_and_listing_the_valid_ones(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"read\.country = .*unknown country code .*; valid: at, be, bg, .*, ua"):
        _read(country=bad)


def test_a_country_named_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match="name a country twice"):
        _read(country=["es", "ES"])


def test_norway_s_bare_no_which_yaml_reads_as_false_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="write Norway's code in quotes"):
        _read(country=False)
    assert _read(country="no").country == ("no",)
