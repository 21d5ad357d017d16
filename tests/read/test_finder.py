"""PlateFinder: detect, read, and look again with a second detector only when nothing read as a plate."""

from __future__ import annotations

import datetime as dt

import cv2
import numpy as np

from edge.domain import Box, Image, PlateDetection, PlateText
from edge.read.finder import PlateFinder
from edge.read.formats import FormatSet
from edge.sample.plates import render_plate

DAY = dt.date(2026, 3, 14)
UK = FormatSet.load(["uk_current"])


class Boxes:
    """A detector that finds the same boxes in every image, and counts its calls."""

    def __init__(self, *boxes: Box) -> None:
        self.boxes, self.calls = boxes, 0

    def detect(self, image: Image) -> list[PlateDetection]:
        self.calls += 1
        return [PlateDetection(b, 0.9) for b in self.boxes]


class ReadByPlace:
    """Reads a crop by where it was cut: the crop's width picks the text (each test box has its own)."""

    def __init__(self, by_width: dict[int, str]) -> None:
        self.by_width = by_width

    def read(self, crop: Image) -> PlateText:
        text = self.by_width.get(crop.shape[1], "")
        return PlateText(text, tuple(0.95 for _ in text))


FULL = np.zeros((720, 1280, 3), np.uint8)
LORES = np.zeros((360, 640, 3), np.uint8)
FIRST = Box(100, 100, 50, 12)  # lores pixels; full-image crop width 100 + 2 * 12
SECOND = Box(98, 98, 60, 16)  # the same plate, as the second detector boxes it: crop width 120 + 2 * 14
ELSEWHERE = Box(400, 200, 40, 10)  # another place: crop width 80 + 2 * 10


def finder(reader: ReadByPlace, first: Boxes, second: Boxes | None, every: int = 1) -> PlateFinder:
    # blank images and a reader that reads by place: the plate check has nothing to look at
    return PlateFinder(first, reader, UK, min_confidence=0.5, second_look=second, second_look_every=every,
                       verify=False)


def texts(f: PlateFinder) -> list[str]:
    return [s.read.match.text for s in f.find(FULL, LORES, DAY).sightings if s.read and s.read.match]


def test_no_second_look_when_the_first_read_fits_a_format() -> None:
    second = Boxes(SECOND)
    assert texts(finder(ReadByPlace({124: "AB12CDE"}), Boxes(FIRST), second)) == ["AB12CDE"]
    assert second.calls == 0


def test_a_second_look_s_fitting_read_replaces_the_first_look_s_unfitted_one_of_the_same_plate() -> None:
    reader = ReadByPlace({124: "AB12", 148: "AB12CDE"})
    assert texts(finder(reader, Boxes(FIRST), Boxes(SECOND))) == ["AB12CDE"]


def test_a_plate_only_the_second_look_finds_is_added() -> None:
    reader = ReadByPlace({100: "XY51ABC"})
    got = finder(reader, Boxes(), Boxes(ELSEWHERE)).find(FULL, LORES, DAY)
    assert got.second_look
    assert [s.read.match.text for s in got.sightings if s.read and s.read.match] == ["XY51ABC"]
    assert got.sightings[0].detection.box == ELSEWHERE.scaled(2, 2)


def test_an_unfitted_second_look_read_of_the_same_plate_does_not_double_it() -> None:
    reader = ReadByPlace({124: "AB12", 148: "AB1"})
    got = finder(reader, Boxes(FIRST), Boxes(SECOND)).find(FULL, LORES, DAY)
    assert len(got.sightings) == 1


def test_the_second_look_runs_on_at_most_one_call_in_every_n() -> None:
    second = Boxes()
    f = finder(ReadByPlace({}), Boxes(), second, every=3)
    for _ in range(7):
        f.find(FULL, LORES, DAY)
    assert second.calls == 3  # calls 1, 4 and 7


class Sizes(Boxes):
    """Boxes that also keeps the size of every image it was given."""

    def __init__(self, *boxes: Box) -> None:
        super().__init__(*boxes)
        self.shapes: list[tuple[int, ...]] = []

    def detect(self, image: Image) -> list[PlateDetection]:
        self.shapes.append(image.shape[:2])
        return super().detect(image)


def test_the_fine_look_searches_the_full_image_shrunk_to_twice_the_lores_one() -> None:
    for full, seen in (((1080, 1920, 3), (720, 1280)), ((540, 960, 3), (540, 960))):
        fine = Sizes()
        f = PlateFinder(Boxes(), ReadByPlace({}), UK, min_confidence=0.5, fine_look=fine, verify=False)
        f.find(np.zeros(full, np.uint8), LORES, DAY)
        assert fine.shapes == [seen]


def test_a_plate_only_the_fine_look_finds_is_added_in_full_image_pixels() -> None:
    fine = Sizes(Box(200, 100, 50, 14))  # pixels of the 1280x720 image the fine look searched
    reader = ReadByPlace({50 + 2 * 6: "XY51ABC"})
    f = PlateFinder(Boxes(), reader, UK, min_confidence=0.5, fine_look=fine, verify=False)
    got = f.find(FULL, LORES, DAY)
    assert [s.read.match.text for s in got.sightings if s.read and s.read.match] == ["XY51ABC"]
    assert got.sightings[0].detection.box == Box(200, 100, 50, 14)


def test_no_fine_look_when_the_first_read_fits_a_format() -> None:
    fine = Sizes()
    f = PlateFinder(Boxes(FIRST), ReadByPlace({124: "AB12CDE"}), UK, min_confidence=0.5, fine_look=fine,
                    verify=False)
    f.find(FULL, LORES, DAY)
    assert fine.calls == 0


class Counting:
    """A reader that reads every crop as ``text`` and counts the crops it was given."""

    def __init__(self, text: str = "") -> None:
        self.text, self.calls = text, 0

    def read(self, crop: Image) -> PlateText:
        self.calls += 1
        return PlateText(self.text, tuple(0.95 for _ in self.text))


def _sign_and_plate() -> tuple[np.ndarray, Box, Box]:
    """A full image with a sign of two dark letters on a light patch (a crop that only may be a plate) and a
    rendered plate (one that looks like a plate); their boxes in the 640x360 lores image's pixels."""
    image = np.full((720, 1280, 3), (70, 75, 80), np.uint8)
    cv2.rectangle(image, (800, 300), (1040, 380), (235, 235, 235), -1)
    cv2.putText(image, "AB", (840, 364), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (20, 20, 20), 6)
    plate = render_plate("AB12 CDE", char_height=40)
    h, w = plate.shape[:2]
    image[400 : 400 + h, 200 : 200 + w] = plate
    return image, Box(400, 150, 120, 40), Box(100, 200, w // 2, h // 2)


def test_a_crop_that_only_may_be_a_plate_is_read_again_at_its_place_only_every_n_calls() -> None:
    image, sign, _ = _sign_and_plate()
    reader = Counting("AB")  # a sign's word: no plate
    f = PlateFinder(Boxes(sign), reader, UK, min_confidence=0.5, maybe_every=3)
    looks = [f.find(image, LORES, DAY).sightings[0].read for _ in range(7)]
    assert reader.calls == 3  # calls 1, 4 and 7
    assert all(r is not None and r.look == "maybe" and r.match is None for r in looks)
    assert [r.ocr for r in looks if r is not None] == [True, False, False, True, False, False, True]


def test_a_crop_that_looks_like_a_plate_is_read_on_every_call() -> None:
    image, _, plate = _sign_and_plate()
    reader = Counting("AB")  # read as no plate, but the crop looks like one: read again all the same
    f = PlateFinder(Boxes(plate), reader, UK, min_confidence=0.5, maybe_every=3)
    for _ in range(4):
        assert f.find(image, LORES, DAY).sightings[0].read.look == "plate"  # type: ignore[union-attr]
    assert reader.calls == 4


def test_every_crop_is_read_when_maybe_every_is_one_and_after_a_read_that_fits() -> None:
    image, sign, _ = _sign_and_plate()
    stills = Counting("AB")
    f = PlateFinder(Boxes(sign), stills, UK, min_confidence=0.5)  # eval's still images: the default
    for _ in range(3):
        f.find(image, LORES, DAY)
    fits = Counting("AB12CDE")  # a read that fits a format is never taken for no plate
    g = PlateFinder(Boxes(sign), fits, UK, min_confidence=0.5, maybe_every=3)
    for _ in range(3):
        g.find(image, LORES, DAY)
    assert (stills.calls, fits.calls) == (3, 3)


class InTurn:
    """A detector that finds the next list of boxes at each call."""

    def __init__(self, *turns: list[Box]) -> None:
        self.turns = list(turns)

    def detect(self, image: Image) -> list[PlateDetection]:
        return [PlateDetection(b, 0.9) for b in self.turns.pop(0)]


def test_a_crop_elsewhere_is_read_although_one_at_another_place_was_not_a_plate() -> None:
    image, sign, _ = _sign_and_plate()
    moved = np.roll(image, -300, axis=1)  # the sign 300 px (150 lores px) to the left in the next frame
    reader = Counting("AB")
    f = PlateFinder(InTurn([sign], [Box(sign.x - 150, sign.y, sign.w, sign.h)]), reader, UK, min_confidence=0.5,
                    maybe_every=3)
    f.find(image, LORES, DAY)
    f.find(moved, LORES, DAY)
    assert reader.calls == 2


def test_looks_fall_on_the_same_frames_whether_one_finder_or_it_and_a_twin_find_them() -> None:
    one = finder(ReadByPlace({}), Boxes(), Boxes(), every=10)
    alone = [one.find(FULL, LORES, DAY).second_look for _ in range(25)]
    first = finder(ReadByPlace({}), Boxes(), Boxes(), every=10)
    twin = first.twin(ReadByPlace({}))
    shared = [(first if k % 2 == 0 else twin).find(FULL, LORES, DAY, k).second_look for k in range(25)]
    assert shared == alone
    assert [k for k, looked in enumerate(alone) if looked] == [0, 10, 20]


def test_a_twin_keeps_the_settings_and_detectors_but_reads_with_its_own_reader() -> None:
    boxes = Boxes(FIRST)
    first = finder(ReadByPlace({124: "AB12CDE"}), boxes, None)
    twin = first.twin(ReadByPlace({124: "XY51ABC"}))
    assert texts(first) == ["AB12CDE"] and texts(twin) == ["XY51ABC"]
    assert boxes.calls == 2
