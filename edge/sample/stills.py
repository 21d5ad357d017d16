"""``edge-anpr sample-plates OUT``: labelled still images of plates, by day or under infrared light at night.

Writes a folder that ``eval plates`` reads: ``labels.csv`` (``file,plate,x,y,w,h``, plus what each image was made
with: ``polarity``, ``shutter_s``, ``blur_px``) and the images. Two kinds:

- ``frames``: a whole camera frame (a dark road, one vehicle, its plate) to score the detector and the reader;
- ``crops``: the plate cut out with some of the vehicle around it, labelled with the whole crop (reader only).

The ``night_ir`` look is what a NoIR plate camera under its own 850 nm lamp records (``../shared/BRIEF.md``):
monochrome; the retro-reflective plate glows while bodywork and road stay dark (a light paint a little
brighter); dark characters on the glowing plate, or, on a share of the plates, the reverse (an over-lit plate
whose characters glow brighter than its dulled background, as in some real IR crops); the vehicle's headlights
bloom, a glare washes over part of the plate, the sensor adds noise at high gain, and the vehicle's speed
(9-31 m/s) blurs the plate along its motion during the shutter (1/250 to 1/2000 s: the blur in pixels is speed x
exposure x pixels per metre x the share of the motion across the image). ``day`` renders the same scenes in
daylight colours without the lamp's effects, to compare.

Every image is a pure function of ``(seed, index)``; nothing here is tuned on an evaluation set. The tests use
small sets; figures are measured on a seed that no setting was chosen on (see the README, Night and two cameras).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from edge.domain import Box, Image, as_image
from edge.errors import ConfigError, EdgeError
from edge.sample.plates import random_registration, render_plate

Kind = Literal["frames", "crops"]
Look = Literal["day", "night_ir"]
FloatFrame = npt.NDArray[np.float32]  # a working frame (H, W, 3) before the sensor
KINDS: tuple[Kind, ...] = ("frames", "crops")
LOOKS: tuple[Look, ...] = ("day", "night_ir")
SHUTTERS_S = (1 / 250, 1 / 500, 1 / 1000, 1 / 2000)
PLATE_M = 0.52  # a UK plate's width in metres
INVERTED_SHARE = 0.2  # night plates whose characters glow brighter than their background
ON = dt.date(2026, 3, 14)


@dataclass(frozen=True, slots=True)
class Still:
    """One rendered image and what is in it."""

    image: Image
    plate: str  # stored form, no space
    box: Box  # the plate in the image's pixels
    polarity: str  # "dark" characters on a light plate, or "light" on dark
    shutter_s: float
    blur_px: float


def render_still(seed: int, index: int, *, look: Look = "night_ir", kind: Kind = "frames",
                 size: tuple[int, int] = (1280, 720)) -> Still:
    """Image ``index`` of the set of ``seed``: a frame of ``size`` (width, height), or its plate's crop."""
    rng = np.random.default_rng([seed, index])
    width, height = size
    night = look == "night_ir"
    display = random_registration(rng, on=ON)
    rear = bool(rng.random() < 0.4)
    plate = render_plate(display, rear=rear, char_height=48, rng=rng)
    plate_w = int(rng.uniform(0.07, 0.2) * width)  # 90-256 px in a 1280-wide frame
    plate_h = max(8, round(plate_w * plate.shape[0] / plate.shape[1]))
    inverted = night and bool(rng.random() < INVERTED_SHARE)
    patch = _ir_plate(plate, rng, inverted) if night else plate
    patch = as_image(cv2.resize(patch, (plate_w, plate_h), interpolation=cv2.INTER_AREA))
    frame, box = _scene(rng, patch, width, height, night=night, rear=rear)
    shutter = float(rng.choice(SHUTTERS_S))
    speed = float(rng.uniform(9.0, 31.0))  # m/s: 20-70 mph
    blur = speed * shutter * plate_w / PLATE_M * float(rng.uniform(0.1, 0.35))
    shot = _sensor(_motion_blur(frame, blur, float(rng.uniform(60.0, 120.0))), rng, night=night)
    image, box = (shot, box) if kind == "frames" else _crop(shot, box, rng)
    return Still(image, display.replace(" ", ""), box, "light" if inverted else "dark", shutter, round(blur, 2))


def _ir_plate(plate: Image, rng: np.random.Generator, inverted: bool) -> Image:
    """The plate as the lamp lights it: grey, its retro-reflective background bright (or, inverted, dull with
    bright characters), a glare across part of it."""
    grey = cv2.cvtColor(plate, cv2.COLOR_BGR2GRAY).astype(np.float32)
    ink = 1.0 - (grey - grey.min()) / max(1.0, float(np.ptp(grey)))  # 1 on the characters
    if inverted:
        background, chars = rng.uniform(45, 110), rng.uniform(170, 245)
    else:
        background, chars = rng.uniform(140, 245), rng.uniform(10, 70)
    out = background + (chars - background) * ink
    h, w = out.shape
    gx, gy = rng.uniform(0, w), rng.uniform(-0.5 * h, 1.5 * h)  # a glare centred anywhere near the plate
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    spread = rng.uniform(0.3, 0.8) * w
    out += rng.uniform(0, 70) * np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * spread**2))
    return as_image(cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR))


def _scene(rng: np.random.Generator, patch: Image, width: int, height: int, *, night: bool,
           rear: bool) -> tuple[FloatFrame, Box]:
    """A road with one vehicle carrying ``patch`` as its plate; the plate's box."""
    ph, pw = patch.shape[:2]
    road = rng.uniform(12, 35) if night else rng.uniform(80, 120)
    frame = np.full((height, width, 3), road, np.float32)
    frame += rng.normal(0, 3 if night else 6, (height, width, 1)).astype(np.float32)  # asphalt texture
    for k in range(3):  # lane markings: retro-reflective, they glow too
        x = int(width * (0.2 + 0.3 * k + rng.uniform(-0.05, 0.05)))
        cv2.line(frame, (x, 0), (x + int(rng.uniform(-80, 80)), height), (150, 150, 150) if night else (220,) * 3,
                 max(2, width // 300))
    cx = rng.uniform(0.3, 0.7) * width
    cy = rng.uniform(0.45, 0.8) * height
    vw, vh = pw * rng.uniform(3.4, 4.2), pw * rng.uniform(2.4, 3.0)
    body = rng.uniform(10, 75) if night else rng.uniform(20, 220)
    colour = (body, body, body) if night else tuple(float(v) for v in rng.uniform(20, 220, 3))
    x0, y0 = int(cx - vw / 2), int(cy - 0.72 * vh)
    cv2.rectangle(frame, (x0, y0), (int(cx + vw / 2), int(cy + 0.28 * vh)), colour, -1)
    glass = 0.5 * body if night else 50.0
    cv2.rectangle(frame, (int(x0 + 0.12 * vw), int(y0 + 0.06 * vh)), (int(x0 + 0.88 * vw), int(y0 + 0.4 * vh)),
                  (glass, glass, glass), -1)
    px, py = int(cx - pw / 2), int(cy - ph / 2)
    lights = []
    for lx in (x0 + 0.12 * vw, x0 + 0.88 * vw):
        ly = y0 + 0.58 * vh
        lights.append((lx, ly))
        lamp = (230, 230, 230) if not rear else ((120, 120, 120) if night else (40, 40, 200))
        cv2.ellipse(frame, (int(lx), int(ly)), (int(0.08 * vw), int(0.04 * vh)), 0, 0, 360, lamp, -1)
    frame[py : py + ph, px : px + pw] = patch.astype(np.float32)
    if night and not rear:  # headlights bloom over the bodywork and towards the plate
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        for lx, ly in lights:
            radius = rng.uniform(0.1, 0.3) * vw
            frame += (rng.uniform(40, 130) * np.exp(-((xx - lx) ** 2 + (yy - ly) ** 2) / (2 * radius**2)))[..., None]
    return frame, Box(px, py, pw, ph)


def _motion_blur(frame: FloatFrame, length: float, angle_deg: float) -> FloatFrame:
    """``frame`` smeared over ``length`` pixels along ``angle_deg`` (0: across the image, 90: down it)."""
    if length < 1.0:
        return frame
    size = math.ceil(length) | 1
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    dx, dy = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    cv2.line(kernel, (round(c - dx * length / 2), round(c - dy * length / 2)),
             (round(c + dx * length / 2), round(c + dy * length / 2)), 1.0, 1)
    kernel /= max(1e-6, float(kernel.sum()))
    return np.asarray(cv2.filter2D(frame, -1, kernel), np.float32)


def _sensor(frame: FloatFrame, rng: np.random.Generator, *, night: bool) -> Image:
    """Read noise and shot noise at the gain the light needs, clipped, then one grey (night) or colour image."""
    sigma = rng.uniform(3.0, 9.0) if night else rng.uniform(1.0, 3.0)
    noisy = frame + rng.normal(0, 1, (*frame.shape[:2], 1)).astype(np.float32) * (
        sigma + 0.03 * np.sqrt(np.maximum(frame, 0)) * sigma)
    out = as_image(np.clip(noisy, 0, 255).astype(np.uint8))
    if night:  # one channel: a monochrome sensor
        return as_image(cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR))
    return out


def _crop(frame: Image, box: Box, rng: np.random.Generator) -> tuple[Image, Box]:
    """The plate with a margin of the vehicle around it (5-20% of its width each side), labelled whole."""
    mx, my = int(box.w * rng.uniform(0.05, 0.2)), int(box.h * rng.uniform(0.1, 0.5))
    x0, y0 = max(0, box.x - mx), max(0, box.y - my)
    x1, y1 = min(frame.shape[1], box.x + box.w + mx), min(frame.shape[0], box.y + box.h + my)
    crop = as_image(np.ascontiguousarray(frame[y0:y1, x0:x1]))
    return crop, Box(0, 0, x1 - x0, y1 - y0)


def write_set(out: Path, *, seed: int, count: int, look: Look = "night_ir", kind: Kind = "frames",
              size: tuple[int, int] = (1280, 720)) -> Path:
    """Write ``count`` stills and their ``labels.csv`` into ``out``; return the labels' path."""
    if count < 1:
        raise ConfigError(f"--count {count} must be at least 1")
    out.mkdir(parents=True, exist_ok=True)
    labels = out / "labels.csv"
    with labels.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "plate", "x", "y", "w", "h", "polarity", "shutter_s", "blur_px"])
        for i in range(count):
            still = render_still(seed, i, look=look, kind=kind, size=size)
            name = f"{look}_{seed}_{i:04d}.png"
            if not cv2.imwrite(str(out / name), still.image):
                raise ConfigError(f"cannot write {str(out / name)!r}")
            b = still.box
            writer.writerow([name, still.plate, b.x, b.y, b.w, b.h, still.polarity, f"{still.shutter_s:.5f}",
                             still.blur_px])
    return labels


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", metavar="OUT", help="folder to write the images and labels.csv into")
    p.add_argument("--look", choices=LOOKS, default="night_ir", help="day, or night under an IR lamp (default)")
    p.add_argument("--kind", choices=KINDS, default="frames",
                   help="whole frames (detector and reader) or plate crops labelled whole (reader only)")
    p.add_argument("--seed", type=int, default=0, help="set seed (default: %(default)s)")
    p.add_argument("--count", type=int, default=100, help="images (default: %(default)s)")
    p.add_argument("--size", default="1280x720", metavar="WxH", help="frame size (default: %(default)s)")


def main(args: argparse.Namespace) -> int:
    try:
        w, _, h = str(args.size).partition("x")
        size = (int(w), int(h))
    except ValueError:
        print(f"error: --size {args.size!r}: expected WxH, e.g. 1280x720", file=sys.stderr)
        return 2
    try:
        labels = write_set(Path(args.out), seed=args.seed, count=args.count, look=args.look, kind=args.kind,
                           size=size)
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"wrote {args.count} {args.look} {args.kind} and {labels}; score them with: edge-anpr eval plates {args.out}")
    return 0
