"""read_box: the one place where the pipeline and eval cut, read and fit a plate."""

from __future__ import annotations

import datetime as dt

import cv2
import numpy as np
import pytest
from support.fakes import FixedReader

from edge.domain import Box, PlateText
from edge.read.crop import read_box
from edge.read.formats import FormatSet
from edge.sample.plates import render_plate

DAY = dt.date(2026, 3, 14)
UK = FormatSet.load(["uk_current"])


def _image() -> np.ndarray:
    return np.zeros((360, 640, 3), np.uint8)


def test_the_crop_has_the_margin_and_the_read_is_fitted_to_the_formats() -> None:
    got = read_box(_image(), Box(100, 100, 100, 25), FixedReader("AB12CDE", 0.9), UK, DAY,
                   min_confidence=0.5, verify=False)
    assert got is not None and got.match is not None
    assert got.match.format_name == "uk_current"
    assert got.crop.shape[:2] == (25 + 2 * 3, 100 + 2 * 12)


def test_an_unsure_or_empty_read_is_returned_unfitted() -> None:
    unsure = read_box(_image(), Box(100, 100, 100, 25), FixedReader("AB12CDE", 0.2), UK, DAY,
                      min_confidence=0.5, verify=False)
    empty = read_box(_image(), Box(100, 100, 100, 25), FixedReader(""), UK, DAY, min_confidence=0.5, verify=False)
    assert unsure is not None and unsure.match is None
    assert empty is not None and empty.match is None


def test_a_box_too_small_to_read_gives_nothing() -> None:
    assert read_box(_image(), Box(636, 100, 10, 3), FixedReader("A", 1.0), UK, DAY,
                    min_confidence=0.5, verify=False) is None


def test_a_plate_given_by_its_corners_is_straightened_with_side_margins_only() -> None:
    image = np.full((200, 300, 3), 255, np.uint8)
    corners = ((50.0, 60.0), (150.0, 80.0), (150.0, 110.0), (50.0, 90.0))  # a slanted 100x30 plate
    image[60:111, 50:151] = 0  # around it, so the straightened crop is dark inside the plate
    got = read_box(image, Box(50, 60, 100, 50), FixedReader("AB12CDE", 0.9), UK, DAY, min_confidence=0.5,
                   corners=corners, verify=False)
    assert got is not None and got.match is not None
    side = float(np.hypot(100, 20))  # the slanted top and bottom edges
    assert got.crop.shape[:2] == (30, round(side * (1 + 2 * 0.12)))
    assert got.crop[5:25, 20:100].mean() < 10  # the plate, straightened, fills the rows


def test_degenerate_corners_give_nothing_to_read() -> None:
    flat = ((10.0, 10.0), (12.0, 10.0), (12.0, 11.0), (10.0, 11.0))
    assert read_box(_image(), Box(10, 10, 2, 1), FixedReader("A"), UK, DAY, min_confidence=0.5,
                    corners=flat) is None


class _Spy(FixedReader):
    """A fixed reader that keeps the crops it was given."""

    def __init__(self, text: str, conf: float = 0.95) -> None:
        super().__init__(text, conf)
        self.crops: list[np.ndarray] = []

    def read(self, crop: np.ndarray) -> PlateText:
        self.crops.append(crop)
        return super().read(crop)


def _plate_scene() -> tuple[np.ndarray, Box]:
    image = np.full((360, 640, 3), (70, 75, 80), np.uint8)
    plate = render_plate("AB12 CDE", char_height=24)
    h, w = plate.shape[:2]
    image[150 : 150 + h, 200 : 200 + w] = plate
    return image, Box(200, 150, w, h)


def test_a_crop_with_no_row_of_characters_is_not_read() -> None:
    spy = _Spy("AB12CDE")
    got = read_box(np.full((360, 640, 3), 128, np.uint8), Box(100, 100, 100, 25), spy, UK, DAY, min_confidence=0.5)
    assert got is not None and got.match is None
    assert spy.crops == []


def test_a_plate_is_read_from_the_rows_of_its_main_line() -> None:
    image, box = _plate_scene()
    spy = _Spy("AB12CDE")
    got = read_box(image, box, spy, UK, DAY, min_confidence=0.5)
    assert got is not None and got.match is not None and got.match.format_name == "uk_current"
    assert spy.crops[0].shape[0] < got.crop.shape[0]  # cut to the characters' rows
    assert spy.crops[0].shape[1] == got.crop.shape[1]


def test_a_short_read_needs_a_crop_with_as_many_characters() -> None:
    image, box = _plate_scene()
    # the plate shows seven characters: a read of two (a sign's word, windows read as M1) is not taken from it
    short = read_box(image, box, _Spy("M1"), FormatSet.load(["uk_dateless"]), DAY, min_confidence=0.5)
    assert short is not None and short.match is None


def test_only_plates_skips_a_crop_that_only_may_be_one() -> None:
    image = np.full((360, 640, 3), (70, 75, 80), np.uint8)
    cv2.putText(image, "AB", (210, 180), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (240, 240, 240), 3)  # light on dark
    spy = _Spy("AB12CDE")
    got = read_box(image, Box(200, 150, 120, 40), spy, UK, DAY, min_confidence=0.5, only_plates=True)
    assert got is not None and got.match is None and spy.crops == []


class _SeenReader:
    """A PlateReader that reads every crop as ``text``, with the character options it carries."""

    def __init__(self, text: PlateText) -> None:
        self.text = text

    def read(self, crop: np.ndarray) -> PlateText:
        return self.text


NI = FormatSet.load(["uk_northern_ireland"])


def _sure(text: str) -> tuple[tuple[tuple[str, float], ...], ...]:
    return tuple(((c, 0.99),) for c in text)


def test_a_look_alike_swap_the_model_gave_nothing_carries_half_the_seen_confidence() -> None:
    # Vietnam's 15C-171.76, 41x13 px, read 151717: Northern Ireland's format takes it as ISI717 (1->I, 5->S, 1->I),
    # though the model gave S nothing beside its sure 5; the vote then refuses the fit (edge.track.vote)
    seen = PlateText("151717", (0.99,) * 6, None, _sure("151717"))
    got = read_box(_image(), Box(100, 100, 100, 25), _SeenReader(seen), NI, DAY, min_confidence=0.5, verify=False)
    assert got is not None and got.match is not None and got.match.text == "ISI717"
    assert got.text.text == "151717" and got.text.char_options == seen.char_options  # what the model saw, kept
    assert got.text.char_confidences == pytest.approx((0.99, 0.5 * 0.99, 0.99, 0.99, 0.99, 0.99))


def test_a_swap_the_model_found_plausible_costs_less_confidence() -> None:
    # the UK street video's taxi: its 5 read as a sure S, the 5 scored 0.1 beside it
    options = (*_sure("PG0"), (("S", 0.88), ("5", 0.1)), *_sure("UVT"))
    seen = PlateText("PG0SUVT", (0.99, 0.99, 0.99, 0.88, 0.99, 0.99, 0.99), None, options)
    got = read_box(_image(), Box(100, 100, 100, 25), _SeenReader(seen), UK, DAY, min_confidence=0.5, verify=False)
    assert got is not None and got.match is not None
    assert (got.match.text, got.match.format_name) == ("PG05UVT", "uk_current")
    assert got.text.char_confidences[3] == pytest.approx(0.1 + 0.5 * 0.88)  # its own 0.1 and half the S's
    assert got.text.char_confidences[2] == pytest.approx(0.99)  # 0 for O: twins the font draws alike cost nothing


def test_a_reader_that_does_not_say_its_options_is_fitted_by_position_as_before() -> None:
    got = read_box(_image(), Box(100, 100, 100, 25), FixedReader("151717", 0.9), NI, DAY, min_confidence=0.5,
                   verify=False)
    assert got is not None and got.match is not None and got.match.text == "ISI717"


def _plate_image(mark: str, *, light: bool = False) -> tuple[np.ndarray, Box]:
    """A full image with a rendered plate of ``mark`` (light characters on dark with ``light``) and its box."""
    plate = render_plate(mark, char_height=30)
    plate = 255 - plate if light else plate
    image = np.full((360, 640, 3), (70, 75, 80), np.uint8)
    h, w = plate.shape[:2]
    image[100 : 100 + h, 100 : 100 + w] = plate
    return image, Box(100, 100, w, h)


DATELESS = FormatSet.load(["uk_dateless"])


def test_a_short_mark_on_a_whole_plate_is_read_and_fitted() -> None:
    image, box = _plate_image("M1")
    got = read_box(image, box, FixedReader("M1"), DATELESS, DAY, min_confidence=0.5)
    assert got is not None and got.match is not None and got.match.format_name == "uk_dateless"
    assert got.whole


def test_a_light_on_dark_plate_of_four_characters_is_read_and_fitted() -> None:
    image, box = _plate_image("AB12", light=True)
    got = read_box(image, box, FixedReader("AB12"), DATELESS, DAY, min_confidence=0.5)
    assert got is not None and got.look == "maybe" and got.whole
    assert got.match is not None and got.match.format_name == "uk_dateless"


def test_a_short_read_of_a_crop_cut_through_a_plate_does_not_count() -> None:
    image, box = _plate_image("AB12 CDE")
    part = Box(box.x + box.w // 2, box.y, box.w // 2, box.h)  # the right half: the row runs out of the crop
    got = read_box(image, part, FixedReader("CDE1"), DATELESS, DAY, min_confidence=0.5)
    assert got is not None and got.match is None and not got.whole
