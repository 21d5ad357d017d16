"""``edge-anpr aim``: help mount and zoom the camera by measuring how wide plates appear, in pixels.

OpenALPR's camera guide: European plates need about 90 px of width (at the resolution the plate is
read at: here the ``main`` stream) for reliable reads, and there is no gain beyond about 250 px;
wider than that only narrows the field of view. ``aim`` finds and reads plates as the node
does (:class:`edge.read.finder.PlateFinder`: the configured detector, its second look, the OCR and the
registration formats; not the node's fine look for plates too small for the detection stream, which on a
single frame adds false fits such as a foreign plate's fragment read as a UK dateless mark)
over the configured camera, or over a video, image folder, stream or single
image given on the command line, and measures only *plates*: from a camera or a recording, the vehicle
passes the node would publish (tracked and voted by the node's own tracker, fitting one of its formats,
or any with ``read.publish_unfitted``), each measured once, in the frame it was read best; from a single
image, the boxes whose read fits a format. Boxes on signs, walls and booths are counted but never
measured, and with no plate read it says so instead of advising on false boxes. It
writes an annotated still (plates with their widths, other boxes in thin orange, a 90 px ruler). The still
shows the street, so faces in it are redacted with the node's face model first; if that model cannot
run, no still is written unless ``--unredacted``.

For setting the shutter it reports, per vehicle, how fast its plate crossed the image (px/s, followed through
the frames around its best one), the exposure time (a Pi camera's ``ExposureTime`` metadata of that frame; a
recording's ``--exposure-us``) and the motion blur that makes (px = speed x exposure time), with the longest
shutter that keeps the fastest plate under ``MAX_BLUR_PX``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from edge.config import Config, load_config
from edge.config.lab import lab_config
from edge.domain import Box, Frame, Image, PlateRead, VehiclePass
from edge.errors import ModelError, SourceError
from edge.read.finder import PlateFinder, Sighting
from edge.read.formats import FormatSet
from edge.track import PlateTracker

log = logging.getLogger(__name__)

MIN_PLATE_PX = 90  # OpenALPR camera guide, European plates
MAX_BLUR_PX = 1.0  # motion blur kept under this: a 90 px UK plate's strokes (14 of 520 mm) are about 2.4 px thick
SPEED_FRAMES = 5  # detected frames either side of a plate's best frame its speed is measured over
MAX_USEFUL_PX = 250  # no gain beyond this
CAMERA_FRAMES = 250  # frames looked at from a camera or stream by default (10 s at 25 fps)
DEFAULT_CONFIG = "/etc/edge-anpr/config.yaml"
STILL_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True, slots=True)
class PlateBlur:
    """One vehicle's plate: how fast it moved across the image and how far it moved while the shutter was open."""

    plate: str
    width_px: int
    speed_px_s: float | None  # None: not seen in two frames at different times
    exposure_us: int | None  # None: not known (a recording without --exposure-us)

    @property
    def blur_px(self) -> float | None:
        """Pixels of motion blur: speed (px/s) x exposure time (s)."""
        if self.speed_px_s is None or self.exposure_us is None:
            return None
        return self.speed_px_s * self.exposure_us / 1e6

    def as_dict(self) -> dict[str, object]:
        blur = self.blur_px
        return {"plate": self.plate, "width_px": self.width_px, "exposure_us": self.exposure_us,
                "speed_px_s": None if self.speed_px_s is None else round(self.speed_px_s, 1),
                "blur_px": None if blur is None else round(blur, 2)}


def shutter_advice(plates: Iterable[PlateBlur]) -> tuple[bool | None, str]:
    """(blur within MAX_BLUR_PX, what to set): judged at the fastest plate; None when nothing could be measured."""
    moving = [p for p in plates if p.speed_px_s is not None and p.speed_px_s > 0]
    if not moving:
        return None, "no plate was seen moving in two frames: no shutter advice"
    fastest = max(moving, key=lambda p: p.speed_px_s or 0.0)
    speed = fastest.speed_px_s or 0.0
    longest_us = int(MAX_BLUR_PX / speed * 1e6)
    hint = (f"a shutter of at most {longest_us} us (1/{max(1, round(1e6 / longest_us))} s) keeps blur under "
            f"{MAX_BLUR_PX:g} px at the fastest plate ({speed:.0f} px/s): capture.exposure.<profile>.exposure_time_us")
    blur = fastest.blur_px
    if blur is None:
        return None, f"exposure time unknown (give --exposure-us for a recording); {hint}"
    if blur > MAX_BLUR_PX:
        return False, f"the fastest plate blurs {blur:.1f} px at {fastest.exposure_us} us: {hint}"
    return True, f"the fastest plate blurs {blur:.2f} px at {fastest.exposure_us} us, within {MAX_BLUR_PX:g} px"


def plate_speed(index: int, box: Box, seen: dict[int, tuple[datetime, tuple[Box, ...]]]) -> float | None:
    """Pixels per second the plate in ``box`` (frame ``index``) moved: followed through up to SPEED_FRAMES detected
    frames before and after by the box that overlaps it most, and measured between the first and last found."""
    order = sorted(seen)
    if index not in seen:
        return None
    at = order.index(index)
    ends: list[tuple[datetime, Box]] = []
    for step in (-1, 1):
        current, end = box, (seen[index][0], box)
        for k in range(at + step, at + step * (SPEED_FRAMES + 1), step):
            if not 0 <= k < len(order):
                break
            when, boxes = seen[order[k]]
            near = max(boxes, key=lambda b: _follows(current, b), default=None)
            if near is None or _follows(current, near) <= 0:
                break
            current, end = near, (when, near)
        ends.append(end)
    (t0, b0), (t1, b1) = ends
    dt = (t1 - t0).total_seconds()
    if dt <= 0:
        return None
    (x0, y0), (x1, y1) = b0.centre, b1.centre
    return float(np.hypot(x1 - x0, y1 - y0) / dt)


def _follows(a: Box, b: Box) -> float:
    """How well ``b`` continues ``a`` in the next frame: overlap, or close centres of boxes of about one size."""
    if a.iou(b) > 0:
        return 1.0 + a.iou(b)
    (ax, ay), (bx, by) = a.centre, b.centre
    near = np.hypot(ax - bx, ay - by) < max(a.w, b.w) and 0.5 <= b.w / max(1, a.w) <= 2.0
    return 0.5 if near else 0.0


@dataclass(frozen=True, slots=True)
class AimReport:
    frames: int
    widths: tuple[int, ...]  # full-resolution widths of the boxes that read as plates, one per sighting
    boxes: int = 0  # every box the detectors proposed, plates or not
    formats: tuple[str, ...] = ()  # the formats a plate must fit (for the advice when none did)
    blur: tuple[PlateBlur, ...] = ()  # per vehicle: speed, exposure and motion blur (a camera or a recording)

    @property
    def median(self) -> float | None:
        return float(statistics.median(self.widths)) if self.widths else None

    def verdict(self) -> tuple[bool, str]:
        """(good enough, what to do): judged on the median width of the plates read, never on other boxes."""
        median = self.median
        if median is None:
            seen = (f"{self.boxes} box(es) were found but none read as a plate"
                    + (f" of the allowed formats ({', '.join(self.formats)})" if self.formats else "")
                    if self.boxes else "no plate-like box was found")
            return False, (f"no plate read in {self.frames} frame(s): {seen}. Check the camera points at the lane "
                           f"and run again while traffic passes; if plates here are of other formats, set "
                           f"read.country or read.formats")
        if median < MIN_PLATE_PX:
            return False, (f"plates are {median:.0f} px wide, below the {MIN_PLATE_PX} px needed: zoom in or mount "
                           f"the camera closer to the lane")
        if median > MAX_USEFUL_PX:
            return True, (f"plates are {median:.0f} px wide; above {MAX_USEFUL_PX} px brings no gain: you may zoom "
                          f"out to cover more of the lane")
        return True, f"plates are {median:.0f} px wide: within {MIN_PLATE_PX}-{MAX_USEFUL_PX} px, good"


def reads_as_plate(sighting: Sighting, *, unfitted: bool = False, min_chars: int = 2) -> bool:
    """Whether a box read as a plate the node would publish: its read fits an allowed format, or (``unfitted``:
    read.publish_unfitted) it is a confident read of at least ``min_chars`` characters."""
    if sighting.fits:
        return True
    read = sighting.read
    return unfitted and read is not None and read.match is not None and len(read.match.text) >= min_chars


def annotate(image: Image, plates: Iterable[Box], others: Iterable[Box] = ()) -> Image:
    """A copy of ``image`` with each plate's box and width in px (green when >= 90 px, red below), the boxes that
    did not read as plates in thin orange, and a 90 px ruler."""
    out = image.copy()
    for box in others:
        cv2.rectangle(out, (box.x, box.y), (box.x + box.w, box.y + box.h), (0, 165, 255), 1)
    for box in plates:
        colour = (0, 200, 0) if box.w >= MIN_PLATE_PX else (0, 0, 230)
        cv2.rectangle(out, (box.x, box.y), (box.x + box.w, box.y + box.h), colour, 2)
        cv2.putText(out, f"{box.w}px", (box.x, max(12, box.y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1,
                    cv2.LINE_AA)
    h = out.shape[0]
    y = h - 12
    cv2.line(out, (10, y), (10 + MIN_PLATE_PX, y), (255, 255, 255), 3)
    cv2.line(out, (10, y), (10 + MIN_PLATE_PX, y), (0, 0, 0), 1)
    cv2.putText(out, f"{MIN_PLATE_PX}px minimum", (16 + MIN_PLATE_PX, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                (255, 255, 255), 1, cv2.LINE_AA)
    return np.asarray(out, dtype=np.uint8)


@dataclass(frozen=True, slots=True)
class Survey:
    report: AimReport
    image: Image | None  # the still: the frame of the widest plate read (with none read, the most boxes)
    plates: tuple[Box, ...]  # the plates read in that frame
    others: tuple[Box, ...]  # that frame's boxes that did not read as plates


def survey(
    frames: Iterable[Frame],
    finder: PlateFinder,
    max_frames: int | None,
    *,
    tracker: PlateTracker | None = None,
    is_plate: Callable[[Sighting], bool] = reads_as_plate,
    unfitted: bool = False,
    formats: tuple[str, ...] = (),
    exposure_us: Callable[[], int | None] | None = None,
) -> Survey:
    """Find and read plates in up to ``max_frames`` frames (None: all). Only plates are measured.

    With a ``tracker`` (a camera or a recording) a plate is a vehicle pass the node would publish: tracked over
    frames, voted, fitting a format (any, with ``unfitted``), measured in the frame it was read best, once per
    vehicle. Without one (a single image) it is a box whose read ``is_plate``. ``exposure_us`` says the exposure
    time of the frame just taken (a camera's metadata; a recording's given one): with it each vehicle's motion blur
    is reported.
    """
    widths: list[int] = []
    boxes_in: dict[int, tuple[Box, ...]] = {}  # frame index -> every box found in it (for the still)
    count = boxes = 0
    best: tuple[tuple[int, int], Survey] | None = None
    passes: list[VehiclePass] = []
    seen: dict[int, tuple[datetime, tuple[Box, ...]]] = {}  # frame index -> (time, boxes read as plates)
    exposures: dict[int, int | None] = {}
    blur: tuple[PlateBlur, ...] = ()
    for frame in frames:
        count += 1
        finding = finder.find(frame.image, frame.lores, frame.timestamp.date())
        found = tuple(s.detection.box for s in finding.sightings)
        boxes += len(found)
        if tracker is not None:
            boxes_in[frame.index] = found
            reads = _reads(frame, finding.sightings)
            seen[frame.index] = (frame.timestamp, tuple(r.detection.box for r in reads))
            exposures[frame.index] = exposure_us() if exposure_us is not None else None
            passes += tracker.update(frame.timestamp, reads, frame.image)
            plates: tuple[Box, ...] = ()
        else:
            plates = tuple(s.detection.box for s in finding.sightings if is_plate(s))
            widths.extend(b.w for b in plates)
        key = (max((b.w for b in plates), default=0), len(found))
        if best is None or key > best[0]:
            best = (key, Survey(AimReport(0, ()), frame.image, plates, tuple(b for b in found if b not in plates)))
        if max_frames is not None and count >= max_frames:
            break
    if tracker is not None:
        passes += tracker.flush()
        read = [p for p in passes if not p.preview and (p.format_name is not None or unfitted)]
        widths = [p.best.detection.box.w for p in read]
        blur = tuple(PlateBlur(p.plate, p.best.detection.box.w,
                               plate_speed(p.best.frame_index, p.best.detection.box, seen),
                               exposures.get(p.best.frame_index)) for p in read)
        if read:
            widest = max(read, key=lambda p: p.best.detection.box.w)
            plate = widest.best.detection.box
            others = tuple(b for b in boxes_in.get(widest.best.frame_index, ()) if b != plate)
            best = ((plate.w, 0), Survey(AimReport(0, ()), widest.overview, (plate,), others))
    report = AimReport(count, tuple(widths), boxes, formats, blur)
    if best is None:
        return Survey(report, None, (), ())
    return Survey(report, best[1].image, best[1].plates, best[1].others)


def _reads(frame: Frame, sightings: Iterable[Sighting]) -> list[PlateRead]:
    """The reads the node's tracker takes from a frame's sightings (as the pipeline makes them)."""
    return [PlateRead(frame.index, frame.timestamp, s.detection, s.read.text, s.read.match, s.read.crop, s.read.whole)
            for s in sightings if s.read is not None and s.read.match is not None]


def write_still(path: Path, image: Image, plates: Iterable[Box], others: Iterable[Box], config: Config, *,
                unredacted: bool) -> str:
    if not unredacted:
        from edge.app import node_redactor

        redactor = node_redactor(config)
        if redactor is None:
            raise ModelError(f"the face model {config.privacy.face_model} cannot run, so no still is written (it "
                             f"could show faces); fix the models or pass --unredacted on a closed test bench")
        image, record = redactor.redact_image(image)
        note = f"{record.regions} face region(s) redacted"
    else:
        note = "NOT redacted (--unredacted)"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), annotate(image, plates, others)):
        raise OSError(f"cannot write {path}")
    return note


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Measure how wide plates appear (px at the reading resolution) and write an annotated still: from the "
        "configured camera, or from a video, image folder, stream URL or single image given as SOURCE. Only "
        "boxes that read as plates of the node's formats count; signs and other text are counted apart."
    )
    parser.add_argument("source", nargs="?", metavar="SOURCE",
                        help="a video file, image file, image folder or stream URL instead of the configured camera "
                             "(without --config: the replay's lab defaults)")
    parser.add_argument("--config", "-c", default=None,
                        help=f"config (default: {DEFAULT_CONFIG}; with SOURCE: the lab defaults)")
    parser.add_argument("--frames", type=int, default=None,
                        help=f"frames to look at (default: {CAMERA_FRAMES} from a camera or stream, 10 s; every "
                             f"frame of a file)")
    parser.add_argument("--out", default="aim.jpg", help="annotated still (default: %(default)s)")
    parser.add_argument("--unredacted", action="store_true", help="write the still without face redaction (bench)")
    parser.add_argument("--exposure-us", type=int, default=None, metavar="US",
                        help="the exposure time a recording was taken with, for its motion blur (a camera says its "
                             "own per frame)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def aim_config(source: str | None, config_file: str | None) -> Config:
    """The node's config (``config_file``, default DEFAULT_CONFIG); with ``source``, its capture replaced by that
    source, and without ``config_file`` the replay's lab defaults (the models from the project)."""
    if source is None:
        return load_config(config_file or DEFAULT_CONFIG)
    if "://" not in source and not Path(source).exists():
        raise SourceError(f"{source!r} does not exist (a video file, image file, image folder or stream URL)")
    return lab_config(source, config_file=config_file)  # the same config a replay of this source runs with


def still_frame(path: Path, lores_size: tuple[int, int]) -> Frame:
    """A single image as a frame (timed now)."""
    from edge.capture.video import make_lores

    raw = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if raw is None:
        raise SourceError(f"image {str(path)!r} cannot be decoded")
    image = np.ascontiguousarray(raw, dtype=np.uint8)
    return Frame(0, datetime.now(UTC), image, make_lores(image, lores_size))


def _finder(config: Config, formats: FormatSet, *, single_image: bool) -> PlateFinder:
    """The node's own find-and-read path, as configured (a single image gets the second look, as in eval)."""
    from edge.detect.factory import build_detector, build_second_look
    from edge.read.factory import build_reader

    return PlateFinder(build_detector(config.detect), build_reader(config.read, formats=formats), formats,
                       min_confidence=config.read.min_confidence, second_look=build_second_look(config.detect),
                       second_look_every=1 if single_image else config.detect.second_look_every)


def _frames(
    config: Config, source: str | None, exposure_us: int | None = None
) -> tuple[Iterator[Frame], int | None, Callable[[], int | None]]:
    """The frames to survey, how many at most by default (a camera's or stream's: CAMERA_FRAMES), and the exposure
    time of the frame just taken (the camera's metadata, else ``exposure_us``)."""
    from edge.app import LIVE_SOURCES, build_source
    from edge.clock import SystemClock

    if source is not None and Path(source).is_file() and Path(source).suffix.lower() in STILL_SUFFIXES:
        return iter([still_frame(Path(source), config.capture.lores_size)]), 1, lambda: exposure_us
    limit = CAMERA_FRAMES if config.capture.source in LIVE_SOURCES else None
    built = build_source(config, SystemClock())

    def exposure() -> int | None:
        measured = getattr(getattr(built, "state", None), "exposure_us", None)  # a Pi camera's ExposureTime
        return measured if isinstance(measured, int) else exposure_us

    return built.frames(), limit, exposure


def main(args: argparse.Namespace) -> int:
    config = aim_config(args.source, args.config)
    if args.frames is not None and args.frames < 1:
        raise SourceError(f"--frames {args.frames}: must be at least 1")
    if args.exposure_us is not None and args.exposure_us < 1:
        raise SourceError(f"--exposure-us {args.exposure_us}: must be at least 1 (microseconds)")
    frames, default_limit, exposure = _frames(config, args.source, args.exposure_us)
    single = default_limit == 1
    formats = FormatSet.load(config.read.formats, config.read.formats_file, config.read.country)
    finder = _finder(config, formats, single_image=single)
    tracker = None if single else PlateTracker(config.track, formats)
    unfitted = config.read.publish_unfitted or not formats.formats  # as open_node: with no formats, nothing fits
    rule = partial(reads_as_plate, unfitted=unfitted, min_chars=config.track.min_chars)
    try:
        found = survey(frames, finder, args.frames or default_limit, tracker=tracker, is_plate=rule,
                       unfitted=unfitted, formats=formats.names, exposure_us=exposure)
    finally:
        close = getattr(frames, "close", None)
        if callable(close):
            close()  # releases the camera
    if found.image is None:
        raise SourceError(f"capture source {args.source or config.capture.source!r} gave no frame")
    note = write_still(Path(args.out), found.image, found.plates, found.others, config, unredacted=args.unredacted)
    report = found.report
    ok, advice = report.verdict()
    what = "box(es) in the image" if single else "vehicle(s)"
    result = {"frames": report.frames, "boxes": report.boxes, "plates": len(report.widths), "counted": what,
              "median_px": report.median, "min_px": min(report.widths, default=None),
              "max_px": max(report.widths, default=None), "ok": ok, "advice": advice, "still": args.out,
              "still_note": note}
    if not single:
        sharp, shutter = shutter_advice(report.blur)
        result.update({"vehicles": [b.as_dict() for b in report.blur], "blur_ok": sharp, "shutter_advice": shutter})
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{report.frames} frame(s), {report.boxes} box(es) found; plates read: {len(report.widths)} {what} "
              f"(other boxes, such as signs, walls and text that fits no allowed format, are not measured)")
        if report.widths:
            print(f"plate width px (as read best{'' if single else ', one per vehicle'}): median "
                  f"{result['median_px']}, min {result['min_px']}, max {result['max_px']}")
        print(("OK: " if ok else "ADJUST: ") + advice)
        for b in report.blur:
            speed = "not seen moving" if b.speed_px_s is None else f"moving {b.speed_px_s:.0f} px/s"
            shutter = "exposure unknown" if b.exposure_us is None else f"exposure {b.exposure_us} us"
            blur_px = b.blur_px
            print(f"  {b.plate:<10} {b.width_px:>4} px wide, {speed}, {shutter}"
                  + ("" if blur_px is None else f": motion blur {blur_px:.2f} px"))
        if not single:
            sharp, shutter = shutter_advice(report.blur)
            print({True: "OK: ", False: "ADJUST: ", None: "SHUTTER: "}[sharp] + shutter)
        print(f"annotated still: {args.out} ({note}; plates boxed with their width, other boxes in thin orange)")
    sys.stdout.flush()
    return 0
