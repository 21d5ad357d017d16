"""Find and read the plates of one frame: detect on the low-resolution image, read from the full one.

The first detector (``detect.backend``) is cheap and runs on every frame it is given. When none of its
boxes reads as a plate of an allowed format, a *second look* (``detect.second_look``, a slower detector
that finds what the first misses: small, dark or slanted plates) runs on the same image, and its boxes
are read too (straightened from their corners where the detector gives them); where both found the same
plate, the read that fits a format is kept. The pipeline and ``edge-anpr eval plates`` both go through
:class:`PlateFinder`, so eval scores what the node does.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from edge.detect import PlateDetector
from edge.domain import Box, Image, PlateDetection
from edge.read import PlateReader
from edge.read.crop import CropRead, FormatMatcher, read_box

SAME_PLATE_IOU = 0.1  # a second-look box overlapping a first-look one this much is the same plate
SAME_PLACE_IOU = 0.5  # a box overlapping one of an earlier call this much is at the same place


@dataclass(frozen=True, slots=True)
class Sighting:
    """One detection in full-image pixels and what reading it gave (None: too small to read)."""

    detection: PlateDetection
    read: CropRead | None

    @property
    def fits(self) -> bool:
        """Read as a mark of an allowed format."""
        return self.read is not None and self.read.match is not None and self.read.match.format_name is not None


@dataclass(frozen=True, slots=True)
class Finding:
    """A frame's sightings, with the time spent detecting and reading."""

    sightings: tuple[Sighting, ...]
    detect_ms: float
    read_ms: float
    second_look: bool  # the second detector ran


class PlateFinder:
    """Detect, read, and look again with ``second_look`` when nothing read as a plate.

    ``second_look_every``: the second look runs on at most one call in this many (a camera's next frames
    show the same vehicle; a still image is its only chance, so eval passes 1).

    ``maybe_every``: a crop that only may be a plate (:func:`edge.read.line.plate_check`), at the place where
    such a crop was read as no plate in one of the last calls, is read on at most one call in this many. A
    camera's next frames show the same sign, wall or road marking at about the same place, and its read is
    the same; a crop that looks like a plate is always read. 1 (eval's still images): every crop is read.
    """

    def __init__(
        self,
        detector: PlateDetector,
        reader: PlateReader,
        formats: FormatMatcher,
        *,
        min_confidence: float,
        second_look: PlateDetector | None = None,
        second_look_every: int = 1,
        fine_look: PlateDetector | None = None,
        fine_look_every: int = 1,
        verify: bool = True,
        maybe_every: int = 1,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        if second_look_every < 1 or fine_look_every < 1 or maybe_every < 1:
            raise ValueError(f"second_look_every, fine_look_every and maybe_every must be >= 1, got "
                             f"{second_look_every!r}, {fine_look_every!r} and {maybe_every!r}")
        self._detector = detector
        self._reader = reader
        self._formats = formats
        self._min_confidence = min_confidence
        self._second = second_look
        self._every = second_look_every
        self._since_second = second_look_every  # so the first call may look again
        self._fine = fine_look
        self._fine_every = fine_look_every
        self._since_fine = fine_look_every
        self._verify = verify
        self._timer = timer
        self._maybe_every = maybe_every
        self._calls = 0
        self._not_plates: list[tuple[Box, int]] = []  # where a maybe-crop read as no plate, and on which call

    def twin(self, reader: PlateReader, *, worker: int = 1, workers: int = 2) -> PlateFinder:
        """A finder for another worker: this one's settings, detectors and second look (which must be safe to call
        from both: OpenCV's detectors hold no state, a model's goes through :class:`edge.detect.InTurn`), its own
        ``reader``, and its own count of looks and skips (of the frames it is given). Worker ``worker`` of
        ``workers`` takes its first second and fine looks that share of their period later, so the workers'
        looks fall between each other's rather than together (they would wait for the one second-look model)."""
        twin = PlateFinder(self._detector, reader, self._formats, min_confidence=self._min_confidence,
                           second_look=self._second, second_look_every=self._every, fine_look=self._fine,
                           fine_look_every=self._fine_every, verify=self._verify, maybe_every=self._maybe_every,
                           timer=self._timer)
        twin._since_second = self._every - (worker * self._every) // workers
        twin._since_fine = self._fine_every - (worker * self._fine_every) // workers
        return twin

    def find(self, image: Image, lores: Image, captured_on: dt.date) -> Finding:
        """The plates of ``image``; detectors run on ``lores`` (the same view, smaller or equal), the fine look
        on ``image`` shrunk to at most twice ``lores``."""
        self._calls += 1
        self._not_plates = [(b, n) for b, n in self._not_plates if self._calls - n < self._maybe_every]
        t0 = self._timer()
        first = _scaled(self._detector.detect(lores), image, lores)
        detect_s = self._timer() - t0
        sightings = self._read(image, first, captured_on)
        read_s = self._timer() - t0 - detect_s
        self._since_fine += 1
        self._since_second += 1
        looked_again = False
        if self._fine is not None and self._since_fine >= self._fine_every and not any(s.fits for s in sightings):
            self._since_fine = 0
            t1 = self._timer()
            mid = fine_image(image, lores)
            more = _scaled(self._fine.detect(mid), image, mid)
            t2 = self._timer()
            sightings = _merge(sightings, self._read(image, more, captured_on, only_plates=True))
            detect_s += t2 - t1
            read_s += self._timer() - t2
        second = self._second if self._since_second >= self._every and not any(s.fits for s in sightings) else None
        if second is not None:
            self._since_second = 0
            looked_again = True
            t1 = self._timer()
            more = _scaled(second.detect(lores), image, lores)
            t2 = self._timer()
            sightings = _merge(sightings, self._read(image, more, captured_on))
            detect_s += t2 - t1
            read_s += self._timer() - t2
        return Finding(tuple(sightings), detect_s * 1000.0, read_s * 1000.0, looked_again)

    def _read(self, image: Image, found: list[PlateDetection], captured_on: dt.date, *,
              only_plates: bool = False) -> list[Sighting]:
        sightings = []
        for det in found:
            read_maybe = not any(det.box.iou(b) >= SAME_PLACE_IOU for b, _ in self._not_plates)
            got = read_box(image, det.box, self._reader, self._formats, captured_on,
                           min_confidence=self._min_confidence, corners=det.corners, verify=self._verify,
                           only_plates=only_plates, read_maybe=read_maybe)
            sighting = Sighting(det, got)
            if self._maybe_every > 1 and got is not None and got.look == "maybe" and got.ocr and not sighting.fits:
                self._not_plates.append((det.box, self._calls))
            sightings.append(sighting)
        return sightings


def fine_image(image: Image, lores: Image) -> Image:
    """The image the fine look searches: ``image`` shrunk to at most twice ``lores``'s width and height."""
    return shrunk(image, 2 * lores.shape[1], 2 * lores.shape[0])


def shrunk(image: Image, width: int, height: int) -> Image:
    """``image`` shrunk (never enlarged), keeping its shape, to at most ``width`` x ``height``."""
    scale = min(1.0, width / image.shape[1], height / image.shape[0])
    if scale >= 1.0:
        return image
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)


def _scaled(found: list[PlateDetection], image: Image, seen: Image) -> list[PlateDetection]:
    """Detections made on ``seen`` in ``image``'s pixels."""
    sx, sy = image.shape[1] / seen.shape[1], image.shape[0] / seen.shape[0]
    return [d.scaled(sx, sy) for d in found]


def _merge(first: list[Sighting], second: list[Sighting]) -> list[Sighting]:
    """Both looks' sightings, one per plate: where boxes of the two overlap (the same plate), a second-look
    read that fits a format replaces the first look's (which did not: that is why it looked again), and
    one that does not fit is dropped."""
    def same(a: Sighting, b: Sighting) -> bool:
        return a.detection.box.iou(b.detection.box) >= SAME_PLATE_IOU

    better = [s for s in second if s.fits]
    kept = [f for f in first if not any(same(f, b) for b in better)]
    new = [s for s in second if s.fits or not any(same(s, f) for f in first)]
    return kept + new
