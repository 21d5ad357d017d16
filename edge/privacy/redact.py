"""Irreversible face redaction, and the :class:`Redactor` that fails closed.

:func:`redact` is a pure function: it returns a new image in which every face box, grown by a
margin and clipped to the image, is painted over with one flat colour, the mean of a thin ring just
outside it. That is the node's one redaction method: nothing of the face is left to undo (a blur can
be partly reversed; a mosaic keeps a face's layout, which detectors still fire on).

:class:`Redactor` is what the node runs on every image that may leave it. Any error from the
detector, a run over the time budget, or a second pass that still finds a face in the output
raises :class:`RedactionFailed`, and the caller drops the image (the read goes without it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.clock import monotonic_ns
from edge.domain import Box, Image, Redaction, View
from edge.privacy import FaceDetector

log = logging.getLogger(__name__)

FILL_VALUE = 128  # mid grey, for a region with no surroundings (it covers the whole image)
RING = 3  # pixels around a region whose mean colour fills it
INSIDE_SHARE = 0.9  # a second-pass box this much inside redacted pixels shows nothing of a face


class RedactionFailed(Exception):  # noqa: N818 - the name says what the caller must handle
    """The image could not be redacted with certainty: drop it.

    ``regions`` are the areas the first pass redacted (empty when the detector failed); ``reason``
    is one of ``detector_error``, ``timeout``, ``second_pass``.
    """

    def __init__(self, message: str, *, reason: str, regions: Sequence[Box] = ()) -> None:
        super().__init__(message)
        self.reason = reason
        self.regions = tuple(regions)


def redaction_regions(boxes: Sequence[Box], *, margin: float, width: int, height: int) -> list[Box]:
    """Each box grown by ``margin`` (a share of its size, every side) and clipped; empty ones dropped."""
    if margin < 0:
        raise ValueError(f"margin {margin} must be >= 0")
    grown = (b.expanded(margin).clipped(width, height) for b in boxes)
    return [b for b in grown if b.area > 0]


def without_covered(regions: Sequence[Box], *, width: int, height: int) -> list[Box]:
    """``regions`` less each one lying wholly inside those before it (two boxes on one face, a face inside a
    crowd's patches): the same pixels are painted over, in fewer regions."""
    kept: list[Box] = []
    for r in regions:
        if not kept or share_inside(r, kept, width=width, height=height) < 1.0:
            kept.append(r)
    return kept


def cabin_region(plate: Box, *, width: int, height: int, half_width: float = 2.2, top: float = 3.0,
                 bottom: float = 0.6) -> Box:
    """The windscreen and front side windows of the vehicle whose plate is ``plate``, clipped; never the plate.

    In plate widths (a UK plate is 520 mm; a car about 3.5 plates wide): ``half_width`` either side of
    the plate's centre, from ``top`` to ``bottom`` above the plate's top edge. Measured on the toll-lane
    video (a car seen from a raised camera, 20 degrees off axis): its windscreen runs from 1.0 to 2.5 plate
    widths above the plate, its side window to 3 plate widths to one side of it; the bonnet between the
    plate and the windscreen (``bottom``) stays visible, and so does the plate. A lorry's cab is higher
    than this: there the face detector alone covers the driver. ``privacy.redact_cabin`` adds it to the
    faces found, as a second line of defence where the detector cannot see through glass.
    """
    pw = max(plate.w, 1)
    cx = plate.x + plate.w / 2.0
    x0, x1 = round(cx - half_width * pw), round(cx + half_width * pw)
    y0, y1 = round(plate.y - top * pw), min(plate.y, round(plate.y - bottom * pw))
    return Box(x0, y0, x1 - x0, max(0, y1 - y0)).clipped(width, height)


VEHICLE_HEIGHT = 6  # plate widths above the plate where a vehicle's occupants can be (a lorry's cab included)
MIN_ZOOM = 1.3  # the vehicle look is worth a model run only when it shows the vehicle at least this much larger
MAX_OTHERS = 3  # other vehicles (plates read in the same frame) given their own look, nearest (widest plate) first


def vehicle_window(plate: Box, *, width: int, height: int) -> Box | None:
    """The part of the image around the vehicle with ``plate``, of the image's own shape, for a second look.

    It is ``VEHICLE_HEIGHT`` plate widths tall, ending at the plate's top edge, centred on the plate and moved
    (not cut) to stay inside the image. Having the image's shape, a detector sees it the way it sees the whole
    image (one model input for a 16:9 frame), only enlarged by ``height / window height``: None when that is
    under ``MIN_ZOOM`` (a near vehicle, already large in the whole image's look).
    """
    tall = VEHICLE_HEIGHT * max(plate.w, 1)
    if tall * MIN_ZOOM > height:
        return None
    wide = min(width, round(tall * width / height))
    x = min(max(0, round(plate.x + plate.w / 2 - wide / 2)), width - wide)
    y = min(max(0, plate.y - tall), height - tall)
    return Box(x, y, wide, tall)


def other_vehicles(others: Sequence[Box], plate: Box | None) -> list[Box]:
    """The plates of other vehicles worth their own look: not touching ``plate`` (the read's own, already looked at)
    nor one kept before them, at most ``MAX_OTHERS``, widest (nearest) first. A lorry behind the car that was read
    shows its driver in the car's overview; in the whole frame his 15-pixel face scores too low to count."""
    kept: list[Box] = []
    for box in sorted(others, key=lambda b: (-b.w, b.x, b.y)):
        if len(kept) == MAX_OTHERS:
            break
        if (plate is None or box.intersection(plate) == 0) and all(box.intersection(k) == 0 for k in kept):
            kept.append(box)
    return kept


def carry(faces: Sequence[Box], source_plate: Box, plate: Box) -> list[Box]:
    """Face boxes found in another frame of a pass, moved into this one with the vehicle: kept where they were
    against the plate (its centre), scaled by its width. Only faces on the vehicle are carried: centred within
    3 plate widths either side of the plate and from 6 above it to 1 below (drivers, passengers)."""
    scale = plate.w / max(1, source_plate.w)
    (sx, sy), (cx, cy) = source_plate.centre, plate.centre
    pw = max(1, source_plate.w)
    out = []
    for f in faces:
        fx, fy = f.centre
        if abs(fx - sx) > 3 * pw or not source_plate.y - 6 * pw <= fy <= source_plate.y + source_plate.h + pw:
            continue
        w, h = f.w * scale, f.h * scale
        x, y = cx + (fx - sx) * scale - w / 2, cy + (fy - sy) * scale - h / 2
        out.append(Box(round(x), round(y), round(w), round(h)))
    return out


def share_inside(box: Box, regions: Sequence[Box], *, width: int, height: int) -> float:
    """Share of ``box`` (clipped to the image) covered by the union of ``regions``; 1.0 for an empty box."""
    b = box.clipped(width, height)
    if b.area == 0:
        return 1.0
    mask = np.zeros((b.h, b.w), dtype=bool)
    for r in regions:
        x0, y0 = max(r.x, b.x) - b.x, max(r.y, b.y) - b.y
        x1, y1 = min(r.x + r.w, b.x + b.w) - b.x, min(r.y + r.h, b.y + b.h) - b.y
        if x1 > x0 and y1 > y0:
            mask[y0:y1, x0:x1] = True
    return float(mask.mean())


def redact(image: Image, boxes: Sequence[Box], *, margin: float) -> Image:
    """A copy of ``image`` with every box (grown by ``margin``, clipped) painted one flat colour.

    The colour is the mean of a thin ring around the region, taken from the output so far (so an
    earlier redacted face is not sampled). The input is never modified.
    """
    height, width = image.shape[:2]
    out = image.copy()
    for r in redaction_regions(boxes, margin=margin, width=width, height=height):
        out[r.y:r.y + r.h, r.x:r.x + r.w] = _surround_colour(out, r)
    return out


def _surround_colour(image: Image, r: Box) -> npt.NDArray[np.uint8]:
    """Mean colour of a thin ring just outside ``r`` (background only, nothing of the face inside).

    A flat patch in the colour of its surroundings is less salient than a grey block: it leaves no
    face-like blob for a second look (or another detector) to fire on, e.g. on a dark night frame.
    """
    height, width = image.shape[:2]
    outer = Box(r.x - RING, r.y - RING, r.w + 2 * RING, r.h + 2 * RING).clipped(width, height)
    block = image[outer.y:outer.y + outer.h, outer.x:outer.x + outer.w].astype(np.float64)
    inner = block[r.y - outer.y:r.y - outer.y + r.h, r.x - outer.x:r.x - outer.x + r.w]
    count = outer.area - r.area
    if count <= 0:
        return np.full(image.shape[2:], FILL_VALUE, dtype=np.uint8)
    total = block.sum(axis=(0, 1)) - inner.sum(axis=(0, 1))
    return np.asarray(np.round(total / count), dtype=np.uint8)


@dataclass(frozen=True, slots=True, eq=False)
class RedactionResult:
    """One redacted image, its record and the regions painted over."""

    image: Image
    record: Redaction
    regions: tuple[Box, ...]


class Redactor:
    """Detect faces, redact them (plus any carried-over boxes), check the output again; fail closed.

    ``second_pass`` may be the same detector object (None: no check). Faces it finds in the output
    are redacted too and the output checked again, ``rechecks`` times at most. ``budget_ms`` bounds
    the whole call (every pass), measured with ``clock_ns`` (monotonic); a detector cannot be
    interrupted mid-run, so an over-long run is refused when it returns. Not thread-safe when the detectors are not.
    """

    def __init__(self, detector: FaceDetector, *, margin: float, second_pass: FaceDetector | None,
                 detector_name: str, model_sha256: str, threshold: float, budget_ms: float | None = None,
                 rechecks: int = 1, clock_ns: Callable[[], int] = monotonic_ns,
                 vehicle_detector: FaceDetector | None = None) -> None:
        if margin < 0:
            raise ValueError(f"margin {margin} must be >= 0")
        if budget_ms is not None and budget_ms <= 0:
            raise ValueError(f"budget_ms {budget_ms} must be > 0 (or None for no time limit)")
        if rechecks < 0:
            raise ValueError(f"rechecks {rechecks} must be >= 0 (0: the first face the second pass finds fails)")
        self.detector = detector
        # the look at a vehicle's window (its occupants): where a face is expected, a small one counts too
        self.vehicle_detector = detector if vehicle_detector is None else vehicle_detector
        self.rechecks = rechecks
        self.second_pass = second_pass
        self.margin = margin
        self.budget_ms = budget_ms
        self.detector_name = detector_name
        self.model_sha256 = model_sha256
        self.threshold = threshold
        self._clock_ns = clock_ns

    def faces(self, image: Image) -> list[Box]:
        """First-pass face boxes (image pixels), e.g. to carry to the next frames of a vehicle pass."""
        return self._detect(self.detector, image, "detector", [])

    def redact_image(self, image: Image, extra_boxes: Sequence[Box] = (), *, views: Sequence[View] = (),
                     plate: Box | None = None, others: Sequence[Box] = ()) -> tuple[Image, Redaction]:
        """Redacted copy of ``image`` and its record; raises :class:`RedactionFailed` instead of leaking.

        ``extra_boxes`` (image pixels) are redacted too (a cabin region, say). With ``plate`` (its box in this
        image), the detector also looks again, enlarged, at the vehicle around it (:func:`vehicle_window`): a
        driver's face behind glass, 15 pixels tall, scores far higher at twice the size. ``views`` are other
        frames of the same pass: faces found on the vehicle there (the same enlarged look) are carried into
        this image by the plate's move, so a face the detector misses in this frame is still covered. ``others`` are
        the plates of other vehicles in this image: each gets the same enlarged look (see :func:`other_vehicles`).
        """
        result = self.run(image, extra_boxes, views=views, plate=plate, others=others)
        return result.image, result.record

    def run(self, image: Image, extra_boxes: Sequence[Box] = (), *, views: Sequence[View] = (),
            plate: Box | None = None, others: Sequence[Box] = ()) -> RedactionResult:
        """Like :meth:`redact_image`, also returning the regions painted over and the faces found.

        A second-pass detection lying at least ``INSIDE_SHARE`` inside redacted pixels is the detector
        reacting to the edge of a filled region, not a visible face, and is ignored. When the second pass finds faces
        elsewhere (often a face the first pass saw only in context, or a face-like patch next to
        one), they are added and the original redacted again, up to ``rechecks`` times; a face
        still found after the last recheck fails the image.
        """
        start = self._clock_ns()
        faces = self.faces(image)
        self._check_time(start, "first pass", [])
        height, width = image.shape[:2]
        boxes = [*faces, *extra_boxes]
        if plate is not None:
            boxes += self._on_vehicle(image, plate, whole=False)
            for view in views:
                boxes += carry(self._on_vehicle(view.image, view.plate, whole=True), view.plate, plate)
        for other in other_vehicles(others, plate):
            boxes += self._on_vehicle(image, other, whole=False)
        if plate is not None or others:
            self._check_time(start, "faces on the vehicle", [])
        for attempt in range(self.rechecks + 1):
            regions = without_covered(redaction_regions(boxes, margin=self.margin, width=width, height=height),
                                      width=width, height=height)
            out = redact(image, regions, margin=0.0)
            if self.second_pass is None:
                break
            found = self._detect(self.second_pass, out, "second-pass detector", regions)
            left = [b for b in found if share_inside(b, regions, width=width, height=height) < INSIDE_SHARE]
            if not left:
                break
            if attempt == self.rechecks:
                raise RedactionFailed(
                    f"second pass found {len(left)} face(s) after redaction at {[_fmt(b) for b in left]} "
                    f"({self.rechecks} recheck(s) allowed): image dropped", reason="second_pass", regions=regions,
                )
            log.debug("second pass found %d more face(s); redacting them too", len(left))
            boxes.extend(left)
            self._check_time(start, "redaction", regions)
        self._check_time(start, "redaction", regions)
        record = Redaction(
            detector=self.detector_name, model_sha256=self.model_sha256, threshold=self.threshold,
            regions=len(regions), second_pass_faces=0,
        )
        return RedactionResult(out, record, tuple(regions))

    def _on_vehicle(self, image: Image, plate: Box, *, whole: bool) -> list[Box]:
        """The detector's faces in :func:`vehicle_window` around ``plate``, looked at on its own (so enlarged); where
        that would not enlarge it, the faces of the whole image when ``whole`` (another frame of the pass, not
        looked at yet), else none (the whole image was just looked at)."""
        height, width = image.shape[:2]
        r = vehicle_window(plate, width=width, height=height)
        if r is None:
            return self._detect(self.detector, image, "detector", []) if whole else []
        crop = image[r.y:r.y + r.h, r.x:r.x + r.w]
        found = self._detect(self.vehicle_detector, crop, "detector", [])
        return [Box(b.x + r.x, b.y + r.y, b.w, b.h) for b in found]

    def _detect(self, detector: FaceDetector, image: Image, what: str, regions: Sequence[Box]) -> list[Box]:
        try:
            return list(detector.detect(image))
        except Exception as exc:  # fail closed on anything the detector raises (re-raised below)
            raise RedactionFailed(
                f"{what} {self.detector_name} failed ({type(exc).__name__}: {exc}): image dropped",
                reason="detector_error", regions=regions,
            ) from exc

    def _check_time(self, start_ns: int, what: str, regions: Sequence[Box]) -> None:
        if self.budget_ms is None:
            return
        spent_ms = (self._clock_ns() - start_ns) / 1e6
        if spent_ms > self.budget_ms:
            raise RedactionFailed(
                f"{what} took {spent_ms:.1f} ms, over the budget of {self.budget_ms:g} ms: image dropped",
                reason="timeout", regions=regions,
            )


def _fmt(b: Box) -> str:
    return f"{b.w}x{b.h}+{b.x}+{b.y}"
