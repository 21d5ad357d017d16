"""The main line of a plate crop, and the look that tells a plate from a sign, a wall or a road marking."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.read.line import cut_to_line, main_line, plate_check, whole_plate
from edge.sample.plates import render_plate


def _framed(plate: np.ndarray, margin: float = 0.15, colour: tuple[int, int, int] = (70, 70, 80)) -> np.ndarray:
    """A plate on a car-body-like surround, as a detector's crop holds it."""
    h, w = plate.shape[:2]
    my, mx = round(h * margin), round(w * margin)
    out = np.full((h + 2 * my, w + 2 * mx, 3), colour, np.uint8)
    out[my : my + h, mx : mx + w] = plate
    return out


def _text(text: str, height: int, *, ink: tuple[int, int, int], paper: tuple[int, int, int],
          scale: float = 1.0) -> np.ndarray:
    """A line of text drawn with OpenCV's font (a sign's lettering, not the plate font)."""
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 3)
    out = np.full((height, tw + 20, 3), paper, np.uint8)
    cv2.putText(out, text, (10, (height + th) // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, ink, 3, cv2.LINE_AA)
    return out


@pytest.mark.parametrize(("char_height", "rear"), [(12, False), (20, True), (40, False)])
def test_a_rendered_plate_is_a_plate_and_its_main_line_holds_its_characters(char_height: int, rear: bool) -> None:
    crop = _framed(render_plate("AB12 CDE", char_height=char_height, rear=rear))
    check = plate_check(crop)
    assert check.level == "plate", check.reason
    assert check.line is not None and check.line.dark_on_light
    assert 6 <= check.line.chars <= 8
    assert abs(check.line.char_height - char_height) <= 0.3 * char_height


def test_a_two_line_plate_keeps_both_lines() -> None:
    crop = _framed(render_plate("AB12 CDE", char_height=30, two_line=True))
    line = main_line(crop)
    assert line is not None and line.lines == 2
    assert line.box.h >= 1.8 * line.char_height


def test_smaller_text_above_and_below_the_registration_is_not_its_main_line() -> None:
    # a US-style plate: a state name above and a slogan below, in letters half the registration's height
    plate = np.full((120, 240, 3), 235, np.uint8)
    cv2.putText(plate, "STATE", (80, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (40, 40, 150), 2, cv2.LINE_AA)
    cv2.putText(plate, "ANW2529", (18, 80), cv2.FONT_HERSHEY_DUPLEX, 1.5, (20, 20, 20), 4, cv2.LINE_AA)
    cv2.putText(plate, "land of lakes", (60, 110), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (40, 40, 40), 1, cv2.LINE_AA)
    line = main_line(plate)
    assert line is not None and line.lines == 1
    assert line.box.y >= 45 and line.box.y + line.box.h <= 90  # the registration's band only
    cut = cut_to_line(plate, line)
    assert cut.shape[0] < 0.6 * plate.shape[0]
    assert cut.shape[1] == plate.shape[1]  # the full width: a character the line missed at an end stays


def test_light_lettering_on_a_dark_sign_is_not_read_as_dark_characters() -> None:
    sign = _text("GENTING", 60, ink=(200, 200, 200), paper=(40, 45, 40))
    check = plate_check(sign)
    assert check.line is None or not check.line.dark_on_light or check.level != "plate"


def test_windows_in_a_brick_wall_are_not_a_plate() -> None:
    wall = np.full((60, 240, 3), (50, 70, 150), np.uint8)  # red brick (BGR)
    rng = np.random.default_rng(3)
    wall = cv2.add(wall, rng.integers(0, 20, wall.shape, dtype=np.uint8))
    for x in range(15, 230, 45):
        cv2.rectangle(wall, (x, 12), (x + 24, 48), (30, 30, 35), -1)  # dark panes
    assert plate_check(wall).level != "plate"


def test_a_plain_surface_has_no_line_and_is_not_a_plate() -> None:
    grey = np.full((40, 160, 3), 128, np.uint8)
    assert main_line(grey) is None
    assert plate_check(grey).level == "no"


def test_tiny_or_empty_crops_have_no_line() -> None:
    assert main_line(np.zeros((2, 2, 3), np.uint8)) is None
    assert plate_check(np.zeros((0, 10, 3), np.uint8)).level == "no"


def test_a_row_of_faint_blobs_on_grey_is_not_a_plate_but_a_dim_plate_is() -> None:
    # asphalt's texture falls into rows of blobs of one height (a toll lane's road read as 70LO): the same shapes
    # as a plate's characters, but standing a few grey levels off their surface; a plate at dusk keeps its ink apart
    plate = _framed(render_plate("AB12 CDE", char_height=20)).astype(np.float32)
    road = (0.06 * plate + 0.94 * 120).astype(np.uint8)
    dusk = (0.3 * plate + 0.7 * 40).astype(np.uint8)
    faint = plate_check(road)
    assert faint.level != "plate" and faint.reason.startswith("contrast"), faint
    assert plate_check(dusk).level == "plate", plate_check(dusk).reason


@pytest.mark.parametrize("mark", ["M1", "AB1", "AB12"])
def test_a_short_mark_and_a_light_on_dark_plate_are_whole_plates(mark: str) -> None:
    dark = _framed(render_plate(mark, char_height=30))
    light = 255 - dark  # an older black-and-silver plate
    for crop in (dark, light):
        check = plate_check(crop)
        assert check.line is not None and whole_plate(crop, check.line)
    assert plate_check(light).level == "maybe"  # still only may be a plate: the tracker asks for more sightings


def test_a_crop_cut_through_a_plate_is_no_whole_plate() -> None:
    plate = render_plate("AB12 CDE", char_height=30)
    cut = plate[:, plate.shape[1] // 3 :]  # a detector's box on the right part of a plate
    check = plate_check(cut)
    assert check.line is not None and not whole_plate(cut, check.line)


def test_glowing_characters_on_a_duller_plate_in_a_grey_crop_are_a_plate_read_from_their_row() -> None:
    plate = cv2.cvtColor(render_plate("AB12 CDE", char_height=30), cv2.COLOR_BGR2GRAY)
    glowing = np.where(plate < 128, 240, 90).astype(np.uint8)  # an infrared plate over-lit by the lamp
    grey = _framed(cv2.cvtColor(glowing, cv2.COLOR_GRAY2BGR), colour=(30, 30, 30))
    check = plate_check(grey)
    assert check.level == "plate", check.reason
    assert check.line is not None and not check.line.dark_on_light and check.cut == check.line
    tinted = grey.copy()
    tinted[..., 1] = np.clip(tinted[..., 1].astype(np.int16) + 40, 0, 255)  # a colour camera's green cast
    coloured = plate_check(tinted)
    assert coloured.level == "maybe" and coloured.whole and coloured.cut is not None and not coloured.cut.dark_on_light
