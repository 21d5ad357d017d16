"""``edge-anpr bench redaction``: what face redaction costs per image, on one thread.

Redacts an image with the node's redactor and prints the time per image: ``median_ms`` for the whole
redaction (the detector, the fill, and the independent BlazeFace check over the output), ``detect_ms`` for
the detector alone and ``check_ms`` for the check alone, with each one's thread CPU time (``cpu_ms``: the
cost without waiting for a shared core). The default image is a 1920x1080 frame of the generated scene
(vehicles, a driver behind the windscreen, pedestrians); ``--image`` takes a photo (letterboxed into the
``--size`` canvas, never scaled up). ``--detector`` measures each named detector one after the other
(``centerface``, the node's: one model run per 16:9 frame; ``blazeface``: a pyramid of tiles down to
``--min-face``), beside the recall that ``edge-anpr eval faces`` measures for it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.domain import Image
from edge.errors import ConfigError


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", metavar="FILE", help="photo to redact (default: a frame of the generated scene)")
    p.add_argument("--size", default="1920x1080", help="canvas WIDTHxHEIGHT (default: %(default)s)")
    p.add_argument("--detector", default="centerface",
                   help="detectors to measure, comma-separated: centerface, blazeface (default: %(default)s)")
    p.add_argument("--min-face", type=int, default=24, help="blazeface: smallest face searched (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=5, help="redactions per detector (default: %(default)s)")
    from edge.privacy.faces import RedactorSettings

    p.add_argument("--manifest", default=RedactorSettings().manifest, help="model manifest (default: %(default)s)")
    p.add_argument("--model", default=None, help="face model file instead of the --detector's")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def main(args: argparse.Namespace) -> int:
    from edge.privacy.faces import DETECTORS, RedactorSettings, build_redactor

    width, height = _size(args.size)
    image = _image(args.image, width, height)
    names = [n.strip() for n in str(args.detector).split(",") if n.strip()]
    unknown = [n for n in names if n not in DETECTORS]
    if unknown or not names:
        raise ConfigError(f"--detector {args.detector!r}: expected names from {sorted(DETECTORS)}")
    results: list[dict[str, Any]] = []
    for name in names:
        settings = RedactorSettings(model=args.model or DETECTORS[name], manifest=args.manifest,
                                    min_face=args.min_face)
        redactor = build_redactor(settings)
        check = redactor.second_pass
        whole = _timed(redactor.redact_image, image, args.repeat)
        detect = _timed(redactor.detector.detect, image, args.repeat)
        checked = _timed(check.detect, image, args.repeat) if check is not None else None
        _, record = redactor.redact_image(image)
        results.append({
            "detector": redactor.detector_name, "threshold": settings.threshold, "margin": settings.margin,
            "median_ms": whole[0], "max_ms": whole[1], "cpu_ms": whole[2],
            "detect_ms": detect[0], "detect_cpu_ms": detect[2],
            "check_ms": checked[0] if checked else None, "check_cpu_ms": checked[2] if checked else None,
            "regions": record.regions,
        })
    out = {"size": [width, height], "image": args.image or "generated scene frame", "threads": 1,
           "repeat": max(1, args.repeat), "results": results}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"redaction of a {width}x{height} image ({out['image']}), one thread, {out['repeat']} runs each")
        print(f"{'detector':>34} {'median_ms':>10} {'max_ms':>8} {'cpu_ms':>8} {'detect_ms':>10} {'check_ms':>9} "
              f"{'regions':>8}")
        for r in results:
            print(f"{r['detector']:>34} {r['median_ms']:>10} {r['max_ms']:>8} {r['cpu_ms']:>8} {r['detect_ms']:>10} "
                  f"{r['check_ms']!s:>9} {r['regions']:>8}")
    return 0


def _timed(call: Callable[[Image], object], image: Image, repeat: int) -> tuple[float, float, float]:
    """(median wall ms, max wall ms, median thread CPU ms) of ``repeat`` calls, after one warm-up call."""
    call(image)
    wall, cpu = [], []
    for _ in range(max(1, repeat)):
        t0, c0 = time.perf_counter(), time.thread_time()
        call(image)
        wall.append((time.perf_counter() - t0) * 1000.0)
        cpu.append((time.thread_time() - c0) * 1000.0)
    return round(statistics.median(wall), 1), round(max(wall), 1), round(statistics.median(cpu), 1)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {text!r}: expected WIDTHxHEIGHT, for example 1920x1080") from None
    if not (64 <= w <= 8192 and 64 <= h <= 8192):
        raise ConfigError(f"--size {text!r}: each side must be 64 to 8192 pixels")
    return w, h


def _image(path: str | None, width: int, height: int) -> Image:
    if path is None:
        from dataclasses import replace

        from edge.sample.scene import default_scene, render_frames

        spec = replace(default_scene(), width=width, height=height)
        frames = render_frames(spec)
        for _ in range(round(spec.fps * 1.5)):  # a moment with a vehicle and people in view
            next(frames)
        return np.asarray(next(frames), np.uint8)
    photo = cv2.imread(str(Path(path)), cv2.IMREAD_COLOR)
    if photo is None:
        raise ConfigError(f"--image {path!r} cannot be read as an image")
    canvas = np.full((height, width, 3), 90, np.uint8)
    ph, pw = photo.shape[:2]
    s = min(1.0, width / pw, height / ph)
    if s < 1.0:
        photo = cv2.resize(photo, (round(pw * s), round(ph * s)), interpolation=cv2.INTER_AREA)
        ph, pw = photo.shape[:2]
    y, x = (height - ph) // 2, (width - pw) // 2
    canvas[y : y + ph, x : x + pw] = photo
    return canvas
