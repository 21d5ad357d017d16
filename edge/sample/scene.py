"""A synthetic road scene the project renders itself: vehicles with UK plates moving through the view.

Used by the demo and the tests. The scene is a pure function of its spec and seed; writing it
produces the video, a sidecar JSON (start time, frame rate, seed) and a truth CSV in the format
testers use (``plate,first_seen_s,last_seen_s,direction``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from edge.domain import Image, as_image
from edge.sample.plates import random_registration, render_plate

BODY_COLOURS = ((40, 40, 170), (150, 60, 30), (50, 110, 40), (70, 70, 70), (30, 30, 30), (120, 40, 110))


@dataclass(frozen=True, slots=True)
class VehicleSpec:
    plate: str  # as displayed, e.g. "AB12 CDE"
    enter_s: float  # when the vehicle comes into view
    duration_s: float  # how long it takes to cross the view
    lane_x: float  # lane centre as a share of the frame width
    approaching: bool = True  # True: far (top) to near (bottom), front plate; False: the reverse, rear plate
    colour: int = 0


@dataclass(frozen=True, slots=True)
class SceneSpec:
    width: int = 1280
    height: int = 720
    fps: float = 25.0
    duration_s: float = 10.0
    start_time: str = "2026-03-14T08:00:00Z"
    vehicles: tuple[VehicleSpec, ...] = ()
    seed: int = 7


def default_scene(seed: int = 7, vehicles: int = 4) -> SceneSpec:
    """A short scene: ``vehicles`` cars in two lanes, spaced so each is seen on its own."""
    rng = np.random.default_rng(seed)
    start = datetime(2026, 3, 14, 8, 0, tzinfo=UTC)
    specs: list[VehicleSpec] = []
    t = 0.3
    for i in range(vehicles):
        approaching = i % 3 != 2
        duration = float(rng.uniform(2.2, 3.0))
        specs.append(
            VehicleSpec(
                plate=_spaced(random_registration(rng, on=start.date())),
                enter_s=round(t, 2),
                duration_s=round(duration, 2),
                lane_x=0.36 if i % 2 == 0 else 0.64,
                approaching=approaching,
                colour=int(rng.integers(0, len(BODY_COLOURS))),
            )
        )
        t += duration * 0.75
    return SceneSpec(duration_s=round(t + 1.0, 2), vehicles=tuple(specs), seed=seed, start_time=start.isoformat())


def _spaced(reg: str) -> str:
    """Display form: the space before the last three characters (current/prefix) or the obvious split."""
    reg = reg.replace(" ", "")
    if len(reg) >= 5 and reg[-3:].isalpha() and reg[-4].isdigit():  # current and prefix: AB12 CDE, A123 BCD
        return f"{reg[:-3]} {reg[-3:]}"
    for i in range(1, len(reg)):
        if reg[i - 1].isalpha() != reg[i].isalpha():
            return f"{reg[:i]} {reg[i:]}"
    return reg


def render_frames(spec: SceneSpec) -> Iterator[Image]:
    """Every frame of the scene, in order (BGR, ``spec.width`` x ``spec.height``)."""
    background = _background(spec.width, spec.height)
    plates = {v.plate: render_plate(v.plate, rear=not v.approaching, char_height=64) for v in spec.vehicles}
    n = round(spec.duration_s * spec.fps)
    for i in range(n):
        t = i / spec.fps
        frame = background.copy()
        visible = [v for v in spec.vehicles if 0.0 <= _progress(v, t) <= 1.0]
        # nearer vehicles (further down the frame) are drawn last
        for v in sorted(visible, key=lambda v: _geometry(v, _progress(v, t), spec)[1]):
            _draw_vehicle(frame, v, _progress(v, t), spec, plates[v.plate])
        noise = np.random.default_rng(spec.seed * 100_003 + i).normal(0, 3.0, frame.shape)
        yield np.clip(frame.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def _progress(v: VehicleSpec, t: float) -> float:
    return (t - v.enter_s) / v.duration_s


def _geometry(v: VehicleSpec, p: float, spec: SceneSpec) -> tuple[float, float, float]:
    """Centre x, bottom y and scale of the vehicle at progress ``p`` (0: enters, 1: leaves)."""
    q = p if v.approaching else 1.0 - p
    scale = 0.35 + 0.75 * q
    bottom = spec.height * (0.38 + 0.75 * q)
    cx = spec.width * (0.5 + (v.lane_x - 0.5) * (0.5 + 0.7 * q))
    return cx, bottom, scale


def _background(width: int, height: int) -> Image:
    img = np.zeros((height, width, 3), np.uint8)
    img[:] = (95, 95, 90)
    horizon = int(height * 0.3)
    img[:horizon] = (200, 170, 140)
    cv2.rectangle(img, (0, horizon), (int(width * 0.12), height), (120, 125, 125), -1)
    cv2.rectangle(img, (int(width * 0.88), horizon), (width, height), (120, 125, 125), -1)
    for y in range(horizon + 10, height, 60):
        x = width // 2
        cv2.line(img, (x, y), (x, y + 25), (210, 210, 210), 3)
    return img


def _draw_vehicle(frame: Image, v: VehicleSpec, p: float, spec: SceneSpec, plate: Image) -> None:
    cx, bottom, scale = _geometry(v, p, spec)
    w, h = 330 * scale, 230 * scale
    x0, x1 = int(cx - w / 2), int(cx + w / 2)
    y0, y1 = int(bottom - h), int(bottom)
    body = BODY_COLOURS[v.colour % len(BODY_COLOURS)]
    cv2.rectangle(frame, (x0, y0), (x1, y1), body, -1)
    # windscreen (front) or rear window
    cv2.rectangle(frame, (int(x0 + 0.12 * w), int(y0 + 0.08 * h)), (int(x1 - 0.12 * w), int(y0 + 0.42 * h)),
                  (80, 60, 50), -1)
    # lights
    for lx in (x0 + 0.06 * w, x1 - 0.2 * w):
        cv2.rectangle(frame, (int(lx), int(y0 + 0.55 * h)), (int(lx + 0.14 * w), int(y0 + 0.66 * h)),
                      (200, 220, 230) if v.approaching else (40, 40, 200), -1)
    # plate
    pw = max(8, int(0.5 * w))
    ph = max(3, int(pw * plate.shape[0] / plate.shape[1]))
    patch = as_image(cv2.resize(plate, (pw, ph), interpolation=cv2.INTER_AREA))
    px, py = int(cx - pw / 2), int(y0 + 0.74 * h)
    _paste(frame, patch, px, py)


def _paste(frame: Image, patch: Image, x: int, y: int) -> None:
    h, w = patch.shape[:2]
    fx0, fy0 = max(0, x), max(0, y)
    fx1, fy1 = min(frame.shape[1], x + w), min(frame.shape[0], y + h)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    frame[fy0:fy1, fx0:fx1] = patch[fy0 - y : fy1 - y, fx0 - x : fx1 - x]


def truth_rows(spec: SceneSpec) -> list[dict[str, str]]:
    """Ground truth: when each plate is wholly in view, and its direction."""
    rows = []
    for v in spec.vehicles:
        seen = [i / spec.fps for i in range(round(spec.duration_s * spec.fps)) if _plate_in_view(v, i / spec.fps, spec)]
        if not seen:
            continue
        rows.append(
            {
                "plate": v.plate.replace(" ", ""),
                "first_seen_s": f"{seen[0]:.2f}",
                "last_seen_s": f"{seen[-1]:.2f}",
                "direction": "approaching" if v.approaching else "receding",
            }
        )
    return rows


def _plate_in_view(v: VehicleSpec, t: float, spec: SceneSpec) -> bool:
    p = _progress(v, t)
    if not 0.0 <= p <= 1.0:
        return False
    _, bottom, scale = _geometry(v, p, spec)
    h = 230 * scale
    plate_bottom = bottom - h + 0.74 * h + 0.5 * 330 * scale / 4.7
    return plate_bottom < spec.height


def write_scene(spec: SceneSpec, video: str | Path) -> tuple[Path, Path, Path]:
    """Write the video (mp4), its sidecar JSON and truth CSV; return their paths."""
    video = Path(video)
    video.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), spec.fps, (spec.width, spec.height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write video {str(video)!r} (mp4v codec)")
    try:
        for frame in render_frames(spec):
            writer.write(frame)
    finally:
        writer.release()
    sidecar = video.with_suffix(".json")
    sidecar.write_text(json.dumps({**asdict(spec), "kind": "edge-anpr synthetic scene"}, indent=2), encoding="utf-8")
    truth = video.with_name(video.stem + ".truth.csv")
    with truth.open("w", newline="", encoding="utf-8") as fh:
        out = csv.DictWriter(fh, fieldnames=["plate", "first_seen_s", "last_seen_s", "direction"])
        out.writeheader()
        out.writerows(truth_rows(spec))
    return video, sidecar, truth
