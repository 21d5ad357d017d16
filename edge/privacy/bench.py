"""``edge-anpr bench redaction``: what face redaction costs per image, on one thread.

Redacts an image with the node's redactor, as the node does it, and prints the time per image:
``median_ms`` for a ``redacted_overview`` (the detector over the image, its second look at the vehicle
around the plate when that enlarges it, the fill, and the independent BlazeFace check over the output),
``pass_ms`` for the same with the two earlier frames the node keeps of a pass (each looked at for faces to
carry), ``frame_ms`` for an image without a plate, ``detect_ms`` for the detector alone and ``check_ms`` for
the check alone, with the thread CPU time of each (``cpu_ms``: the cost without waiting for a shared core).
The default image is a 1920x1080 frame of the generated scene (a car whose plate is 170 px wide, its driver
behind the windscreen) ``--at`` seconds in; ``--image`` takes a photo (letterboxed into the ``--size``
canvas, never scaled up; no plate, so ``median_ms`` is ``frame_ms``). ``--detector`` measures each named
detector one after the other (``centerface``, the node's: one model run per 16:9 frame; ``blazeface``: a
pyramid of tiles down to ``--min-face``), beside the recall that ``edge-anpr eval faces`` measures for it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.domain import Box, Image, View
from edge.errors import ConfigError


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", metavar="FILE", help="photo to redact (default: a frame of the generated scene)")
    p.add_argument("--size", default="1920x1080", help="canvas WIDTHxHEIGHT (default: %(default)s)")
    p.add_argument("--at", type=float, default=1.5,
                   help="seconds into the generated scene (default: %(default)s; a 170 px plate at 1920x1080)")
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

    cv2.setNumThreads(1)  # one thread, model and image operations alike (OpenCV's pool counts the cores)
    width, height = frame_size(args.size)
    image, plate, views = _scene(args.image, width, height, args.at)
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
        overview = _timed(partial(redactor.redact_image, plate=plate), image, args.repeat)
        whole_pass = _timed(partial(redactor.redact_image, views=views, plate=plate), image, args.repeat)
        frame = _timed(redactor.redact_image, image, args.repeat)
        detect = _timed(redactor.detector.detect, image, args.repeat)
        checked = _timed(check.detect, image, args.repeat) if check is not None else None
        _, record = redactor.redact_image(image, plate=plate)
        results.append({
            "detector": redactor.detector_name, "threshold": settings.threshold, "margin": settings.margin,
            "median_ms": overview[0], "max_ms": overview[1], "cpu_ms": overview[2],
            "pass_ms": whole_pass[0], "pass_cpu_ms": whole_pass[2], "frame_ms": frame[0], "frame_cpu_ms": frame[2],
            "detect_ms": detect[0], "detect_cpu_ms": detect[2],
            "check_ms": checked[0] if checked else None, "check_cpu_ms": checked[2] if checked else None,
            "regions": record.regions,
        })
    out = {"size": [width, height], "image": args.image or f"generated scene frame at {args.at:g} s",
           "plate": None if plate is None else [plate.x, plate.y, plate.w, plate.h], "views": len(views),
           "threads": 1, "repeat": max(1, args.repeat), "results": results}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"redaction of a {width}x{height} image ({out['image']}; plate {out['plate']}), one thread, "
              f"{out['repeat']} runs each")
        print(f"{'detector':>34} {'median_ms':>10} {'max_ms':>8} {'cpu_ms':>8} {'pass_ms':>8} {'frame_ms':>9} "
              f"{'detect_ms':>10} {'check_ms':>9} {'regions':>8}")
        for r in results:
            print(f"{r['detector']:>34} {r['median_ms']:>10} {r['max_ms']:>8} {r['cpu_ms']:>8} {r['pass_ms']:>8} "
                  f"{r['frame_ms']:>9} {r['detect_ms']:>10} {r['check_ms']!s:>9} {r['regions']:>8}")
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


def frame_size(text: str, option: str = "--size") -> tuple[int, int]:
    """``WIDTHxHEIGHT`` as (width, height); a :class:`ConfigError` naming ``option`` when it is not one."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected WIDTHxHEIGHT, for example 1920x1080") from None
    if not (64 <= w <= 8192 and 64 <= h <= 8192):
        raise ConfigError(f"{option} {text!r}: each side must be 64 to 8192 pixels")
    return w, h


def _scene(path: str | None, width: int, height: int, at: float) -> tuple[Image, Box | None, list[View]]:
    """The image to redact, its plate and the pass's two earlier frames (0.2 s apart, as the node keeps them);
    a photo has no plate and no views."""
    if path is not None:
        return _photo(path, width, height), None, []
    from dataclasses import replace

    from edge.sample.scene import default_scene, plate_boxes, render_frames

    spec = replace(default_scene(), width=width, height=height)
    index = round(spec.fps * at)
    if not 0 <= index < round(spec.fps * spec.duration_s):
        raise ConfigError(f"--at {at:g}: the generated scene lasts {spec.duration_s:g} s")
    wanted = [i for i in (index - 2 * round(spec.fps * 0.2), index - round(spec.fps * 0.2), index) if i >= 0]
    rendered = zip(range(index + 1), render_frames(spec), strict=False)
    frames = {i: np.asarray(f, np.uint8) for i, f in rendered if i in wanted}
    plates = {i: plate_boxes(spec, i) for i in wanted}
    if not plates[index]:
        return frames[index], None, []
    views = [View(plate=plates[i][-1], image=frames[i]) for i in wanted[:-1] if plates[i]]
    return frames[index], plates[index][-1], views


def _photo(path: str, width: int, height: int) -> Image:
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
