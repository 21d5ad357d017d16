"""Redaction is irreversible, respects margin and clipping, and the Redactor fails closed."""

from __future__ import annotations

import numpy as np
import pytest

from edge.domain import Box, Image
from edge.privacy.faces import FailingFaceDetector, StaticFaceDetector
from edge.privacy.redact import (
    RedactionFailed,
    Redactor,
    cabin_region,
    carry,
    redact,
    redaction_regions,
    share_inside,
)


def _texture(h: int = 120, w: int = 160, seed: int = 1) -> Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    base[::2, ::2] = 255  # fine checkerboard detail a blur would smear but keep
    return base


def _flat(region: Image) -> bool:
    return bool((region == region.reshape(-1, region.shape[-1])[0]).all())


def _redactor(detector: object, second: object | None = None, **kw: object) -> Redactor:
    return Redactor(
        detector,  # type: ignore[arg-type]
        margin=kw.pop("margin", 0.0),  # type: ignore[arg-type]
        second_pass=second,  # type: ignore[arg-type]
        detector_name="fake", model_sha256="ab" * 32, threshold=0.5,
        **kw,  # type: ignore[arg-type]
    )


def test_fill_replaces_the_face_with_one_flat_colour_and_keeps_the_rest() -> None:
    image = _texture()
    original = image.copy()
    out = redact(image, [Box(40, 30, 50, 50)], margin=0.0)
    np.testing.assert_array_equal(image, original)  # the input is never modified
    assert _flat(out[30:80, 40:90])
    outside = np.ones(out.shape[:2], dtype=bool)
    outside[30:80, 40:90] = False
    np.testing.assert_array_equal(out[outside], original[outside])


def test_fill_paints_the_region_flat_in_the_colour_of_its_surroundings_whatever_was_inside() -> None:
    a = np.full((60, 80, 3), (60, 80, 100), np.uint8)
    b = a.copy()
    a[10:40, 10:30] = _texture(30, 20, seed=1)
    b[10:40, 10:30] = _texture(30, 20, seed=2)  # another face in the same place
    out_a = redact(a, [Box(10, 10, 20, 30)], margin=0.0)
    out_b = redact(b, [Box(10, 10, 20, 30)], margin=0.0)
    np.testing.assert_array_equal(out_a, out_b)  # nothing of the face is left to tell them apart
    assert (out_a[10:40, 10:30] == (60, 80, 100)).all()


def test_margin_grows_each_box_and_clips_it_to_the_image() -> None:
    regions = redaction_regions([Box(-5, 100, 40, 20), Box(60, 50, 20, 20)], margin=0.5, width=160, height=120)
    assert regions == [Box(0, 90, 55, 30), Box(50, 40, 40, 40)]
    out = redact(_texture(), [Box(150, 110, 20, 20)], margin=0.25)
    assert _flat(out[105:120, 145:160])
    assert not _flat(out[104:120, 144:160])
    assert out.shape == (120, 160, 3)
    assert redaction_regions([Box(500, 500, 10, 10)], margin=0.2, width=160, height=120) == []


def test_grey_infrared_frames_are_redacted_too() -> None:
    grey = _texture()[:, :, 0].copy()
    out = redact(grey, [Box(0, 0, 30, 30)], margin=0.0)
    assert out.shape == grey.shape
    assert not np.array_equal(out[:30, :30], grey[:30, :30])
    assert (out[:30, :30] == out[0, 0]).all()


def test_redactor_covers_detected_and_carried_over_boxes_and_records_what_it_did() -> None:
    detector = StaticFaceDetector([Box(10, 10, 20, 20)])
    redactor = _redactor(detector, StaticFaceDetector([]), margin=0.25)
    out, record = redactor.redact_image(_texture(), extra_boxes=[Box(100, 60, 20, 20)])
    assert _flat(out[5:35, 5:35])
    assert _flat(out[55:85, 95:125])
    assert (record.detector, record.threshold, record.regions, record.second_pass_faces) == ("fake", 0.5, 2, 0)
    assert record.model_sha256 == "ab" * 32


def test_a_raising_detector_fails_closed() -> None:
    redactor = _redactor(FailingFaceDetector(OSError("model file vanished")))
    with pytest.raises(RedactionFailed, match="model file vanished") as err:
        redactor.redact_image(_texture())
    assert err.value.reason == "detector_error"
    assert isinstance(err.value.__cause__, OSError)


def test_a_raising_second_pass_fails_closed() -> None:
    with pytest.raises(RedactionFailed) as err:
        _redactor(StaticFaceDetector([Box(0, 0, 10, 10)]), FailingFaceDetector()).redact_image(_texture())
    assert err.value.reason == "detector_error"
    assert err.value.regions == (Box(0, 0, 10, 10),)


def test_running_over_the_time_budget_fails_closed() -> None:
    ticks = iter(range(0, 10**9, 30_000_000))  # every clock read is 30 ms later (monotonic ns)
    redactor = _redactor(StaticFaceDetector([]), StaticFaceDetector([]), budget_ms=20.0,
                         clock_ns=lambda: next(ticks))
    with pytest.raises(RedactionFailed, match=r"took 30\.0 ms, over the budget of 20 ms") as err:
        redactor.redact_image(_texture())
    assert err.value.reason == "timeout"


def test_within_budget_passes() -> None:
    redactor = _redactor(StaticFaceDetector([]), StaticFaceDetector([]), budget_ms=5_000.0)
    out, record = redactor.redact_image(_texture())
    assert record.regions == 0
    np.testing.assert_array_equal(out, _texture())


def test_a_face_the_second_pass_still_finds_fails_closed() -> None:
    leftover = StaticFaceDetector([Box(100, 60, 20, 20)])
    redactor = _redactor(StaticFaceDetector([Box(10, 10, 20, 20)]), leftover, rechecks=0)
    with pytest.raises(RedactionFailed, match=r"second pass found 1 face\(s\).*20x20\+100\+60") as err:
        redactor.redact_image(_texture())
    assert err.value.reason == "second_pass"


class _SeesFaceUntilCovered:
    """Second pass that reports a face wherever the pixels are still the original ones."""

    def __init__(self, original: Image, box: Box) -> None:
        self.original, self.box = original, box

    def detect(self, image: Image) -> list[Box]:
        b = self.box
        same = np.array_equal(image[b.y:b.y + b.h, b.x:b.x + b.w], self.original[b.y:b.y + b.h, b.x:b.x + b.w])
        return [b] if same else []


def test_a_face_found_only_by_the_second_pass_is_redacted_on_recheck() -> None:
    image = _texture()
    missed = Box(100, 60, 20, 20)
    redactor = _redactor(StaticFaceDetector([Box(10, 10, 20, 20)]), _SeesFaceUntilCovered(image, missed),
                         rechecks=1)
    out, record = redactor.redact_image(image)
    assert record.regions == 2
    assert _flat(out[60:80, 100:120])


def test_a_second_pass_hit_inside_redacted_pixels_is_the_fill_not_a_face() -> None:
    face = Box(10, 10, 40, 40)
    redactor = _redactor(StaticFaceDetector([face]), StaticFaceDetector([Box(12, 12, 30, 30)]), rechecks=0)
    _, record = redactor.redact_image(_texture())
    assert record.second_pass_faces == 0
    assert share_inside(Box(12, 12, 30, 30), [face], width=160, height=120) == 1.0
    assert share_inside(Box(40, 10, 20, 10), [face], width=160, height=120) == 0.5


def test_cabin_region_sits_above_the_plate_and_is_clipped() -> None:
    cabin = cabin_region(Box(900, 900, 100, 22), width=1920, height=1080)
    assert cabin == Box(730, 600, 440, 240)  # 2.2 plate widths either side, 3.0 to 0.6 above the plate
    assert cabin.y + cabin.h < 900  # never the plate
    assert cabin_region(Box(0, 100, 100, 22), width=1920, height=1080) == Box(0, 0, 270, 40)


def test_faces_of_another_frame_move_with_the_plate_and_only_the_vehicles_are_carried() -> None:
    then, now = Box(100, 400, 50, 12), Box(300, 500, 100, 24)  # the vehicle came closer: plate twice as wide
    driver = Box(110, 300, 20, 24)  # above the plate, on the vehicle
    pedestrian = Box(600, 300, 20, 24)  # far to the side: not carried
    (moved,) = carry([driver, pedestrian], then, now)
    assert moved == Box(320, 300, 40, 48)  # the same place against the plate, twice the size
    assert carry([], then, now) == []


def test_redactor_covers_a_face_found_only_in_another_frame_of_the_pass() -> None:
    from edge.domain import View

    class OnlyInTheView:  # finds the face in the earlier frame (all 7s), nothing in this one
        def detect(self, image: Image) -> list[Box]:
            return [Box(110, 20, 20, 24)] if int(image[0, 0, 0]) == 7 else []

    view = View(plate=Box(100, 100, 50, 12), image=np.full((120, 160, 3), 7, np.uint8))
    result = _redactor(OnlyInTheView()).run(_texture(), views=[view], plate=Box(100, 100, 50, 12))
    assert result.regions == (Box(110, 20, 20, 24),)
    assert _flat(result.image[20:44, 110:130])


def test_with_the_plate_the_detector_looks_again_at_the_vehicle_on_its_own_in_the_images_shape() -> None:
    from edge.privacy.redact import vehicle_window

    class Sizes:  # finds a face only when shown the vehicle's window (which it sees enlarged)
        def __init__(self) -> None:
            self.shapes: list[tuple[int, ...]] = []

        def detect(self, image: Image) -> list[Box]:
            self.shapes.append(image.shape)
            return [Box(10, 12, 8, 9)] if image.shape[:2] == (60, 80) else []

    plate = Box(75, 100, 10, 3)
    assert vehicle_window(plate, width=160, height=120) == Box(40, 40, 80, 60)  # 6 plate widths tall, 4:3
    detector = Sizes()
    result = _redactor(detector).run(_texture(), plate=plate)
    assert detector.shapes == [(120, 160, 3), (60, 80, 3)]  # the whole image, then the vehicle on its own
    assert result.regions == (Box(50, 52, 8, 9),)  # found in the window, redacted in the image


def test_the_vehicle_window_stays_inside_the_image_and_is_skipped_where_it_would_not_enlarge() -> None:
    from edge.privacy.redact import vehicle_window

    assert vehicle_window(Box(1900, 1000, 60, 14), width=1920, height=1080) == Box(1280, 640, 640, 360)
    assert vehicle_window(Box(900, 900, 140, 30), width=1920, height=1080) is None  # 840 px tall: under 1.3x
    detector = StaticFaceDetector()
    _redactor(detector, None).run(_texture(), plate=Box(40, 100, 40, 10))
    assert detector.calls == 1  # the whole image only


def test_a_region_wholly_inside_the_ones_before_it_is_not_painted_again() -> None:
    from edge.privacy.redact import without_covered

    big, inside, astride, apart = Box(10, 10, 40, 40), Box(20, 20, 10, 10), Box(40, 10, 20, 20), Box(80, 80, 10, 10)
    assert without_covered([big, inside, astride, apart], width=160, height=120) == [big, astride, apart]
    assert without_covered([inside, big], width=160, height=120) == [inside, big]  # a later, larger one stays


def test_another_vehicle_in_the_frame_gets_its_own_look_at_its_driver() -> None:
    from edge.privacy.redact import other_vehicles, vehicle_window

    class OnlyEnlarged:  # finds the lorry driver's face only in the lorry's window
        def detect(self, image: Image) -> list[Box]:
            return [Box(10, 12, 8, 9)] if image.shape[:2] == (60, 80) else []

    car, lorry = Box(20, 100, 30, 8), Box(75, 100, 10, 3)
    assert vehicle_window(lorry, width=160, height=120) == Box(40, 40, 80, 60)
    result = _redactor(OnlyEnlarged()).run(_texture(), plate=car, others=[lorry])
    assert Box(50, 52, 8, 9) in result.regions  # the lorry driver, found in his vehicle's window
    assert _flat(result.image[52:61, 50:58])
    # the read's own plate and a second box on a plate already kept get no look of their own; nearest first
    assert other_vehicles([Box(22, 101, 10, 3), lorry, Box(76, 100, 8, 3), Box(130, 10, 20, 5)], car) == [
        Box(130, 10, 20, 5), lorry]
