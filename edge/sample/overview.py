"""The sample scene's second camera: a colour overview of the same vehicles, wider than the plate camera's view.

The overview camera sits beside the plate camera and sees more of the road: the plate camera's picture appears
in it ``ZOOM`` times as large, centred, with the road, pavements and sky around it. It is always colour: by
night (the scene's ``night_ir`` look, where the plate camera sees the IR look) it is a dim, noisy street-lit
colour picture. Its frames can start later than the plate camera's (``offset_s``) and run at their own rate, as
a second camera's do; its sidecar says when it started, so a replay pairs the two by time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from edge.domain import Image, as_image
from edge.sample.plates import render_plate
from edge.sample.scene import SceneSpec, _background, draw_at

ZOOM = 0.6  # the plate camera's view fills this share of the overview's width and height
HORIZON = 0.3  # the scene's horizon, as a share of the frame's height (scene._background)
NIGHT_LEVEL = 0.45  # a street-lit night in colour: this share of the day's brightness


def overview_path(video: str | Path) -> Path:
    """Where ``sample-scene VIDEO --overview`` writes the overview: ``<name>.overview.mp4`` beside it."""
    video = Path(video)
    return video.with_name(f"{video.stem}.overview{video.suffix or '.mp4'}")


def render_overview(
    spec: SceneSpec, *, offset_s: float = 0.0, fps: float | None = None, size: tuple[int, int] | None = None
) -> Iterator[Image]:
    """Every overview frame (BGR) from ``offset_s`` after the scene's start to its end, at ``fps`` (default the
    scene's), ``size`` (width, height; default the scene's)."""
    rate = fps or spec.fps
    width, height = size or (spec.width, spec.height)
    plates = {v.plate: render_plate(v.plate, rear=not v.approaching, char_height=64) for v in spec.vehicles}
    background = _background(spec.width, spec.height)
    around = _background(width, height)
    inner_w, inner_h = round(width * ZOOM), round(height * ZOOM)
    # the plate camera's road (below its horizon) pasted so that both horizons meet: its sky is the overview's
    sky = round(inner_h * HORIZON)
    x0, y0 = (width - inner_w) // 2, round(HORIZON * (height - inner_h))
    rng = np.random.default_rng(spec.seed * 7_919 + 1)
    night = spec.look == "night_ir"
    sigma = 7.0 if night else 2.5
    for i in range(max(0, round((spec.duration_s - offset_s) * rate))):
        view, _ = draw_at(spec, offset_s + i / rate, background, plates)
        frame = around.copy()
        small = cv2.resize(view, (inner_w, inner_h), interpolation=cv2.INTER_AREA)
        frame[y0 + sky : y0 + inner_h, x0 : x0 + inner_w] = small[sky:]
        level = NIGHT_LEVEL if night else 1.0
        noise = rng.normal(0, sigma, frame.shape).astype(np.float32)
        yield as_image(np.clip(frame.astype(np.float32) * level + noise, 0, 255).astype(np.uint8))


def write_overview(
    spec: SceneSpec, video: str | Path, *, offset_s: float = 0.0, fps: float | None = None,
    size: tuple[int, int] | None = None,
) -> tuple[Path, Path]:
    """Write the overview video (mp4) and its sidecar JSON (its own start time); return their paths."""
    video = Path(video)
    video.parent.mkdir(parents=True, exist_ok=True)
    rate = fps or spec.fps
    width, height = size or (spec.width, spec.height)
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), rate, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write video {str(video)!r} (mp4v codec)")
    try:
        for frame in render_overview(spec, offset_s=offset_s, fps=rate, size=(width, height)):
            writer.write(frame)
    finally:
        writer.release()
    start = datetime.fromisoformat(spec.start_time.replace("Z", "+00:00")) + timedelta(seconds=offset_s)
    sidecar = video.with_suffix(".json")
    sidecar.write_text(json.dumps({
        "kind": "edge-anpr synthetic scene overview", "start_time": start.isoformat(), "offset_s": offset_s,
        "fps": rate, "width": width, "height": height, "zoom": ZOOM, "scene": asdict(spec),
    }, indent=2), encoding="utf-8")
    return video, sidecar
