"""The 'edges' detector: rows of character blobs become plate boxes, on rendered plates in cluttered scenes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.detect.edges import Blob, EdgeDetectorOptions, EdgePlateDetector, char_blobs, char_rows, linked_rows
from edge.domain import Box
from edge.imaging import component_stats
from edge.sample.plates import render_plate


def _scene(plates: list[tuple[str, int, tuple[int, int], float]], *, seed: int = 1,
           size: tuple[int, int] = (640, 360)) -> tuple[np.ndarray, list[Box]]:
    """Plates (text, char height, top-left, angle in degrees) on a noisy grey-brown background."""
    rng = np.random.default_rng(seed)
    image = np.full((size[1], size[0], 3), (60, 70, 80), np.uint8)
    image = cv2.add(image, rng.integers(0, 30, image.shape, dtype=np.uint8))
    cv2.rectangle(image, (20, 20), (200, 120), (140, 140, 150), -1)  # a car-body-like panel
    boxes = []
    for k, (text, char_h, (x, y), angle) in enumerate(plates):
        plate = render_plate(text, char_height=char_h, rear=k % 2 == 1)
        h, w = plate.shape[:2]
        if angle:  # turn the plate on a patch of the background, so its corners are not cut
            pad = round(w * 0.1)
            patch = image[y - pad : y + h + pad, x - pad : x + w + pad].copy()
            patch[pad : pad + h, pad : pad + w] = plate
            mask = np.zeros(patch.shape[:2], np.uint8)
            mask[pad : pad + h, pad : pad + w] = 255
            m = cv2.getRotationMatrix2D((pad + w / 2, pad + h / 2), angle, 1.0)
            size = (patch.shape[1], patch.shape[0])
            turned = cv2.warpAffine(patch, m, size, flags=cv2.INTER_LINEAR)
            inside = cv2.warpAffine(mask, m, size) > 127
            region = image[y - pad : y + h + pad, x - pad : x + w + pad]
            region[inside] = turned[inside]
        else:
            image[y : y + h, x : x + w] = plate
        boxes.append(Box(x, y, w, h))
    return cv2.GaussianBlur(image, (3, 3), 0), boxes


@pytest.mark.parametrize(("char_h", "angle"), [(10, 0.0), (16, 0.0), (24, 3.0), (36, -4.0)])
def test_finds_one_plate_at_several_sizes_and_slants(char_h: int, angle: float) -> None:
    image, boxes = _scene([("AB12 CDE", char_h, (150, 150), angle)])
    found = EdgePlateDetector().detect(image)
    assert found, "no plate found"
    assert max(boxes[0].iou(d.box) for d in found) >= 0.5
    assert all(0.0 <= d.confidence <= 1.0 for d in found)


def test_finds_every_plate_in_a_frame() -> None:
    image, boxes = _scene([("AB12 CDE", 14, (40, 200), 0.0), ("XY61 ZZB", 14, (380, 60), 0.0),
                           ("K123 ABC", 18, (330, 250), 2.0)])
    found = EdgePlateDetector().detect(image)
    for box in boxes:
        assert max(box.iou(d.box) for d in found) >= 0.5, f"plate at {box} missed"


def test_a_frame_without_characters_gives_nothing() -> None:
    image, _ = _scene([])
    assert EdgePlateDetector().detect(image) == []


def test_a_short_row_is_not_a_plate() -> None:
    image, _ = _scene([("AB", 20, (150, 150), 0.0)])
    assert EdgePlateDetector().detect(image) == []


def test_light_characters_on_dark_plates_need_the_inverted_polarity() -> None:
    plate = 255 - render_plate("AB12 CDE", char_height=20)
    image = np.full((360, 640, 3), 120, np.uint8)
    image[150 : 150 + plate.shape[0], 100 : 100 + plate.shape[1]] = plate
    truth = Box(100, 150, plate.shape[1], plate.shape[0])
    assert all(truth.iou(d.box) < 0.5 for d in EdgePlateDetector().detect(image))
    found = EdgePlateDetector(EdgeDetectorOptions(light_on_dark=True)).detect(image)
    assert max(truth.iou(d.box) for d in found) >= 0.5


def test_blobs_of_one_row_are_grouped_and_a_stray_blob_is_not() -> None:
    image, _ = _scene([("AB12 CDE", 20, (150, 150), 0.0)])
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    rows = char_rows(char_blobs(grey, 31, 7, 90), 4, 12)
    assert len(rows) == 1 and len(rows[0]) == 7


def test_at_most_max_detections_are_returned() -> None:
    plates = [(t, 12, (30 + 300 * (k % 2), 30 + 80 * (k // 2)), 0.0)
              for k, t in enumerate(["AB12CDE", "BC23DEF", "CD34EFG", "DE45FGH", "EF56GHJ", "FG67HJK"])]
    image, _ = _scene(plates)
    assert len(EdgePlateDetector(EdgeDetectorOptions(max_detections=3)).detect(image)) == 3


def test_a_slanted_plate_scores_like_a_straight_one_beside_it() -> None:
    image, boxes = _scene([("AB12 CDE", 16, (40, 200), 0.0), ("K123 ABC", 16, (360, 150), 4.0)])
    found = EdgePlateDetector().detect(image)
    for box in boxes:
        assert max(box.iou(d.box) for d in found) >= 0.5, f"plate at {box} missed"


def _rows_one_pair_at_a_time(blobs: list[Blob], reach: float = 1.2,
                             max_overlap: float | None = 0.3) -> list[list[Blob]]:
    """The grouping char_rows does, written as the plain walk over pairs (the reference it must equal)."""
    order = sorted(range(len(blobs)), key=lambda i: blobs[i].x)
    parent = list(range(len(blobs)))

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for pos, i in enumerate(order):
        a = blobs[i]
        for j in order[pos + 1 :]:
            b = blobs[j]
            h = max(a.h, b.h)
            gap = b.x - (a.x + a.w)
            if gap > reach * h:
                break
            if max_overlap is not None and gap < -max_overlap * h:
                continue
            if h > 1.3 * min(a.h, b.h) or abs(a.cy - b.cy) > 0.3 * h:
                continue
            parent[find(j)] = find(i)
    groups: dict[int, list[Blob]] = {}
    for i, blob in enumerate(blobs):
        groups.setdefault(find(i), []).append(blob)
    return list(groups.values())


def _random_blobs(seed: int) -> list[Blob]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 120))
    heights = rng.choice([8, 9, 10, 12, 20, 30], size=n)
    return [Blob(int(rng.integers(0, 400)), int(rng.integers(0, 60)), int(max(1, h * rng.uniform(0.2, 1.5))), int(h))
            for h in heights]


@pytest.mark.parametrize("seed", range(20))
def test_rows_are_the_groups_of_the_walk_over_close_pairs(seed: int) -> None:
    blobs = _random_blobs(seed)
    assert char_rows(blobs, 1, 10_000) == _rows_one_pair_at_a_time(blobs)


@pytest.mark.parametrize("seed", range(20))
def test_rows_the_plate_check_links_farther_and_overlapping_are_the_groups_of_the_same_walk(seed: int) -> None:
    blobs = _random_blobs(100 + seed)
    assert linked_rows(blobs, reach=1.5, max_overlap=None) == _rows_one_pair_at_a_time(blobs, 1.5, None)


def test_components_are_found_as_opencv_s_default_labelling_finds_them() -> None:
    rng = np.random.default_rng(3)
    binary = np.where(rng.random((120, 200)) < 0.45, 255, 0).astype(np.uint8)
    _, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    assert np.array_equal(component_stats(binary), stats[1:])
