"""``edge-anpr eval faces DIR``: how much of each labelled face the node's redaction covers.

DIR holds ``labels.csv`` (``file,x,y,w,h``, one row per face, pixels, top-left origin) and the
images; image files in DIR without a row count as images with no faces. Each image goes through the
same :class:`~edge.privacy.redact.Redactor` the node builds (:func:`~edge.privacy.faces.build_redactor`).

A face is *covered* when at least 90% of its labelled box lies inside redacted pixels. Recall alone
would pass a tuning that paints over whole images, so beside it, per face-height band: a *false
region* is a redacted region that covers no more than half of any labelled face (``false_per_image``),
``false_area`` is the share of redacted pixels outside every labelled face box, and ``redacted_share``
the mean share of each image painted over. An image the redactor drops (it fails closed) leaks nothing
on the node; here it is counted in ``dropped`` and its faces are scored on the regions the first pass
redacted, so the recall measures the detector, not the drop. ``--detector`` picks the model
(``centerface``, the node's; ``blazeface``, the old tiled one) to compare them on one set. ``--canvas
1920x1080`` places each image, at its own size (shrunk only if it does not fit), in a frame of that size, as
the faces would appear in a camera's frame: the node looks at a 1080p frame at half scale, so this measures
the same faces where the node meets them, not at the scale a 1024-pixel photo alone is looked at.
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import statistics
import sys
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.capture.video import IMAGE_SUFFIXES
from edge.domain import Box, Image
from edge.errors import ConfigError, EdgeError
from edge.evaluate.progress import Progress
from edge.privacy.bench import frame_size
from edge.privacy.faces import DETECTORS, RedactorSettings, build_redactor
from edge.privacy.redact import RedactionFailed, Redactor
from edge.wording import counted

COVER_SHARE = 0.9
MIN_FACE_PX = 24
SIZE_BUCKETS = ((0, 24), (24, 48), (48, 96), (96, 1 << 30))
TRUE_REGION_SHARE = 0.5  # a region covering at least this much of a labelled face is not a false region


@dataclass(frozen=True, slots=True)
class ImageScore:
    file: str
    faces: tuple[Box, ...]
    covered: tuple[bool, ...]
    redacted_px: int
    false_px: int
    ms: float
    cpu_ms: float  # this thread's CPU time: the cost without waiting for a shared core
    dropped: str | None  # RedactionFailed.reason, or None when the image passed
    pixels: int  # the image's
    false_regions: tuple[int, ...]  # face heights (before the margin) of the regions that cover no labelled face
    region_heights: tuple[int, ...]  # of every region, the same way


def configure_parser(p: argparse.ArgumentParser) -> None:
    d = RedactorSettings()
    p.add_argument("dir", metavar="DIR", help="folder with labels.csv (file,x,y,w,h) and the images")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--report", metavar="OUT", help="write images with missed faces outlined, and an index.html")
    p.add_argument("--threads", type=int, default=1, help="images redacted in parallel (one model each)")
    p.add_argument("--detector", choices=sorted(DETECTORS), default=None,
                   help="face detector to score: centerface (the node's) or blazeface (tiled); sets --model")
    p.add_argument("--model", default=None, help=f"face model file (default {d.model})")
    p.add_argument("--manifest", default=d.manifest, help=f"model manifest (default {d.manifest})")
    p.add_argument("--threshold", type=float, default=d.threshold, help=f"face score threshold ({d.threshold})")
    p.add_argument("--small-threshold", type=float, default=d.small_threshold,
                   help=f"centerface: the least score of a box under --small-face px ({d.small_threshold})")
    p.add_argument("--small-face", type=int, default=d.small_face,
                   help=f"centerface: boxes shorter than this (px) need --small-threshold ({d.small_face})")
    p.add_argument("--night-threshold", type=float, default=d.night_threshold,
                   help=f"centerface: the least score of a face in a grey frame ({d.night_threshold})")
    p.add_argument("--margin", type=float, default=d.margin, help=f"margin around faces, share ({d.margin})")
    p.add_argument("--min-face", type=int, default=d.min_face,
                   help=f"blazeface: smallest face searched, px ({d.min_face})")
    p.add_argument("--face-px", type=float, default=d.face_px, help=f"blazeface: its size in the input ({d.face_px})")
    p.add_argument("--max-gain", type=float, default=d.max_gain,
                   help=f"blazeface: contrast stretch limit ({d.max_gain})")
    p.add_argument("--check-min-face", type=int, default=d.check_min_face,
                   help=f"second pass (BlazeFace): smallest face searched, px ({d.check_min_face})")
    p.add_argument("--no-second-pass", action="store_true", help="skip the second-pass check")
    p.add_argument("--grey", action="store_true", help="convert images to grey first (as an infrared camera)")
    p.add_argument("--night", action="store_true",
                   help="as an infrared camera at night: grey, contrast halved and darkened, sensor noise (the same "
                        "noise for the same file every run)")
    p.add_argument("--canvas", metavar="WxH", default=None,
                   help="place each image at its own size in a frame of this size (e.g. 1920x1080), as in a camera's")
    p.add_argument("--limit", type=int, default=None, help="score only the first N images")
    p.add_argument("--fail-under", type=float, default=None, help="exit 1 when recall_min24 is below this")


def main(args: argparse.Namespace) -> int:
    try:
        result = evaluate(args)
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    if args.fail_under is not None and result["recall_min24"] is not None and result["recall_min24"] < args.fail_under:
        return 1
    return 0


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(args.dir)
    labels = read_labels(folder)
    files = sorted(labels)[: args.limit] if args.limit else sorted(labels)
    if args.threads < 1:
        raise ConfigError(f"--threads {args.threads} must be at least 1")
    canvas = frame_size(args.canvas, "--canvas") if args.canvas else None
    settings = RedactorSettings(
        model=args.model or DETECTORS[args.detector or "centerface"], manifest=args.manifest,
        threshold=args.threshold, small_threshold=args.small_threshold, small_face=args.small_face,
        night_threshold=args.night_threshold, margin=args.margin, min_face=args.min_face, face_px=args.face_px,
        max_gain=args.max_gain, second_pass=not args.no_second_pass, check_min_face=args.check_min_face,
    )
    redactors = [build_redactor(settings) for _ in range(min(args.threads, max(1, len(files))))]
    report = Path(args.report) if args.report else None
    if report is not None:
        report.mkdir(parents=True, exist_ok=True)
    chunks = [files[i :: len(redactors)] for i in range(len(redactors))]
    progress = Progress("eval faces", len(files))
    with ThreadPoolExecutor(max_workers=len(redactors)) as pool:
        futures = [pool.submit(_score_all, r, folder, chunk, labels, grey=args.grey, report=report, progress=progress,
                               canvas=canvas, night=args.night)
                   for r, chunk in zip(redactors, chunks, strict=True)]
        scores = sorted((s for f in futures for s in f.result()), key=lambda s: s.file)
    progress.done()
    result = summarise(scores)
    result["dir"] = str(folder)
    result["settings"] = {
        "model": settings.model, "detector": redactors[0].detector_name, "threshold": settings.threshold,
        "small_threshold": settings.small_threshold, "small_face": settings.small_face,
        "night_threshold": settings.night_threshold,
        "margin": settings.margin, "min_face": settings.min_face,
        "face_px": settings.face_px, "max_gain": settings.max_gain, "second_pass": settings.second_pass,
        "second_pass_threshold": settings.second_pass_threshold, "check_min_face": settings.check_min_face,
        "grey": bool(args.grey),
        "night": bool(args.night),
        "canvas": list(canvas) if canvas else None,
        "threads": len(redactors),
    }
    if report is not None:
        write_index(report, scores, result)
    return result


def read_labels(folder: Path) -> dict[str, list[Box]]:
    """file -> face boxes; image files of the folder without a row map to no faces."""
    path = folder / "labels.csv"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {str(path)!r}: {exc.strerror or exc} (expected columns file,x,y,w,h)") from exc
    rows = csv.DictReader(text.splitlines())
    missing = {"file", "x", "y", "w", "h"} - set(rows.fieldnames or ())
    if missing:
        raise ConfigError(f"{str(path)!r} lacks columns {sorted(missing)} (expected file,x,y,w,h)")
    labels: dict[str, list[Box]] = {p.name: [] for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    for n, row in enumerate(rows, start=2):
        try:
            box = Box(int(row["x"]), int(row["y"]), int(row["w"]), int(row["h"]))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{str(path)!r} line {n}: x, y, w, h must be integers, got {row}") from exc
        labels.setdefault(row["file"], []).append(box)
    return labels


def on_canvas(image: Image, faces: Sequence[Box], canvas: tuple[int, int]) -> tuple[Image, list[Box]]:
    """``image`` centred at its own size on a mid-grey frame of ``canvas`` (shrunk to fit only where it is larger),
    and its face boxes where they now are."""
    width, height = canvas
    h, w = image.shape[:2]
    s = min(1.0, width / w, height / h)
    if s < 1.0:
        image = np.asarray(cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA), np.uint8)
        h, w = image.shape[:2]
    frame = np.full((height, width, 3), 90, np.uint8)
    x, y = (width - w) // 2, (height - h) // 2
    frame[y : y + h, x : x + w] = image
    moved = [Box(x + round(f.x * s), y + round(f.y * s), round(f.w * s), round(f.h * s)) for f in faces]
    return frame, moved


def _score_all(redactor: Redactor, folder: Path, files: Sequence[str], labels: dict[str, list[Box]], *,
               grey: bool, report: Path | None, progress: Progress,
               canvas: tuple[int, int] | None = None, night: bool = False) -> list[ImageScore]:
    out = []
    for name in files:
        out.append(score_image(redactor, folder / name, name, labels[name], grey=grey, report=report, canvas=canvas,
                               night=night))
        progress.step()
    return out


NIGHT_CONTRAST = 0.5  # --night: grey levels scaled by this ...
NIGHT_LEVEL = 20.0  # ... above this floor (a dim, flat picture) ...
NIGHT_NOISE = 8.0  # ... with Gaussian sensor noise of this sigma (grey levels)


def night_look(image: Image, name: str) -> Image:
    """A grey image as an infrared camera records a face at night: contrast halved and darkened, with sensor
    noise drawn from the file's name (the same for the same file every run)."""
    rng = np.random.default_rng(zlib.crc32(name.encode("utf-8")))
    grey = image.astype(np.float32) * NIGHT_CONTRAST + NIGHT_LEVEL
    noise = rng.normal(0.0, NIGHT_NOISE, image.shape[:2]).astype(np.float32)[..., None]
    return np.asarray(np.clip(grey + noise, 0, 255), dtype=np.uint8)


def score_image(redactor: Redactor, path: Path, name: str, faces: Sequence[Box], *, grey: bool,
                report: Path | None, canvas: tuple[int, int] | None = None, night: bool = False) -> ImageScore:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ConfigError(f"cannot read image {str(path)!r} named in labels.csv")
    if grey or night:
        image = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    img: Image = np.asarray(image, dtype=np.uint8)
    if night:
        img = night_look(img, name)
    if canvas is not None:
        img, faces = on_canvas(img, faces, canvas)
    dropped: str | None = None
    start, cpu_start = time.perf_counter(), time.thread_time()
    try:
        result = redactor.run(img)
        regions, output = result.regions, result.image
    except RedactionFailed as exc:
        regions, output, dropped = exc.regions, img, exc.reason
    ms = (time.perf_counter() - start) * 1000.0
    cpu_ms = (time.thread_time() - cpu_start) * 1000.0
    h, w = img.shape[:2]
    redacted = _mask(regions, w, h)
    face_mask = _mask(faces, w, h)
    covered = tuple(_share_inside(f, redacted, w, h) >= COVER_SHARE for f in faces)
    heights = tuple(round(r.h / (1.0 + 2.0 * redactor.margin)) for r in regions)
    false = tuple(height for r, height in zip(regions, heights, strict=True)
                  if not any(r.intersection(f) >= TRUE_REGION_SHARE * max(1, f.area) for f in faces))
    score = ImageScore(name, tuple(faces), covered, int(redacted.sum()), int((redacted & ~face_mask).sum()), ms,
                       cpu_ms, dropped, h * w, false, heights)
    if report is not None and (not all(covered) or dropped):
        _write_report_image(report, name, output, faces, covered)
    return score


def _mask(boxes: Sequence[Box], width: int, height: int) -> npt.NDArray[np.bool_]:
    mask = np.zeros((height, width), dtype=bool)
    for b in boxes:
        c = b.clipped(width, height)
        mask[c.y : c.y + c.h, c.x : c.x + c.w] = True
    return mask


def _share_inside(face: Box, mask: npt.NDArray[np.bool_], width: int, height: int) -> float:
    c = face.clipped(width, height)
    return float(mask[c.y : c.y + c.h, c.x : c.x + c.w].mean()) if c.area else 1.0


def summarise(scores: Sequence[ImageScore]) -> dict[str, Any]:
    pairs = [(f, c) for s in scores for f, c in zip(s.faces, s.covered, strict=True)]
    big = [c for f, c in pairs if f.h >= MIN_FACE_PX]
    redacted = sum(s.redacted_px for s in scores)
    ms = [s.ms for s in scores]
    n = len(scores)
    dropped: dict[str, int] = {}
    for s in scores:
        if s.dropped:
            dropped[s.dropped] = dropped.get(s.dropped, 0) + 1
    return {
        "images": n,
        "faces": len(pairs),
        "covered": sum(c for _, c in pairs),
        "recall": _ratio(sum(c for _, c in pairs), len(pairs)),
        "faces_min24": len(big),
        "recall_min24": _ratio(sum(big), len(big)),
        "false_regions": sum(len(s.false_regions) for s in scores),
        "false_per_image": _ratio(sum(len(s.false_regions) for s in scores), n),
        # half the images have at most this many: a crowd's dozens (partly faces its labels leave out) weigh less
        "false_median": statistics.median(len(s.false_regions) for s in scores) if scores else None,
        "false_area": _ratio(sum(s.false_px for s in scores), redacted),
        "redacted_share": _ratio(sum(s.redacted_px / s.pixels for s in scores), n, digits=5),
        "redacted_px": redacted,
        "dropped": sum(dropped.values()),
        "dropped_reasons": dropped,
        "median_ms": round(statistics.median(ms), 2) if ms else None,
        "p95_ms": round(float(np.percentile(ms, 95)), 2) if ms else None,
        "median_cpu_ms": round(statistics.median(s.cpu_ms for s in scores), 2) if ms else None,
        "by_height": {_band(lo, hi): _band_score(scores, pairs, lo, hi) for lo, hi in SIZE_BUCKETS},
        "missed": [
            {"file": s.file, "x": f.x, "y": f.y, "w": f.w, "h": f.h}
            for s in scores for f, c in zip(s.faces, s.covered, strict=True) if not c
        ],
    }


def _band(lo: int, hi: int) -> str:
    return f"{lo}-{hi if hi < 1 << 30 else 'up'}"


def _band_score(scores: Sequence[ImageScore], pairs: Sequence[tuple[Box, bool]], lo: int, hi: int) -> dict[str, Any]:
    """Faces, covered and recall of labelled faces in ``lo <= height < hi``; false regions of that size per image."""
    faces = sum(1 for f, _ in pairs if lo <= f.h < hi)
    covered = sum(1 for f, c in pairs if lo <= f.h < hi and c)
    false = sum(1 for s in scores for height in s.false_regions if lo <= height < hi)
    regions = sum(1 for s in scores for height in s.region_heights if lo <= height < hi)
    return {"faces": faces, "covered": covered, "recall": _ratio(covered, faces), "regions": regions,
            "false_regions": false, "false_per_image": _ratio(false, len(scores))}


def _ratio(num: float, den: int, *, digits: int = 4) -> float | None:
    return round(num / den, digits) if den else None


def format_table(r: dict[str, Any]) -> str:
    s = r["settings"]
    lines = [
        f"eval faces {r['dir']}: {s['detector']} threshold {s['threshold']} margin {s['margin']}"
        f"{' night' if s.get('night') else ' grey' if s['grey'] else ''}{_in_frame(s.get('canvas'))}",
        f"  images        {r['images']}",
        f"  faces         {r['faces']}  (covered {r['covered']})",
        f"  recall        {_fmt(r['recall'])}",
        f"  recall_min24  {_fmt(r['recall_min24'])}  ({counted(r['faces_min24'], 'face')} >= {MIN_FACE_PX} px tall)",
        f"  false regions {_fmt(r['false_per_image'])} per image  ({counted(r['false_regions'], 'region')} covering "
        f"no labelled face; median {r['false_median']} per image)",
        f"  false_area    {_fmt(r['false_area'])}  (share of redacted pixels outside labelled faces)",
        f"  redacted      {_fmt(r['redacted_share'])} of each image on average",
        f"  dropped       {r['dropped']}  {r['dropped_reasons'] or ''}",
        f"  median_ms     {r['median_ms']}  (p95 {r['p95_ms']}; median thread CPU {r['median_cpu_ms']} ms)",
        "  by face height: " + ", ".join(f"{k}px {v['covered']}/{v['faces']} (false {v['false_regions']})"
                                         for k, v in r["by_height"].items()),
    ]
    lines += [f"  missed {m['file']} {m['w']}x{m['h']}+{m['x']}+{m['y']}" for m in r["missed"][:20]]
    if len(r["missed"]) > 20:
        lines.append(f"  ... {len(r['missed']) - 20} more missed (see --json)")
    return "\n".join(lines)


def _in_frame(canvas: list[int] | None) -> str:
    return f" in a {canvas[0]}x{canvas[1]} frame" if canvas else ""


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _write_report_image(report: Path, name: str, output: Image, faces: Sequence[Box],
                        covered: Sequence[bool]) -> None:
    canvas = output.copy()
    for f, c in zip(faces, covered, strict=True):
        colour = (0, 200, 0) if c else (0, 0, 255)
        cv2.rectangle(canvas, (f.x, f.y), (f.x + f.w - 1, f.y + f.h - 1), colour, 1 if c else 2)
    cv2.imwrite(str(report / (Path(name).stem + ".report.png")), canvas)


def write_index(report: Path, scores: Sequence[ImageScore], result: dict[str, Any]) -> None:
    items = [s for s in scores if not all(s.covered) or s.dropped]
    rows = "\n".join(
        f"<figure><img src='{html.escape(Path(s.file).stem)}.report.png'><figcaption>{html.escape(s.file)}: "
        f"{len(s.covered) - sum(s.covered)} of {counted(len(s.faces), 'face')} missed"
        f"{' (dropped: ' + html.escape(s.dropped) + ')' if s.dropped else ''}</figcaption></figure>"
        for s in items
    )
    summary = html.escape(format_table(result))
    page = (
        "<!doctype html><meta charset='utf-8'><title>eval faces</title>"
        "<style>img{max-width:100%}figure{margin:1em 0}</style>"
        f"<h1>Faces missed by redaction</h1><p>Red: missed face; green: covered.</p><pre>{summary}</pre>"
        f"{rows or '<p>No face was missed.</p>'}"
    )
    (report / "index.html").write_text(page, encoding="utf-8")
