"""``edge-anpr eval plates DIR``: how well the node finds and reads the labelled plates of a folder.

DIR holds ``labels.csv`` (``file,plate,x,y,w,h``, one row per plate, pixels of the full image,
top-left origin) and the images. Each image goes through the node's own stages, built from the
config as the composition root builds them: the image is shrunk to fit ``capture.lores_size`` (the
detection stream), the detector runs on that, each box is scaled back, grown by the pipeline's crop
margin and cut from the full image, read, and checked against the configured formats.

A plate is *detected* when some detection overlaps its labelled box at IoU >= 0.5. Its *read* is the
text of the detection that overlaps it most (IoU >= 0.1), after format correction; reads below the
reader's confidence threshold count as no read, as in the node. *exact* compares upper-cased text
with spaces and hyphens removed; *folded* also treats O as 0 and I as 1 (upstream labels confuse
them). Times are per image: detector + reader + formats, not decoding the file or shrinking it.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import html
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.config.loader import load_config, parse_config
from edge.config.model import Config
from edge.detect import PlateDetector
from edge.detect.factory import DETECTORS, build_detector, build_fine_look, build_second_look
from edge.domain import Box, FormatMatch, Image, PlateDetection, PlateText
from edge.errors import ConfigError, EdgeError
from edge.evaluate.progress import Progress
from edge.read import PlateReader
from edge.read.crop import FormatMatcher, crop_box, read_box
from edge.read.factory import READERS, build_reader, default_model
from edge.read.finder import PlateFinder, Sighting, shrunk
from edge.read.formats import FormatSet, normalise
from edge.wording import counted

DETECTED_IOU = 0.5
MATCH_IOU = 0.1
FOLD = str.maketrans({"O": "0", "I": "1"})


@dataclass(frozen=True, slots=True)
class PlateLabel:
    plate: str
    box: Box


@dataclass(frozen=True, slots=True)
class Found:
    """One detection in full-image pixels, with what the reader and the formats made of it."""

    box: Box
    confidence: float
    raw: PlateText | None  # None: the crop was too small to read
    match: FormatMatch | None  # None: no read, or below the confidence threshold


@dataclass(frozen=True, slots=True)
class PlateScore:
    file: str
    truth: str
    box: Box
    iou: float  # best IoU of any detection with the labelled box
    read: str  # "" when nothing was read
    read_box: Box | None

    @property
    def detected(self) -> bool:
        return self.iou >= DETECTED_IOU

    @property
    def exact(self) -> bool:
        return bool(self.read) and self.read == clean(self.truth)

    @property
    def folded(self) -> bool:
        return bool(self.read) and fold(self.read) == fold(clean(self.truth))


@dataclass(frozen=True, slots=True)
class ImageScore:
    file: str
    plates: tuple[PlateScore, ...]
    found: int
    unmatched: int  # detections that overlap no labelled plate
    ms: float


class _NoFormats:
    """``--formats none``: the read as the reader gave it, normalised, never corrected."""

    def match(self, text: str, captured_on: dt.date) -> FormatMatch:
        norm = normalise(text)
        return FormatMatch(text=norm, format_name=None, corrected=False, display=norm)


@dataclass(frozen=True, slots=True)
class Stages:
    """The node's stages as eval runs them."""

    detector: PlateDetector | None  # None: --truth-boxes (the labelled boxes stand in for it)
    reader: PlateReader
    formats: FormatMatcher
    lores_size: tuple[int, int]
    min_confidence: float
    second_look: PlateDetector | None = None
    fine_look: PlateDetector | None = None
    finder: PlateFinder | None = field(init=False)  # built once from the above (None: --truth-boxes)

    def __post_init__(self) -> None:
        # a still image is its own only chance: the second look runs on every image that needs it
        finder = None if self.detector is None else PlateFinder(
            self.detector, self.reader, self.formats, min_confidence=self.min_confidence,
            second_look=self.second_look, second_look_every=1, fine_look=self.fine_look, fine_look_every=1)
        object.__setattr__(self, "finder", finder)


def clean(text: str) -> str:
    return text.upper().replace(" ", "").replace("-", "")


def fold(text: str) -> str:
    return text.translate(FOLD)


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", metavar="DIR", help="folder with labels.csv (file,plate,x,y,w,h) and the images")
    p.add_argument("--config", "-c", help="node config YAML (default: built-in defaults)")
    p.add_argument("--threads", type=int, default=1, help="inference threads per model (default: %(default)s)")
    p.add_argument("--detector", choices=DETECTORS, help="detector backend (default: the config's detect.backend)")
    p.add_argument("--second-look", choices=("none", *DETECTORS),
                   help="detector that looks again when nothing read as a plate (default: the config's "
                   "detect.second_look); on still images it looks at every image that needs it")
    p.add_argument("--reader", choices=READERS, help="reader backend (default: the one read.model's task names)")
    p.add_argument("--model", help="OCR model file (default: the config's read.model, or the --reader's model)")
    p.add_argument("--manifest", help="model manifest (default: the config's read.manifest)")
    p.add_argument("--formats", help="comma-separated format names, 'all' (with --formats-file: its formats too), "
                   "or 'none' to score raw reads "
                   "(default: the config's read.formats)")
    p.add_argument("--formats-file", help="YAML file of extra formats (as read.formats_file)")
    p.add_argument("--country", help="comma-separated country codes whose formats to read (as read.country; "
                   "with no --formats, their formats alone)")
    p.add_argument("--min-confidence", type=float, help="reads below this are dropped (default: config)")
    p.add_argument("--date", help="capture date for the age-identifier check, YYYY-MM-DD (default: today)")
    p.add_argument("--truth-boxes", action="store_true",
                   help="skip the detector and read the labelled boxes (scores the reader alone)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--errors", metavar="FILE", help="write the misses as CSV (image, truth, read, iou)")
    p.add_argument("--report", metavar="DIR", help="write an HTML page with the crops of the misses")
    p.add_argument("--limit", type=int, default=None, help="score only the first N images")


def main(args: argparse.Namespace) -> int:
    return run(args)


def run(args: argparse.Namespace, stages: Stages | None = None) -> int:
    """Score, write --errors and --report, print; ``stages`` replaces the ones built from the config."""
    try:
        result, scores = evaluate(args, stages)
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.errors:
        write_errors(Path(args.errors), scores)
    if args.report:
        write_report(Path(args.report), Path(args.dir), scores, result)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


def node_config(args: argparse.Namespace) -> Config:
    """The config eval runs with: the file (or defaults), then the command-line overrides."""
    config = load_config(args.config) if args.config else parse_config({"node": {"site": "eval", "camera": "eval"}})
    if args.threads < 1:
        raise ConfigError(f"--threads {args.threads} must be at least 1")
    read: dict[str, Any] = {"threads": args.threads}
    if args.manifest:
        read["manifest"] = args.manifest
    if args.model:
        read["model"] = args.model
    elif args.reader:
        read["model"] = default_model(args.reader, config.read.model_copy(update=read))
    if args.min_confidence is not None:
        read["min_confidence"] = args.min_confidence
    if args.formats and args.formats != "none":
        read["formats"] = tuple(n.strip() for n in args.formats.split(",") if n.strip())
    if args.formats_file:
        read["formats_file"] = args.formats_file
    if args.country:
        read["country"] = tuple(c.strip() for c in args.country.split(",") if c.strip())
        if not args.formats:
            read["formats"] = ()  # as a config naming a country and no formats
    data = config.model_dump()
    data["read"] = {**data["read"], **read}
    data["detect"] = {**data["detect"], "threads": args.threads}
    return parse_config(data, origin="eval plates")


def build_stages(config: Config, args: argparse.Namespace) -> Stages:
    format_set = None if args.formats == "none" else FormatSet.load(
        config.read.formats, config.read.formats_file, config.read.country
    )
    formats: FormatMatcher = _NoFormats() if format_set is None else format_set
    return Stages(
        detector=None if args.truth_boxes else build_detector(config.detect, args.detector),
        reader=build_reader(config.read, args.reader, format_set),
        second_look=None if args.truth_boxes else build_second_look(config.detect, args.second_look),
        fine_look=None if args.truth_boxes else build_fine_look(config.detect),
        formats=formats,
        lores_size=config.capture.lores_size,
        min_confidence=config.read.min_confidence,
    )


def evaluate(args: argparse.Namespace, stages: Stages | None = None) -> tuple[dict[str, Any], list[ImageScore]]:
    folder = Path(args.dir)
    labels = read_labels(folder)
    files = sorted(labels)[: args.limit] if args.limit else sorted(labels)
    config = node_config(args)
    stages = stages or build_stages(config, args)
    captured_on = dt.date.fromisoformat(args.date) if args.date else dt.date.today()
    cv2.setNumThreads(args.threads)
    progress = Progress("eval plates", len(files))
    scores = []
    for name in files:
        scores.append(score_image(stages, folder / name, name, labels[name], captured_on,
                                  truth_boxes=args.truth_boxes))
        progress.step()
    progress.done()
    result = summarise(scores)
    result.update({
        "dir": str(folder),
        "threads": args.threads,
        "detector": "truth-boxes" if args.truth_boxes else (args.detector or config.detect.backend),
        "second_look": "none" if stages.second_look is None else (args.second_look or config.detect.second_look),
        "reader": type(stages.reader).__name__,
        "model": config.read.model,
        "formats": "none" if args.formats == "none" else list(config.read.formats),
        "country": list(config.read.country),
        "min_confidence": config.read.min_confidence,
        "lores_size": list(config.capture.lores_size),
    })
    return result, scores


def read_labels(folder: Path) -> dict[str, list[PlateLabel]]:
    """file -> labelled plates, in the order of labels.csv."""
    path = folder / "labels.csv"
    expected = "expected columns file,plate,x,y,w,h"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {str(path)!r}: {exc.strerror or exc} ({expected})") from exc
    rows = csv.DictReader(text.splitlines())
    missing = {"file", "plate", "x", "y", "w", "h"} - set(rows.fieldnames or ())
    if missing:
        raise ConfigError(f"{str(path)!r} lacks columns {sorted(missing)} ({expected})")
    labels: dict[str, list[PlateLabel]] = {}
    for n, row in enumerate(rows, start=2):
        try:
            box = Box(int(row["x"]), int(row["y"]), int(row["w"]), int(row["h"]))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{str(path)!r} line {n}: x, y, w, h must be integers, got {row}") from exc
        labels.setdefault(row["file"], []).append(PlateLabel(row["plate"], box))
    return labels


def load_image(path: Path) -> Image:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ConfigError(f"cannot read image {str(path)!r} named in labels.csv")
    return np.asarray(image, dtype=np.uint8)


def run_stages(stages: Stages, image: Image, boxes: Sequence[Box], captured_on: dt.date) -> list[Found]:
    """Detect (unless ``boxes`` are given), crop from the full image, read and check each plate, as the
    node's :class:`PlateFinder` does."""
    if stages.finder is not None:
        sightings = stages.finder.find(image, shrunk(image, *stages.lores_size), captured_on).sightings
    else:
        sightings = tuple(
            # a labelled box is a plate: the reader alone is scored, without the plate check
            Sighting(PlateDetection(b, 1.0), read_box(image, b, stages.reader, stages.formats, captured_on,
                                                      min_confidence=stages.min_confidence, verify=False))
            for b in boxes
        )
    return [
        Found(s.detection.box, s.detection.confidence, None if s.read is None else s.read.text,
              None if s.read is None else s.read.match)
        for s in sightings
    ]


def score_image(stages: Stages, path: Path, name: str, plates: Sequence[PlateLabel], captured_on: dt.date, *,
                truth_boxes: bool = False) -> ImageScore:
    image = load_image(path)
    start = time.perf_counter()
    found = run_stages(stages, image, [p.box for p in plates] if truth_boxes else [], captured_on)
    ms = (time.perf_counter() - start) * 1000.0
    scored = []
    used: set[int] = set()
    for label in plates:
        ious = [label.box.iou(f.box) for f in found]
        best = int(np.argmax(ious)) if ious else -1
        iou = ious[best] if ious else 0.0
        hit = found[best] if ious and iou >= MATCH_IOU else None
        if hit is not None:
            used.add(best)
        read = hit.match.text if hit is not None and hit.match is not None else ""
        scored.append(PlateScore(name, label.plate, label.box, round(iou, 4), read,
                                 hit.box if hit is not None else None))
    unmatched = sum(1 for i, f in enumerate(found) if i not in used
                    and all(p.box.iou(f.box) < MATCH_IOU for p in plates))
    return ImageScore(name, tuple(scored), len(found), unmatched, ms)


def summarise(scores: Sequence[ImageScore]) -> dict[str, Any]:
    plates = [p for s in scores for p in s.plates]
    n = len(plates)
    ms = [s.ms for s in scores]
    exact = sum(p.exact for p in plates)
    folded = sum(p.folded for p in plates)
    detected = sum(p.detected for p in plates)
    return {
        "images": len(scores),
        "plates": n,
        "detected": detected,
        "detected_rate": _ratio(detected, n),
        "read": sum(bool(p.read) for p in plates),
        "exact": exact,
        "exact_rate": _ratio(exact, n),
        "folded": folded,
        "folded_rate": _ratio(folded, n),
        "detections": sum(s.found for s in scores),
        "false_detections": sum(s.unmatched for s in scores),
        "median_ms": round(statistics.median(ms), 2) if ms else None,
        "p95_ms": round(float(np.percentile(ms, 95)), 2) if ms else None,
        "misses": [
            {"image": p.file, "truth": p.truth, "read": p.read, "iou": p.iou}
            for p in plates if not p.exact
        ],
    }


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def format_table(r: dict[str, Any]) -> str:
    formats = r["formats"] if r["formats"] == "none" else ",".join(r["formats"])
    if r.get("country") and r["formats"] != "none":
        formats = f"of {','.join(r['country'])}" + (f" and {formats}" if formats else "")
    lines = [
        f"eval plates {r['dir']}: detector {r['detector']} (second look {r['second_look']}), "
        f"reader {r['reader']} ({r['model']}), "
        f"formats {formats}, threads {r['threads']}",
        f"  images        {r['images']}",
        f"  plates        {r['plates']}",
        f"  detected      {r['detected']}  ({_fmt(r['detected_rate'])} at IoU >= {DETECTED_IOU}; "
        f"{counted(r['false_detections'], 'detection')} on no plate)",
        f"  read          {r['read']}",
        f"  exact         {r['exact']}  ({_fmt(r['exact_rate'])})",
        f"  folded        {r['folded']}  ({_fmt(r['folded_rate'])}, O=0 and I=1)",
        f"  median_ms     {r['median_ms']}  (p95 {r['p95_ms']})",
    ]
    if r["formats"] != "none":
        lines.append("  (reads are fitted to the formats above, as the node does; score other countries' plates "
                     "with --country, --formats none or their own --formats-file)")
    misses = r["misses"]
    lines += [f"  miss {m['image']:24} truth {m['truth']:10} read {m['read'] or '-':10} iou {m['iou']:.2f}"
              for m in misses[:20]]
    if len(misses) > 20:
        lines.append(f"  ... {len(misses) - 20} more misses (see --errors or --json)")
    return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def write_errors(path: Path, scores: Sequence[ImageScore]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "truth", "read", "iou", "detected", "folded"])
        for p in (p for s in scores for p in s.plates if not p.exact):
            writer.writerow([p.file, p.truth, p.read, f"{p.iou:.3f}", int(p.detected), int(p.folded)])


def write_report(out: Path, folder: Path, scores: Sequence[ImageScore], result: dict[str, Any]) -> None:
    """An index.html with, for each miss, the labelled plate and the crop that was read (if any)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, p in enumerate(p for s in scores for p in s.plates if not p.exact):
        image = load_image(folder / p.file)
        h, w = image.shape[:2]
        cells = []
        for tag, box in (("truth", p.box), ("read", p.read_box)):
            if box is None:
                cells.append("<td>no detection</td>")
                continue
            c = crop_box(box, w, h)
            if c.area == 0:
                cells.append("<td>empty</td>")
                continue
            name = f"miss{k:04d}_{tag}.png"
            cv2.imwrite(str(out / name), image[c.y : c.y + c.h, c.x : c.x + c.w])
            cells.append(f"<td><img src='{name}'></td>")
        rows.append(
            f"<tr><td>{html.escape(p.file)}</td><td><b>{html.escape(p.truth)}</b></td>"
            f"<td><b>{html.escape(p.read or '-')}</b>{' (folded ok)' if p.folded else ''}</td>"
            f"<td>{p.iou:.2f}</td>{''.join(cells)}</tr>"
        )
    page = (
        "<!doctype html><meta charset='utf-8'><title>eval plates</title>"
        "<style>td{padding:4px 8px;border-bottom:1px solid #ccc}img{max-height:90px}</style>"
        f"<h1>Plates not read exactly</h1><pre>{html.escape(format_table(result))}</pre>"
        "<table><tr><th>image</th><th>truth</th><th>read</th><th>IoU</th><th>labelled plate</th>"
        f"<th>crop read</th></tr>{''.join(rows)}</table>"
        + ("" if rows else "<p>Every plate was read exactly.</p>")
    )
    (out / "index.html").write_text(page, encoding="utf-8")
