"""read_box: the one place where the pipeline and eval cut, read and fit a plate."""

from __future__ import annotations

import datetime as dt

import numpy as np
from support.fakes import FixedReader

from edge.domain import Box
from edge.read.crop import read_box
from edge.read.formats import FormatSet

DAY = dt.date(2026, 3, 14)
UK = FormatSet.load(["uk_current"])


def _image() -> np.ndarray:
    return np.zeros((360, 640, 3), np.uint8)


def test_the_crop_has_the_margin_and_the_read_is_fitted_to_the_formats() -> None:
    got = read_box(_image(), Box(100, 100, 100, 25), FixedReader("AB12CDE", 0.9), UK, DAY,
                   min_confidence=0.5)
    assert got is not None and got.match is not None
    assert got.match.format_name == "uk_current"
    assert got.crop.shape[:2] == (25 + 2 * 3, 100 + 2 * 12)


def test_an_unsure_or_empty_read_is_returned_unfitted() -> None:
    unsure = read_box(_image(), Box(100, 100, 100, 25), FixedReader("AB12CDE", 0.2), UK, DAY,
                      min_confidence=0.5)
    empty = read_box(_image(), Box(100, 100, 100, 25), FixedReader(""), UK, DAY, min_confidence=0.5)
    assert unsure is not None and unsure.match is None
    assert empty is not None and empty.match is None


def test_a_box_too_small_to_read_gives_nothing() -> None:
    assert read_box(_image(), Box(636, 100, 10, 3), FixedReader("A", 1.0), UK, DAY,
                    min_confidence=0.5) is None
