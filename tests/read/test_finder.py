"""PlateFinder: detect, read, and look again with a second detector only when nothing read as a plate."""

from __future__ import annotations

import datetime as dt

import numpy as np

from edge.domain import Box, Image, PlateDetection, PlateText
from edge.read.finder import PlateFinder
from edge.read.formats import FormatSet

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
