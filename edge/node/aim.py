"""``edge-anpr aim``: help mount and zoom the camera by measuring how wide plates appear, in pixels.

OpenALPR's camera guide: European plates need about 90 px of width (at the resolution the plate is
read at: here the ``main`` stream) for reliable reads, and there is no gain beyond about 250 px;
wider than that only narrows the field of view. ``aim`` runs the node's own plate detector over
the configured camera for a number of frames, reports the widths it saw, and writes an annotated
still (boxes, widths, a 90 px ruler). The still shows the street, so faces in it are redacted with
the node's face model first; if that model cannot run, no still is written unless ``--unredacted``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.config import Config, load_config
from edge.detect import PlateDetector
from edge.domain import Box, Frame, Image, PlateDetection
from edge.errors import ModelError, SourceError

log = logging.getLogger(__name__)

MIN_PLATE_PX = 90  # OpenALPR camera guide, European plates
MAX_USEFUL_PX = 250  # no gain beyond this


@dataclass(frozen=True, slots=True)
class AimReport:
    frames: int
    widths: tuple[int, ...]  # full-resolution plate widths, one per detection

    @property
    def median(self) -> float | None:
        return float(statistics.median(self.widths)) if self.widths else None

    def verdict(self) -> tuple[bool, str]:
        """(good enough, what to do): judged on the median width of the plates seen."""
        median = self.median
        if median is None:
            return False, (f"no plate seen in {self.frames} frames: check the camera points at the lane, "
                           f"then run again while traffic passes")
        if median < MIN_PLATE_PX:
            return False, (f"plates are {median:.0f} px wide, below the {MIN_PLATE_PX} px needed: zoom in or mount "
                           f"the camera closer to the lane")
        if median > MAX_USEFUL_PX:
            return True, (f"plates are {median:.0f} px wide; above {MAX_USEFUL_PX} px brings no gain: you may zoom "
                          f"out to cover more of the lane")
        return True, f"plates are {median:.0f} px wide: within {MIN_PLATE_PX}-{MAX_USEFUL_PX} px, good"


def full_resolution(frame: Frame, found: Iterable[PlateDetection]) -> list[Box]:
    sx, sy = frame.scale
    return [d.box.scaled(sx, sy) for d in found]


def annotate(image: Image, boxes: Iterable[Box]) -> Image:
    """A copy of ``image`` with each plate box, its width in px (green when >= 90 px, red below) and a ruler."""
    out = image.copy()
    for box in boxes:
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


def survey(frames: Iterable[Frame], detector: PlateDetector, max_frames: int) -> tuple[AimReport, Frame | None,
                                                                                         list[Box]]:
    """Detect plates in up to ``max_frames`` frames; returns the report and the frame with the widest plate."""
    widths: list[int] = []
    best: tuple[int, Frame | None, list[Box]] = (-1, None, [])
    count = 0
    for frame in frames:
        count += 1
        boxes = full_resolution(frame, detector.detect(frame.lores))
        widths.extend(b.w for b in boxes)
        widest = max((b.w for b in boxes), default=0)
        if best[1] is None or widest > best[0]:
            best = (widest, frame, boxes)
        if count >= max_frames:
            break
    return AimReport(count, tuple(widths)), best[1], best[2]


def write_still(path: Path, frame: Frame, boxes: list[Box], config: Config, *, unredacted: bool) -> str:
    image = frame.image
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
    if not cv2.imwrite(str(path), annotate(image, boxes)):
        raise OSError(f"cannot write {path}")
    return note


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", default="/etc/edge-anpr/config.yaml", help="config (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=250, help="frames to look at (default: %(default)s, 10 s)")
    parser.add_argument("--out", default="aim.jpg", help="annotated still (default: %(default)s)")
    parser.add_argument("--unredacted", action="store_true", help="write the still without face redaction (bench)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def main(args: argparse.Namespace) -> int:
    from edge.app import build_source
    from edge.clock import SystemClock
    from edge.detect.factory import build_detector

    config = load_config(args.config)
    if args.frames < 1:
        raise SourceError(f"--frames {args.frames}: must be at least 1")
    detector = build_detector(config.detect)  # the node's own detector, as configured
    frames = build_source(config, SystemClock()).frames()
    try:
        report, frame, boxes = survey(frames, detector, args.frames)
    finally:
        close = getattr(frames, "close", None)
        if callable(close):
            close()  # releases the camera
    if frame is None:
        raise SourceError(f"capture source {config.capture.source!r} gave no frame")
    note = write_still(Path(args.out), frame, boxes, config, unredacted=args.unredacted)
    ok, advice = report.verdict()
    result = {"frames": report.frames, "plates": len(report.widths), "median_px": report.median,
              "min_px": min(report.widths, default=None), "max_px": max(report.widths, default=None),
              "ok": ok, "advice": advice, "still": args.out, "still_note": note}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{report.frames} frames, {len(report.widths)} plate sightings; width px: median {result['median_px']}, "
              f"min {result['min_px']}, max {result['max_px']}")
        print(("OK: " if ok else "ADJUST: ") + advice)
        print(f"annotated still: {args.out} ({note})")
    sys.stdout.flush()
    return 0
