"""Fragments of one plate are not more vehicles, and loose (dateless) or short reads need more evidence.

The cases come from a UK car park: a parked car with a yellow plate 173 D 441 and a GB sticker beside it,
whose crops of part of the plate (and of the sticker with the plate's D44) read O441, 1304O and GBO44, each
of which fits the UK dateless format.
"""

from __future__ import annotations

from dataclasses import replace

from track_builders import FRAME, at, sighting

from edge.config.model import TrackConfig
from edge.domain import FormatMatch, PlateRead, VehiclePass
from edge.track import PlateTracker
from edge.track.tracker import fragment_of

PLATE = (640.0, 400.0, 120.0)  # centre x, y and width of the parked car's plate


def dateless(text: str, frame: int, x: float, y: float, w: float, *, whole: bool = True) -> PlateRead:
    read = sighting(text, frame, x, y, w)
    return replace(read, match=FormatMatch(text, "uk_dateless", False, text), whole=whole)


def diplomatic(frame: int) -> PlateRead:
    read = sighting("173D441", frame, *PLATE)
    return replace(read, match=FormatMatch("173D441", "uk_diplomatic", False, "173D 441"))


def run(tracker: PlateTracker, frames: dict[int, list[PlateRead]], until: int) -> list[VehiclePass]:
    out: list[VehiclePass] = []
    for i in range(until + 1):
        out += tracker.update(at(i), frames.get(i, []), FRAME)
    return [p for p in out + tracker.flush() if not p.preview]


def test_fragment_texts_are_parts_of_the_plate_allowing_a_misread_and_others_are_not() -> None:
    assert fragment_of("O441", "173D441") and fragment_of("1304O", "173D441") and fragment_of("GBO44", "173D441")
    assert not fragment_of("173D441", "173D441")  # not shorter
    assert not fragment_of("M1", "AB12CDE") and not fragment_of("AB12", "PG05UVT")


def test_a_fragment_read_beside_the_full_read_in_the_same_frames_is_no_second_vehicle() -> None:
    x, y, w = PLATE
    frames = {i: [diplomatic(i), dateless("O441", i, x + w / 4, y, w / 2)] for i in range(0, 75, 3)}
    tracker = PlateTracker(TrackConfig())
    assert [p.plate for p in run(tracker, frames, 100)] == ["173D441"]
    assert tracker.fragments == len(frames)


def test_a_sticker_read_with_part_of_the_plate_beside_it_is_no_second_vehicle() -> None:
    x, y, w = PLATE
    sticker = x - w / 2 - 20  # a GB sticker just left of the plate, the box running into the plate's D44
    frames = {i: [diplomatic(i), dateless("GBO44", i, sticker + 10, y, 70)] for i in range(0, 75, 3)}
    assert [p.plate for p in run(PlateTracker(TrackConfig()), frames, 100)] == ["173D441"]


def test_a_fragment_track_that_began_before_the_plate_was_read_whole_is_not_published() -> None:
    # the camera walks up: first only part of the plate reads (1304O, a crop overlapping the plate), then all of it
    x, y, w = PLATE
    frames: dict[int, list[PlateRead]] = {i: [dateless("1304O", i, x - w / 6, y, w * 0.6)] for i in range(0, 30, 3)}
    for i in range(30, 90, 3):
        frames[i] = [diplomatic(i), dateless("1304O", i, x - w / 6, y, w * 0.6, whole=False)]
    tracker = PlateTracker(TrackConfig())
    assert [p.plate for p in run(tracker, frames, 120)] == ["173D441"]


def test_a_short_read_beside_a_longer_one_is_still_a_fragment() -> None:
    x, y, w = PLATE
    frames = {i: [sighting("AB12CDE", i, x, y, w), dateless("12", i, x - 5, y, w / 4)] for i in range(0, 75, 3)}
    assert [p.plate for p in run(PlateTracker(TrackConfig()), frames, 100)] == ["AB12CDE"]


def test_a_dateless_read_seen_twice_is_not_yet_a_pass() -> None:
    frames = {i: [dateless("AB123", i, *PLATE)] for i in (0, 3)}
    tracker = PlateTracker(TrackConfig())
    assert run(tracker, frames, 60) == []
    assert tracker.weak_passes == 1


def test_a_dateless_read_needs_whole_plate_crops_however_often_seen() -> None:
    frames = {i: [dateless("AB123", i, *PLATE, whole=False)] for i in range(0, 30, 3)}
    assert run(PlateTracker(TrackConfig()), frames, 60) == []


def test_a_dateless_plate_seen_often_from_whole_plate_crops_is_published() -> None:
    frames = {i: [dateless("AB123", i, *PLATE)] for i in range(0, 30, 3)}
    assert [p.plate for p in run(PlateTracker(TrackConfig()), frames, 60)] == ["AB123"]


def test_a_short_genuine_plate_is_published_on_strong_evidence_only() -> None:
    strong = {i: [dateless("M1", i, *PLATE)] for i in range(0, 30, 3)}
    weak = {i: [dateless("M1", i, *PLATE)] for i in (0, 3, 6)}
    assert [p.plate for p in run(PlateTracker(TrackConfig()), strong, 60)] == ["M1"]
    assert run(PlateTracker(TrackConfig()), weak, 60) == []


def test_a_current_format_plate_needs_no_more_than_before() -> None:
    frames = {i: [replace(sighting("AB12CDE", i, *PLATE), whole=False)] for i in (0, 3)}
    assert [p.plate for p in run(PlateTracker(TrackConfig()), frames, 60)] == ["AB12CDE"]
