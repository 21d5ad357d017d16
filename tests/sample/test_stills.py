"""Labelled still sets of plates (sample-plates): what eval plates reads, by day and under an IR lamp at night."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.evaluate.plates import read_labels
from edge.imaging import monochrome
from edge.sample.stills import render_still, write_set


def test_a_still_is_the_same_for_the_same_seed_and_index_and_differs_by_index() -> None:
    a, b = render_still(3, 0, size=(640, 360)), render_still(3, 0, size=(640, 360))
    assert np.array_equal(a.image, b.image) and a.plate == b.plate and a.box == b.box
    assert render_still(3, 1, size=(640, 360)).plate != a.plate


def test_a_night_frame_is_monochrome_and_its_plate_glows_above_the_bodywork_around_it() -> None:
    for i in range(6):
        still = render_still(5, i, size=(640, 360))
        assert monochrome(still.image)
        b = still.box
        assert b.x >= 0 and b.x + b.w <= 640 and b.y >= 0 and b.y + b.h <= 360
        plate = still.image[b.y : b.y + b.h, b.x : b.x + b.w].mean()
        below = still.image[min(359, b.y + b.h + 2) : min(360, b.y + 2 * b.h), b.x : b.x + b.w].mean()
        assert plate > below


def test_a_day_frame_is_in_colour() -> None:
    assert not monochrome(render_still(5, 0, look="day", size=(640, 360)).image)


def test_a_set_is_written_as_eval_plates_reads_it(tmp_path: Path) -> None:
    write_set(tmp_path / "frames", seed=1, count=3, size=(320, 180))
    write_set(tmp_path / "crops", seed=1, count=3, kind="crops", size=(320, 180))
    frames, crops = read_labels(tmp_path / "frames"), read_labels(tmp_path / "crops")
    assert len(frames) == 3 and all((tmp_path / "frames" / f).is_file() for f in frames)
    assert [p[0].plate for p in frames.values()] == [p[0].plate for p in crops.values()]
    crop = render_still(1, 0, kind="crops", size=(320, 180))
    assert crop.box.x == 0 and crop.box.y == 0 and (crop.box.h, crop.box.w) == crop.image.shape[:2]
