"""Synthetic sightings for tracker and voting tests (no detector, no OCR)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from edge.domain import Box, FormatMatch, PlateDetection, PlateRead, PlateText

T0 = datetime(2026, 3, 14, 8, 0, tzinfo=UTC)
FPS = 25.0
FRAME = np.zeros((720, 1280, 3), np.uint8)


def crop(w: int, h: int, *, sharp: bool = True) -> np.ndarray:
    """A plate-like patch: white with dark bars (sharp) or a flat grey (blurred)."""
    patch = np.full((max(2, h), max(2, w), 3), 230, np.uint8)
    if sharp:
        patch[:, ::6] = 20
    else:
        patch[:] = 128
    return patch


def sighting(
    text: str,
    frame: int,
    x: float,
    y: float,
    w: float = 120.0,
    *,
    conf: float = 0.9,
    confs: tuple[float, ...] | None = None,
    valid: bool = True,
    sharp: bool = True,
) -> PlateRead:
    """A read of ``text`` at frame ``frame`` (timed at 25 fps), plate centred on (x, y), ``w`` wide."""
    h = w / 4.7
    box = Box(round(x - w / 2), round(y - h / 2), round(w), round(h))
    stamp = T0 + timedelta(seconds=frame / FPS)
    char_confs = confs if confs is not None else (conf,) * len(text)
    match = FormatMatch(text, "uk_current" if valid else None, False, text)
    return PlateRead(frame, stamp, PlateDetection(box, 0.9), PlateText(text, char_confs), match,
                     crop(box.w, box.h, sharp=sharp))


def at(frame: int) -> datetime:
    return T0 + timedelta(seconds=frame / FPS)
