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
import threading
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

    ``second_look_every``: the second look may run on one frame in this many, those whose index it divides (a
    camera's next frames show the same vehicle; a still image is its only chance, so eval passes 1);
    ``fine_look_every`` likewise. Being due by the frame's index, not by when the last look ran, a look falls on
    the same frames however many workers find them.

    ``maybe_every``: a crop that only may be a plate (:func:`edge.read.line.plate_check`), at the place where
    such a crop was read as no plate in one of the last frames, is read on at most one frame in this many. A
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
        self._fine = fine_look
        self._fine_every = fine_look_every
        self._verify = verify
        self._timer = timer
        self._maybe_every = maybe_every
        self._calls = 0
        self._not_plates = _NotPlates(maybe_every)  # shared with twins

    def twin(self, reader: PlateReader) -> PlateFinder:
        """A finder for another worker: this one's settings, detectors, second look (which must be safe to call from
        several threads: OpenCV's detectors hold no state, a model's goes through :class:`edge.detect.InTurn`) and
        memory of places read as no plate, with its own ``reader``. Given each frame's ``index``, twins find in a
        frame what this finder would."""
        twin = PlateFinder(self._detector, reader, self._formats, min_confidence=self._min_confidence,
                           second_look=self._second, second_look_every=self._every, fine_look=self._fine,
                           fine_look_every=self._fine_every, verify=self._verify, maybe_every=self._maybe_every,
                           timer=self._timer)
        twin._not_plates = self._not_plates
        return twin

    def find(self, image: Image, lores: Image, captured_on: dt.date, index: int | None = None) -> Finding:
        """The plates of ``image``; detectors run on ``lores`` (the same view, smaller or equal), the fine look
        on ``image`` shrunk to at most twice ``lores``. ``index``: the frame's place among those given to find
        (default: this finder's count of calls), which says when the fine and second looks are due."""
        index = self._calls if index is None else index
        self._calls += 1
        t0 = self._timer()
        first = _scaled(self._detector.detect(lores), image, lores)
        detect_s = self._timer() - t0
        skip = self._not_plates.near(index)
        sightings = self._read(image, first, captured_on, index, skip)
        read_s = self._timer() - t0 - detect_s
        looked_again = False
        if self._fine is not None and index % self._fine_every == 0 and not any(s.fits for s in sightings):
            t1 = self._timer()
            mid = fine_image(image, lores)
            more = _scaled(self._fine.detect(mid), image, mid)
            t2 = self._timer()
            sightings = _merge(sightings, self._read(image, more, captured_on, index, skip, only_plates=True))
            detect_s += t2 - t1
            read_s += self._timer() - t2
        second = self._second if index % self._every == 0 and not any(s.fits for s in sightings) else None
        if second is not None:
            looked_again = True
            t1 = self._timer()
            more = _scaled(second.detect(lores), image, lores)
            t2 = self._timer()
            sightings = _merge(sightings, self._read(image, more, captured_on, index, skip))
            detect_s += t2 - t1
            read_s += self._timer() - t2
        return Finding(tuple(sightings), detect_s * 1000.0, read_s * 1000.0, looked_again)

    def _read(self, image: Image, found: list[PlateDetection], captured_on: dt.date, index: int,
              skip: list[Box], *, only_plates: bool = False) -> list[Sighting]:
        sightings = []
        for det in found:
            read_maybe = not any(det.box.iou(b) >= SAME_PLACE_IOU for b in skip)
            got = read_box(image, det.box, self._reader, self._formats, captured_on,
                           min_confidence=self._min_confidence, corners=det.corners, verify=self._verify,
                           only_plates=only_plates, read_maybe=read_maybe)
            sighting = Sighting(det, got)
            if self._maybe_every > 1 and got is not None and got.look == "maybe" and got.ocr and not sighting.fits:
                self._not_plates.add(det.box, index)
            sightings.append(sighting)
        return sightings


class _NotPlates:
    """Where a crop that only may be a plate read as no plate, and in which frame (by index): such a crop at the
    same place is not read again in the next ``every - 1`` frames. Shared by a finder and its twins (thread-safe);
    a frame still being found on another worker has not told its places yet, so its crops are read then."""

    def __init__(self, every: int) -> None:
        self._every = every
        self._seen: list[tuple[Box, int]] = []
        self._lock = threading.Lock()

    def add(self, box: Box, index: int) -> None:
        with self._lock:
            self._seen.append((box, index))

    def near(self, index: int) -> list[Box]:
        """The places read as no plate in the ``every - 1`` frames before ``index`` (none in a frame ``every``
        divides: there every crop is read again)."""
        with self._lock:
            self._seen = [(b, n) for b, n in self._seen if index - n < 2 * self._every]  # forget the old ones
            if index % self._every == 0:
                return []
            return [b for b, n in self._seen if 0 < index - n < self._every]


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
