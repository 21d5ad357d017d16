"""``edge-anpr bench redaction``: what face redaction costs per image, on one thread.

Redacts an image with the node's redactor (first pass, fill, second-pass check) and prints the time per
image: ``median_ms`` with a fresh tile memo (every tile runs the model), and ``unchanged_image_ms`` for
the same pixels a second time (a static camera's unchanged tiles are not rerun). The default image is a
1920x1080 frame of the generated scene (vehicles, a driver behind the windscreen, pedestrians);
``--image`` takes a photo (letterboxed into the ``--size`` canvas, never scaled up). The ``--min-face``
values are measured one after the other: the smallest face looked for sets how many model runs it takes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.domain import Image
from edge.errors import ConfigError


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", metavar="FILE", help="photo to redact (default: a frame of the generated scene)")
    p.add_argument("--size", default="1920x1080", help="canvas WIDTHxHEIGHT (default: %(default)s)")
    p.add_argument("--min-face", default="24,48,96", help="smallest face heights to measure, comma-separated "
                   "(default: %(default)s; the node's default is 24)")
    p.add_argument("--repeat", type=int, default=5, help="redactions per setting (default: %(default)s)")
    from edge.privacy.faces import RedactorSettings

    defaults = RedactorSettings()
    p.add_argument("--model", default=defaults.model, help="face model (default: %(default)s)")
    p.add_argument("--manifest", default=defaults.manifest, help="model manifest (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def main(args: argparse.Namespace) -> int:
    from edge.privacy.faces import RedactorSettings, build_redactor

    width, height = _size(args.size)
    image = _image(args.image, width, height)
    results: list[dict[str, Any]] = []
    for min_face in _ints(args.min_face):
        settings = RedactorSettings(model=args.model, manifest=args.manifest, min_face=min_face)
        cold, cpu, warm, regions = [], [], [], 0
        for _ in range(max(1, args.repeat)):
            redactor = build_redactor(settings)  # a fresh tile memo: every tile is a new one
            t0, c0 = time.perf_counter(), time.thread_time()
            _, record = redactor.redact_image(image)
            cold.append((time.perf_counter() - t0) * 1000.0)
            cpu.append((time.thread_time() - c0) * 1000.0)
            regions = record.regions
            t0 = time.perf_counter()
            redactor.redact_image(image)  # the same pixels again: only what the memo cannot vouch for runs
            warm.append((time.perf_counter() - t0) * 1000.0)
        results.append({
            "min_face": min_face, "median_ms": round(statistics.median(cold), 1), "max_ms": round(max(cold), 1),
            "cpu_ms": round(statistics.median(cpu), 1), "unchanged_image_ms": round(statistics.median(warm), 1),
            "regions": regions,
        })
    out = {"size": [width, height], "image": args.image or "generated scene frame", "threads": 1,
           "repeat": max(1, args.repeat), "results": results}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"redaction of a {width}x{height} image ({out['image']}), one thread, {out['repeat']} runs each")
        print(f"{'min_face':>8} {'median_ms':>10} {'max_ms':>8} {'cpu_ms':>8} {'unchanged_ms':>13} {'regions':>8}")
        for r in results:
            print(f"{r['min_face']:>8} {r['median_ms']:>10} {r['max_ms']:>8} {r['cpu_ms']:>8} "
                  f"{r['unchanged_image_ms']:>13} {r['regions']:>8}")
    return 0


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {text!r}: expected WIDTHxHEIGHT, for example 1920x1080") from None
    if not (64 <= w <= 8192 and 64 <= h <= 8192):
        raise ConfigError(f"--size {text!r}: each side must be 64 to 8192 pixels")
    return w, h


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--min-face {text!r}: expected whole numbers, for example 24,48") from None
    if not values or min(values) < 4:
        raise ConfigError(f"--min-face {text!r}: give at least one value of 4 pixels or more")
    return values


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
