"""Direction of travel from a track's boxes (edge.track.motion.direction_of), on synthetic tracks.

The tracks are built as a camera sees them: a plate ``w`` px wide (UK aspect 4.7), its box jittered by
a few pixels as a detector's is, sometimes cut, loose, or stray.
"""

from __future__ import annotations

import random

from edge.domain import Box
from edge.track.motion import direction_of

FRAME = (1280, 720)
FPS = 20.0


def plate(cx: float, cy: float, w: float, *, jitter: float = 0.0, rng: random.Random | None = None) -> Box:
    h = w / 4.7
    if rng is not None and jitter:
        cx, cy = cx + rng.uniform(-jitter, jitter), cy + rng.uniform(-jitter, jitter)
        w, h = w + rng.uniform(-jitter, jitter), h + rng.uniform(-jitter / 2, jitter / 2)
    return Box(round(cx - w / 2), round(cy - h / 2), round(w), round(h))


def times(n: int) -> list[float]:
    return [i / FPS for i in range(n)]


def test_a_plate_that_grows_head_on_without_moving_is_approaching() -> None:
    # camera at plate height, straight ahead: the plate only grows (25 -> 56 px, the toll-lane truck)
    boxes = [plate(640, 400, 25 + 31 * i / 59) for i in range(60)]
    assert direction_of(times(60), boxes, FRAME)[0] == "approaching"


def test_a_plate_that_shrinks_head_on_without_moving_is_receding() -> None:
    boxes = [plate(640, 400, 120 - 60 * i / 39) for i in range(40)]
    assert direction_of(times(40), boxes, FRAME)[0] == "receding"


def test_noisy_boxes_with_outliers_still_give_the_direction() -> None:
    rng = random.Random(5)
    boxes = [plate(640, 300 + 3 * i, 40 + 1.2 * i, jitter=4.0, rng=rng) for i in range(50)]
    for i in rng.sample(range(50), 12):  # a quarter of the boxes loose or cut: half or twice the size
        b = boxes[i]
        boxes[i] = Box(b.x, b.y, b.w * 2 if i % 2 else b.w // 2, b.h * 2 if i % 2 else b.h)
    assert direction_of(times(50), boxes, FRAME)[0] == "approaching"
    assert direction_of(times(50), boxes[::-1], FRAME)[0] == "receding"


def test_a_vehicle_that_waits_then_drives_out_of_the_bottom_is_approaching() -> None:
    # the toll-lane car: at the booth for 2 s, then 30 px down and out of the frame, the plate no bigger
    # (it is close, and turning); the last boxes are cut by the frame's bottom edge
    boxes = [plate(514, 677, 118) for _ in range(36)]
    boxes += [plate(514 - 4 * i, 677 + 3 * i, 118) for i in range(1, 10)]
    boxes += [Box(400, 700, 80, 20), Box(396, 702, 70, 18)]
    assert direction_of(times(len(boxes)), boxes, FRAME)[0] == "approaching"


def test_a_stray_box_at_the_start_does_not_turn_an_approach_into_a_recession() -> None:
    # the toll-lane red car: a tall stray box and a loose box first, then a plate turning as it comes down
    boxes = [Box(518, 260, 112, 40), Box(488, 524, 88, 42)]
    boxes += [plate(494 - 20 * i, 584 + 11 * i, 76 + (i % 3) * 4) for i in range(11)]
    assert direction_of(times(len(boxes)), boxes, FRAME)[0] == "approaching"


def test_a_vehicle_crossing_the_view_has_no_direction_but_an_angle() -> None:
    rng = random.Random(1)
    boxes = [plate(100 + 25 * i, 400 + 0.3 * i, 90, jitter=2.0, rng=rng) for i in range(40)]
    direction, angle = direction_of(times(40), boxes, FRAME)
    assert direction is None
    assert angle is not None
    assert abs(angle) < 10


def test_a_parked_plate_with_jittery_boxes_has_no_direction() -> None:
    rng = random.Random(2)
    boxes = [plate(640, 400, 80, jitter=4.0, rng=rng) for _ in range(200)]
    assert direction_of(times(200), boxes, FRAME) == (None, None)


def test_too_few_sightings_or_no_time_tell_nothing() -> None:
    boxes = [plate(640, 400 + 40 * i, 60 + 30 * i) for i in range(3)]
    assert direction_of([0.0, 0.1], boxes[:2], FRAME) == (None, None)
    assert direction_of([0.0, 0.0, 0.0], boxes, FRAME) == (None, None)
    assert direction_of([0.0, 0.1, 0.2], boxes, FRAME)[0] == "approaching"
