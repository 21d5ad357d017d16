"""Registration formats by country, as package data: one ``<code>.yaml`` per country.

A deployment names its country (``read.country: es``) instead of listing format names. Each file has the
layout of ``edge/read/formats.yaml`` (classes, formats) plus ``country`` and ``name``, and may list
packaged formats it ``uses`` (the UK's and Ireland's live in ``formats.yaml``). Every format carries its
``country``, a ``description`` of the rule, its ``source`` and ``examples`` written from the rule (and
``not_examples``); ``tests/read/test_countries.py`` checks each pattern against them.

This module holds only the codes (ISO 3166-1 alpha-2, lowercase; ``gb`` for the United Kingdom) so that
the config can validate a code without reading any file.
"""

from __future__ import annotations

from types import MappingProxyType

COUNTRIES = MappingProxyType({
    # EU
    "at": "Austria", "be": "Belgium", "bg": "Bulgaria", "hr": "Croatia", "cy": "Cyprus", "cz": "Czechia",
    "dk": "Denmark", "ee": "Estonia", "fi": "Finland", "fr": "France", "de": "Germany", "gr": "Greece",
    "hu": "Hungary", "ie": "Ireland", "it": "Italy", "lv": "Latvia", "lt": "Lithuania", "lu": "Luxembourg",
    "mt": "Malta", "nl": "Netherlands", "pl": "Poland", "pt": "Portugal", "ro": "Romania", "sk": "Slovakia",
    "si": "Slovenia", "es": "Spain", "se": "Sweden",
    # EFTA
    "is": "Iceland", "li": "Liechtenstein", "no": "Norway", "ch": "Switzerland",
    # others
    "ua": "Ukraine", "gb": "United Kingdom",
    # the Crown dependencies (Alderney's formats are in Guernsey's file)
    "je": "Jersey", "gg": "Guernsey", "im": "Isle of Man",
})
