"""Registration formats as data: normalise a read, correct confusable characters by position, check it.

The formats live in ``formats.yaml`` (package data) and optionally a second YAML file with the
same layout (another country's formats). A format is a per-position pattern of character
classes with the display space marked, an optional maximum length, an optional dated age
identifier and an optional "must contain" rule. See the comments in ``formats.yaml``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from edge.config.safe_yaml import read_yaml
from edge.domain import FormatMatch
from edge.errors import ConfigError
from edge.read.countries import COUNTRIES

_TOKEN = re.compile(r"^([a-z_][a-z0-9_]*)(?:\{(\d+)(?:,(\d+))?\})?$")
_STRIP = re.compile(r"[\s\-]+")
_AGE_SCHEMES = ("uk", "ie")
NO_FORMAT = "none"  # the format published for a read that fits no allowed format (never a format's name)


def normalise(text: str) -> str:
    """Uppercase, without spaces or hyphens."""
    return _STRIP.sub("", text).upper()


def uk_age_issued(identifier: str) -> dt.date | None:
    """The date a UK current-format age identifier was (or will be) first issued; None if never valid.

    ``02``-``50``: March of 2002-2050; ``51``-``99``: September of 2001-2049; ``00``: September 2050;
    ``01`` was never issued.
    """
    if len(identifier) != 2 or not identifier.isdigit():
        return None
    n = int(identifier)
    if n == 1:
        return None
    if n == 0:
        return dt.date(2050, 9, 1)
    if n <= 50:
        return dt.date(2000 + n, 3, 1)
    return dt.date(1950 + n, 9, 1)


def ie_age_issued(identifier: str) -> dt.date | None:
    """The date an Irish year identifier was (or will be) first issued; None if never valid.

    Since 2013 three digits, the year's last two and the half-year (``131`` Jan-Jun 2013, ``132`` Jul-Dec);
    1987-2012 two digits (``87``-``99``, ``00``-``12``).
    """
    if not identifier.isdigit():
        return None
    if len(identifier) == 3:
        year, half = int(identifier[:2]), identifier[2]
        return dt.date(2000 + year, 1 if half == "1" else 7, 1) if year >= 13 and half in "12" else None
    if len(identifier) == 2:
        year = int(identifier)
        if year >= 87:
            return dt.date(1900 + year, 1, 1)
        return dt.date(2000 + year, 1, 1) if year <= 12 else None
    return None


_LEADING_DIGITS = re.compile(r"\d+")


def uk_age_identifiers(on: dt.date) -> list[str]:
    """Every UK age identifier already issued on ``on``, oldest first."""
    ids = [f"{n:02d}" for n in [*range(51, 100), 0, *range(2, 51)]]
    issued = [(uk_age_issued(i), i) for i in ids]
    return [i for d, i in sorted((d, i) for d, i in issued if d is not None) if d <= on]


@dataclass(frozen=True, slots=True)
class Layout:
    """One concrete length of a format: the allowed characters of each position, and the display gaps."""

    slots: tuple[str, ...]
    gaps: tuple[int, ...]  # positions before which the display shows a space


@dataclass(frozen=True, slots=True)
class RegistrationFormat:
    name: str
    description: str
    layouts: tuple[Layout, ...]
    max_length: int | None = None
    age_position: int | None = None  # start of a dated age identifier
    age_scheme: str = "uk"  # uk: two digits (uk_age_issued); ie: the digits there (ie_age_issued)
    regex: re.Pattern[str] | None = None  # the whole mark must match this (e.g. a list of county codes)
    must_contain_positions: tuple[int, ...] = ()
    must_contain_chars: str = ""
    country: str = ""  # the code of the country whose rule this is (a country file's formats)
    source: str = ""  # the rule's source: the authority or regulation
    examples: tuple[str, ...] = ()  # marks written from the rule, which the format must accept
    not_examples: tuple[str, ...] = ()  # marks the rule excludes, which the format must refuse

    def accepts(self, text: str, captured_on: dt.date) -> bool:
        """Rules beyond the per-position classes: length cap, age identifier, must-contain."""
        if self.max_length is not None and len(text) > self.max_length:
            return False
        if self.age_position is not None:
            issued = self._issued(text[self.age_position :])
            if issued is None or issued > captured_on:
                return False
        if self.regex is not None and self.regex.fullmatch(text) is None:
            return False
        if self.must_contain_chars:
            chars = [text[p] for p in self.must_contain_positions if p < len(text)]
            if not any(c in self.must_contain_chars for c in chars):
                return False
        return True

    def _issued(self, tail: str) -> dt.date | None:
        if self.age_scheme == "ie":
            digits = _LEADING_DIGITS.match(tail)
            return ie_age_issued(digits.group(0)) if digits else None
        return uk_age_issued(tail[:2])


@dataclass(frozen=True, slots=True)
class _Candidate:
    text: str
    corrections: int
    rank: int
    fmt: RegistrationFormat
    layout: Layout


class FormatSet:
    """The allowed formats, in order of preference (ties in the number of corrections go to the earlier)."""

    def __init__(self, formats: Sequence[RegistrationFormat], confusables: Mapping[str, str]) -> None:
        self.formats = tuple(formats)
        self._swap = dict(confusables)  # both directions: letter -> digit and digit -> letter

    @property
    def lookalikes(self) -> dict[str, str]:
        """Each character's look-alike of the other kind (``S`` -> ``5``, ``5`` -> ``S``...), from ``confusables``."""
        return dict(self._swap)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.formats)

    @classmethod
    def load(cls, names: Sequence[str], extra_file: str | None = None, countries: Sequence[str] = ()) -> FormatSet:
        """The formats of ``countries`` (in their order, each country's in its file's order) followed by those
        called ``names`` (or ``["all"]``: every known one), from the packaged file, the countries' files and
        ``extra_file`` (which may replace them)."""
        packaged = resources.files("edge.read").joinpath("formats.yaml").read_text(encoding="utf-8")
        classes, confusables, known = _parse(yaml.safe_load(packaged), "edge/read/formats.yaml", {})
        chosen: list[str] = []
        for code in countries:
            own, uses = _country(code, classes)
            known.update(own)
            chosen += [n for n in (*own, *uses) if n not in chosen]
        if extra_file is not None:
            raw = read_yaml(extra_file, "formats file")  # bounded: size, UTF-8, depth, aliases, repeated keys
            _, extra_confusables, extra = _parse(raw, extra_file, classes)
            known.update(extra)
            confusables.update(extra_confusables)
        if tuple(names) == ("all",):  # every known format: the packaged ones first, then the countries', the file's
            names = tuple(known)
        names = (*chosen, *(n for n in names if n not in chosen))
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(
                f"unknown registration format {', '.join(repr(n) for n in unknown)}; known: {', '.join(known)}"
            )
        return cls([known[n] for n in names], confusables)

    def match(self, text: str, captured_on: dt.date) -> FormatMatch:
        """Fit a read to the best format; a read that fits none keeps its normalised text, flagged."""
        norm = normalise(text)
        best: _Candidate | None = None
        for rank, fmt in enumerate(self.formats):
            for layout in fmt.layouts:
                if len(layout.slots) != len(norm):
                    continue
                fitted = self._fit(norm, layout)
                if fitted is None or not fmt.accepts(fitted[0], captured_on):
                    continue
                cand = _Candidate(fitted[0], fitted[1], rank, fmt, layout)
                if best is None or (cand.corrections, cand.rank) < (best.corrections, best.rank):
                    best = cand
        if best is None:
            return FormatMatch(text=norm, format_name=None, corrected=False, display=norm)
        return FormatMatch(
            text=best.text,
            format_name=best.fmt.name,
            corrected=best.corrections > 0,
            display=_display(best.text, best.layout.gaps),
        )

    def _fit(self, text: str, layout: Layout) -> tuple[str, int] | None:
        out: list[str] = []
        corrections = 0
        for c, allowed in zip(text, layout.slots, strict=True):
            if c in allowed:
                out.append(c)
                continue
            swapped = self._swap.get(c)
            if swapped is None or swapped not in allowed or not _same_kind(allowed):
                return None
            out.append(swapped)
            corrections += 1
        return "".join(out), corrections


def _same_kind(allowed: str) -> bool:
    """Only an all-digit or all-letter position is corrected (a mixed one has no 'right' kind)."""
    return allowed.isdigit() or allowed.isalpha()


def _display(text: str, gaps: tuple[int, ...]) -> str:
    parts, start = [], 0
    for g in gaps:
        parts.append(text[start:g])
        start = g
    parts.append(text[start:])
    return " ".join(p for p in parts if p)


def _country(code: str, classes: Mapping[str, str]) -> tuple[dict[str, RegistrationFormat], tuple[str, ...]]:
    """A country's own formats (from ``edge/read/countries/<code>.yaml``) and the packaged ones it uses."""
    if code not in COUNTRIES:
        raise ConfigError(f"unknown country {code!r}; known: {', '.join(sorted(COUNTRIES))}")
    source = f"edge/read/countries/{code}.yaml"
    raw = yaml.safe_load(resources.files("edge.read.countries").joinpath(f"{code}.yaml").read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or raw.get("country") != code:
        raise ConfigError(f"{source}: must be a mapping whose 'country' is {code!r}")
    _, _, own = _parse(raw, source, classes)
    strays = [n for n, f in own.items() if f.country != code]
    if strays:
        raise ConfigError(f"{source}: formats {strays} must each say 'country: {code}'")
    uses = raw.get("uses") or []
    if not (isinstance(uses, list) and all(isinstance(n, str) for n in uses)):
        raise ConfigError(f"{source}: 'uses' must be a list of packaged format names, got {uses!r}")
    return own, tuple(uses)


def _parse(
    raw: Any, source: str, base_classes: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str], dict[str, RegistrationFormat]]:
    if not isinstance(raw, dict):
        raise ConfigError(f"formats file {source!r} must be a mapping with 'classes' and 'formats'")
    classes = dict(base_classes)
    for name, chars in (raw.get("classes") or {}).items():
        if not isinstance(chars, str) or not chars or not chars.isalnum() or chars != chars.upper():
            raise ConfigError(f"{source}: class {name!r} must be a string of uppercase letters/digits, got {chars!r}")
        classes[str(name)] = chars
    confusables: dict[str, str] = {}
    for pair in raw.get("confusables") or []:
        if not (isinstance(pair, str) and len(pair) == 2 and pair[0].isalpha() and pair[1].isdigit()):
            raise ConfigError(f"{source}: confusable {pair!r} must be a letter then a digit, e.g. 'O0'")
        confusables[pair[0]], confusables[pair[1]] = pair[1], pair[0]
    formats: dict[str, RegistrationFormat] = {}
    for item in raw.get("formats") or []:
        fmt = _parse_format(item, source, classes)
        formats[fmt.name] = fmt
    return classes, confusables, formats


def _parse_format(item: Any, source: str, classes: Mapping[str, str]) -> RegistrationFormat:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise ConfigError(f"{source}: every format needs a 'name', got {item!r}")
    name = item["name"]
    if name in (NO_FORMAT, "all"):
        raise ConfigError(f"{source}: {name!r} is reserved (read.formats: all; format none for a read that fits none); "
                          "name the format otherwise")
    patterns = item.get("patterns") or ([item["pattern"]] if "pattern" in item else [])
    if not patterns:
        raise ConfigError(f"{source}: format {name!r} needs 'pattern' or 'patterns'")
    layouts = tuple(lay for p in patterns for lay in _expand(str(p), name, source, classes))
    age = item.get("age")
    age_position: int | None = None
    age_scheme = "uk"
    if age is not None:
        if not (isinstance(age, dict) and age.get("scheme") in _AGE_SCHEMES and isinstance(age.get("position"), int)):
            raise ConfigError(
                f"{source}: format {name!r} age must be {{position: <int>, scheme: one of {list(_AGE_SCHEMES)}}}, "
                f"got {age!r}"
            )
        age_position, age_scheme = age["position"], age["scheme"]
    regex = item.get("regex")
    if regex is not None:
        try:
            compiled: re.Pattern[str] | None = re.compile(str(regex))
        except re.error as exc:
            raise ConfigError(f"{source}: format {name!r} regex {regex!r} is not a valid regular expression: {exc}") \
                from exc
    else:
        compiled = None
    rule = item.get("must_contain") or {}
    if rule and not (isinstance(rule.get("positions"), list) and isinstance(rule.get("chars"), str)):
        raise ConfigError(f"{source}: format {name!r} must_contain needs 'positions' (list) and 'chars', got {rule!r}")
    max_length = item.get("max_length")
    if max_length is not None and not (isinstance(max_length, int) and max_length > 0):
        raise ConfigError(f"{source}: format {name!r} max_length must be a positive integer, got {max_length!r}")
    return RegistrationFormat(
        name=name,
        description=str(item.get("description", "")),
        layouts=layouts,
        max_length=max_length,
        age_position=age_position,
        age_scheme=age_scheme,
        regex=compiled,
        must_contain_positions=tuple(int(p) for p in rule.get("positions", [])),
        must_contain_chars=str(rule.get("chars", "")),
        country=str(item.get("country", "")),
        source=str(item.get("source", "")),
        examples=_marks(item, "examples", source),
        not_examples=_marks(item, "not_examples", source),
    )


def _marks(item: dict[str, Any], key: str, source: str) -> tuple[str, ...]:
    marks = item.get(key) or []
    if not (isinstance(marks, list) and all(isinstance(m, str) for m in marks)):
        raise ConfigError(f"{source}: format {item['name']!r} {key} must be a list of marks, got {marks!r}")
    return tuple(marks)


def _expand(pattern: str, name: str, source: str, classes: Mapping[str, str]) -> list[Layout]:
    """Every concrete layout of a pattern such as ``"prefix_year nonzero digit{0,2} | serial{3}"``."""
    pieces: list[list[tuple[str, ...]]] = []  # per token: the alternatives (each a run of classes)
    gap_after: list[int] = []  # token indices a display space follows
    for part in pattern.split():
        if part == "|":
            gap_after.append(len(pieces))
            continue
        m = _TOKEN.match(part)
        if m is None or m.group(1) not in classes:
            raise ConfigError(
                f"{source}: format {name!r} has pattern token {part!r}; expected '|' or a class "
                f"(optionally with {{n}} or {{m,n}}) from: {', '.join(classes)}"
            )
        lo = int(m.group(2)) if m.group(2) else 1
        hi = int(m.group(3)) if m.group(3) else lo
        if hi < lo:
            raise ConfigError(f"{source}: format {name!r} token {part!r} has its counts the wrong way round")
        chars = classes[m.group(1)]
        pieces.append([(chars,) * n for n in range(lo, hi + 1)])
    layouts = []
    for combo in itertools.product(*pieces):
        slots: list[str] = []
        gaps: list[int] = []
        for i, run in enumerate(combo):
            if i in gap_after and slots:
                gaps.append(len(slots))
            slots.extend(run)
        if slots:
            layouts.append(Layout(slots=tuple(slots), gaps=tuple(gaps)))
    return layouts
