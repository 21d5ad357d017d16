"""A synthetic road scene the project renders itself: vehicles with UK plates moving through the view.

Used by the demo, the tests and the bench. A scene is a pure function of its spec: writing it
produces the video, a sidecar JSON (the spec, with the start time) and a truth CSV in the format
testers use (``plate,first_seen_s,last_seen_s,direction``, seconds from the start).

The camera looks down a two-lane road: approaching vehicles (front plate, white) come from the top
of the frame and grow; receding ones (rear plate, yellow) shrink towards the top. A vehicle can stop
for a while (a queue, a barrier), two can run side by side (overtaking), drivers show a face behind
the windscreen, pedestrians stand on the pavements, and a night-IR look renders the scene grey and
low in contrast with bright, retro-reflective plates. :func:`scenario` names ready-made scenes.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from edge.domain import Box, Image, as_image
from edge.sample.people import draw_face, draw_pedestrian
from edge.sample.plates import random_registration, render_plate

BODY_COLOURS = ((40, 40, 170), (150, 60, 30), (50, 110, 40), (70, 70, 70), (30, 30, 30), (120, 40, 110))
LANES = (0.36, 0.64)  # lane centres as shares of the frame width
BASE_HEIGHT = 720.0  # vehicle sizes are given for a 720-line frame and scale with the frame height
NOISE_BANK = 4  # pre-drawn noise fields cycled over the frames (rendering stays cheap)

Look = Literal["day", "night_ir"]


@dataclass(frozen=True, slots=True)
class VehicleSpec:
    plate: str  # as displayed, e.g. "AB12 CDE"
    enter_s: float  # when the vehicle comes into view
    duration_s: float  # how long it takes to cross the view while moving
    lane_x: float  # lane centre as a share of the frame width
    approaching: bool = True  # True: far (top) to near (bottom), front plate; False: the reverse, rear plate
    colour: int = 0
    stop_at: float | None = None  # progress (0..1) where it stops, if it does
    stop_s: float = 0.0  # how long it waits there
    driver: bool = True  # a face behind the windscreen (approaching vehicles only)


@dataclass(frozen=True, slots=True)
class PedestrianSpec:
    x: float  # share of the frame width (the pavements are below 0.12 and above 0.88)
    feet_y: float  # share of the frame height
    height: float  # share of the frame height
    walk: float = 0.0  # shares of the frame width per second
    look: int = 0


@dataclass(frozen=True, slots=True)
class SceneSpec:
    width: int = 1280
    height: int = 720
    fps: float = 25.0
    duration_s: float = 10.0
    start_time: str = "2026-03-14T08:00:00Z"
    vehicles: tuple[VehicleSpec, ...] = ()
    seed: int = 7
    look: Look = "day"
    pedestrians: tuple[PedestrianSpec, ...] = ()


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
                lane_x=LANES[i % 2],
                approaching=approaching,
                colour=int(rng.integers(0, len(BODY_COLOURS))),
            )
        )
        t += duration * 0.75
    return SceneSpec(duration_s=round(t + 1.0, 2), vehicles=tuple(specs), seed=seed, start_time=start.isoformat())


SCENARIOS = ("default", "overtake", "stop", "speeds", "night", "faces", "mixed")


def scenario(name: str, seed: int = 7) -> SceneSpec:
    """A named scene for tests and demos (see ``SCENARIOS``); each is a few seconds at 1280x720, 25 fps.

    overtake: two vehicles side by side, one passing the other; stop: a vehicle waits 3 s mid-view
    while another passes; speeds: slow, normal and fast vehicles; night: the default traffic in the
    night-IR look; faces: drivers and pedestrians; mixed: all of these, longer.
    """
    base = default_scene(seed)
    rng = np.random.default_rng(seed + 1000)
    on = datetime.fromisoformat(base.start_time).date()

    def plate() -> str:
        return _spaced(random_registration(rng, on=on))

    people = (PedestrianSpec(0.05, 0.92, 0.30, 0.0, 1), PedestrianSpec(0.94, 0.62, 0.2, -0.01, 2))
    builders: dict[str, Callable[[], SceneSpec]] = {
        "default": lambda: base,
        "overtake": lambda: replace(base, duration_s=4.6, vehicles=(
            VehicleSpec(plate(), 0.3, 3.6, LANES[0], colour=1), VehicleSpec(plate(), 0.6, 2.4, LANES[1], colour=3))),
        "stop": lambda: replace(base, duration_s=6.6, vehicles=(
            VehicleSpec(plate(), 0.3, 2.6, LANES[0], colour=2, stop_at=0.45, stop_s=3.0),
            VehicleSpec(plate(), 1.5, 2.4, LANES[1], approaching=False, colour=5))),
        "speeds": lambda: replace(base, duration_s=6.2, vehicles=(
            VehicleSpec(plate(), 0.2, 4.5, LANES[0], colour=0), VehicleSpec(plate(), 0.8, 1.6, LANES[1], colour=4),
            VehicleSpec(plate(), 3.2, 2.4, LANES[1], approaching=False, colour=2))),
        "night": lambda: replace(base, look="night_ir"),
        "faces": lambda: replace(base, pedestrians=people),
        "mixed": lambda: replace(base, duration_s=14.0, pedestrians=people, vehicles=(
            VehicleSpec(plate(), 0.3, 3.6, LANES[0], colour=1), VehicleSpec(plate(), 0.6, 2.4, LANES[1], colour=3),
            VehicleSpec(plate(), 3.6, 2.6, LANES[0], colour=2, stop_at=0.5, stop_s=2.5),
            VehicleSpec(plate(), 4.4, 2.2, LANES[1], approaching=False, colour=5),
            VehicleSpec(plate(), 9.2, 1.8, LANES[1], colour=0), VehicleSpec(plate(), 9.6, 4.0, LANES[0], colour=4))),
    }
    if name not in builders:
        raise ValueError(f"unknown scenario {name!r}; choose one of {list(SCENARIOS)}")
    return builders[name]()


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
    night = spec.look == "night_ir"
    background = _background(spec.width, spec.height)
    plates = {v.plate: render_plate(v.plate, rear=not v.approaching, char_height=64) for v in spec.vehicles}
    if night:  # retro-reflective plates under IR: bright grey, dark characters
        plates = {k: _ir_plate(p) for k, p in plates.items()}
    rng = np.random.default_rng(spec.seed * 100_003)
    sigma = 6.0 if night else 3.0
    noise = [rng.normal(0, sigma, (spec.height, spec.width, 1)).astype(np.int16) for _ in range(NOISE_BANK)]
    for i in range(round(spec.duration_s * spec.fps)):
        t = i / spec.fps
        frame, plate_spots = draw_at(spec, t, background, plates)
        if night:
            frame = _night(frame)
            for patch, x, y in plate_spots:  # the plate is drawn after the contrast drop: it shines
                _paste(frame, patch, x, y)
        shaken = np.roll(noise[i % NOISE_BANK], (i * 7) % spec.height, axis=0)
        yield np.clip(frame.astype(np.int16) + shaken, 0, 255).astype(np.uint8)


def draw_at(
    spec: SceneSpec, t: float, background: Image, plates: dict[str, Image]
) -> tuple[Image, list[tuple[Image, int, int]]]:
    """The scene at ``t`` seconds drawn on a copy of ``background`` (no look, no noise), and where each visible
    plate patch went."""
    frame = background.copy()
    for person in spec.pedestrians:
        x = (person.x + person.walk * t) * spec.width
        draw_pedestrian(frame, x, person.feet_y * spec.height, person.height * spec.height, look=person.look)
    visible = [v for v in spec.vehicles if 0.0 <= _progress(v, t) <= 1.0]
    # nearer vehicles (further down the frame) are drawn last
    plate_spots: list[tuple[Image, int, int]] = []
    for v in sorted(visible, key=lambda v: _geometry(v, _progress(v, t), spec)[1]):
        plate_spots = [s for s in plate_spots if not _covers(v, t, spec, s)]
        plate_spots.append(_draw_vehicle(frame, v, _progress(v, t), spec, plates[v.plate]))
    return frame, plate_spots


def _progress(v: VehicleSpec, t: float) -> float:
    """Share of the crossing done at ``t`` (below 0: not yet in view; above 1: gone), stops included."""
    moving = t - v.enter_s
    if v.stop_at is not None and v.stop_s > 0:
        stop_start = v.stop_at * v.duration_s
        if stop_start <= moving < stop_start + v.stop_s:
            return v.stop_at
        if moving >= stop_start + v.stop_s:
            moving -= v.stop_s
    return moving / v.duration_s


def _geometry(v: VehicleSpec, p: float, spec: SceneSpec) -> tuple[float, float, float]:
    """Centre x, bottom y and scale (in pixels of this frame size) of the vehicle at progress ``p``."""
    q = p if v.approaching else 1.0 - p
    scale = (0.35 + 0.75 * q) * spec.height / BASE_HEIGHT
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
    dash, gap = round(25 * height / BASE_HEIGHT), round(60 * height / BASE_HEIGHT)
    for y in range(horizon + 10, height, gap):
        x = width // 2
        cv2.line(img, (x, y), (x, y + dash), (210, 210, 210), max(1, round(3 * height / BASE_HEIGHT)))
    return img


def _night(frame: Image) -> Image:
    """Night under IR illumination: grey, dark and flat."""
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.float32)
    flat = np.clip(grey * 0.35 + 18.0, 0, 255).astype(np.uint8)
    return as_image(cv2.cvtColor(flat, cv2.COLOR_GRAY2BGR))


def _ir_plate(plate: Image) -> Image:
    grey = cv2.cvtColor(plate, cv2.COLOR_BGR2GRAY).astype(np.float32)
    bright = np.clip((grey - grey.min()) / max(1.0, float(np.ptp(grey))) * 200.0 + 40.0, 0, 255).astype(np.uint8)
    return as_image(cv2.cvtColor(bright, cv2.COLOR_GRAY2BGR))


def _draw_vehicle(frame: Image, v: VehicleSpec, p: float, spec: SceneSpec, plate: Image) -> tuple[Image, int, int]:
    """Paint the vehicle; return its plate patch and where it went (for the night look to repaint it)."""
    cx, bottom, scale = _geometry(v, p, spec)
    w, h = 330 * scale, 230 * scale
    x0, x1 = int(cx - w / 2), int(cx + w / 2)
    y0, y1 = int(bottom - h), int(bottom)
    body = BODY_COLOURS[v.colour % len(BODY_COLOURS)]
    cv2.rectangle(frame, (x0, y0), (x1, y1), body, -1)
    # windscreen (front) or rear window, with the driver behind a windscreen (right-hand drive: image left)
    wx0, wy0, wx1, wy1 = int(x0 + 0.12 * w), int(y0 + 0.08 * h), int(x1 - 0.12 * w), int(y0 + 0.42 * h)
    cv2.rectangle(frame, (wx0, wy0), (wx1, wy1), (80, 60, 50), -1)
    if v.approaching and v.driver:
        draw_face(frame, wx0 + 0.3 * (wx1 - wx0), wy0 + 0.55 * (wy1 - wy0), 0.62 * (wy1 - wy0), tone=v.colour)
    for lx in (x0 + 0.06 * w, x1 - 0.2 * w):
        cv2.rectangle(frame, (int(lx), int(y0 + 0.55 * h)), (int(lx + 0.14 * w), int(y0 + 0.66 * h)),
                      (200, 220, 230) if v.approaching else (40, 40, 200), -1)
    spot = _plate_box(v, p, spec, plate.shape[0] / plate.shape[1])
    patch = as_image(cv2.resize(plate, (spot.w, spot.h), interpolation=cv2.INTER_AREA))
    _paste(frame, patch, spot.x, spot.y)
    return patch, spot.x, spot.y


def _plate_box(v: VehicleSpec, p: float, spec: SceneSpec, aspect: float) -> Box:
    """Where the plate (height / width ``aspect``) of vehicle ``v`` at progress ``p`` is drawn."""
    cx, bottom, scale = _geometry(v, p, spec)
    w, h = 330 * scale, 230 * scale
    pw = max(8, int(0.5 * w))
    return Box(int(cx - pw / 2), int(int(bottom - h) + 0.74 * h), pw, max(3, int(pw * aspect)))


def plate_boxes(spec: SceneSpec, index: int) -> list[Box]:
    """The boxes of the plates drawn in frame ``index`` (nearest vehicle last), for benchmarks and tests."""
    t = index / spec.fps
    visible = [v for v in spec.vehicles if 0.0 <= _progress(v, t) <= 1.0]
    out = []
    for v in sorted(visible, key=lambda v: _geometry(v, _progress(v, t), spec)[1]):
        shape = render_plate(v.plate, rear=not v.approaching, char_height=64).shape
        out.append(_plate_box(v, _progress(v, t), spec, shape[0] / shape[1]))
    return out


def _covers(v: VehicleSpec, t: float, spec: SceneSpec, spot: tuple[Image, int, int]) -> bool:
    """Whether vehicle ``v`` drawn at ``t`` hides the plate at ``spot``."""
    cx, bottom, scale = _geometry(v, _progress(v, t), spec)
    patch, x, y = spot
    return (cx - 165 * scale < x + patch.shape[1] and x < cx + 165 * scale
            and bottom - 230 * scale < y + patch.shape[0] and y < bottom)


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
