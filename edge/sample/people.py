"""Face-like figures for synthetic scenes: drivers behind the windscreen and pedestrians on the pavement.

Drawn with OpenCV primitives only (a skin-tone head with hair, eyes, brows, nose and mouth, softly
shaded), plausible enough for a face detector to fire on, so the privacy stage has faces to remove.
Pure drawing functions that paint into the image they are given.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.domain import Image

SKIN_TONES = ((140, 170, 220), (110, 150, 200), (80, 120, 175), (60, 90, 140), (45, 65, 100))  # BGR
HAIR = ((30, 30, 35), (40, 60, 90), (20, 20, 20), (90, 110, 140), (150, 150, 150))
CLOTHES = ((120, 60, 30), (40, 40, 140), (60, 110, 60), (50, 50, 50), (150, 140, 120))


def draw_face(image: Image, cx: float, cy: float, height: float, *, tone: int = 0) -> None:
    """A frontal face centred on (cx, cy), ``height`` pixels from chin to crown."""
    h = max(6.0, height)
    w = h * 0.74
    skin = SKIN_TONES[tone % len(SKIN_TONES)]
    hair = HAIR[tone % len(HAIR)]
    c = (round(cx), round(cy))
    # hair behind and above the head, then the face, then a soft shade towards the jaw
    cv2.ellipse(image, (c[0], round(cy - 0.08 * h)), (round(w * 0.56), round(h * 0.55)), 0, 0, 360, hair, -1,
                cv2.LINE_AA)
    cv2.ellipse(image, c, (round(w / 2), round(h / 2)), 0, 0, 360, skin, -1, cv2.LINE_AA)
    cv2.ellipse(image, (c[0], round(cy - 0.38 * h)), (round(w * 0.5), round(h * 0.16)), 0, 180, 360, hair, -1,
                cv2.LINE_AA)
    shade = tuple(int(v * 0.85) for v in skin)
    cv2.ellipse(image, (c[0], round(cy + 0.3 * h)), (round(w * 0.36), round(h * 0.16)), 0, 0, 180, shade, -1,
                cv2.LINE_AA)
    eye_y = round(cy - 0.06 * h)
    for side in (-1, 1):
        ex = round(cx + side * 0.2 * w)
        brow = (ex - round(0.1 * w), round(cy - 0.17 * h)), (ex + round(0.1 * w), round(cy - 0.18 * h))
        cv2.line(image, brow[0], brow[1], hair, max(1, round(h * 0.035)), cv2.LINE_AA)
        cv2.ellipse(image, (ex, eye_y), (max(1, round(0.09 * w)), max(1, round(0.045 * h))), 0, 0, 360,
                    (235, 235, 235), -1, cv2.LINE_AA)
        cv2.circle(image, (ex, eye_y), max(1, round(0.04 * h)), (40, 30, 25), -1, cv2.LINE_AA)
    nose = np.array([[cx, cy - 0.02 * h], [cx - 0.06 * w, cy + 0.12 * h], [cx + 0.06 * w, cy + 0.12 * h]], np.int32)
    cv2.fillConvexPoly(image, nose, tuple(int(v * 0.8) for v in skin), cv2.LINE_AA)
    cv2.ellipse(image, (c[0], round(cy + 0.24 * h)), (max(1, round(0.16 * w)), max(1, round(0.05 * h))), 0, 0, 180,
                (60, 60, 150), max(1, round(h * 0.04)), cv2.LINE_AA)


def draw_pedestrian(image: Image, cx: float, feet_y: float, height: float, *, look: int = 0) -> None:
    """A standing person facing the camera, ``height`` pixels tall, feet at ``feet_y``."""
    head = height * 0.16
    body_top = feet_y - height + head * 1.05
    cloth = CLOTHES[look % len(CLOTHES)]
    half = height * 0.14
    cv2.rectangle(image, (round(cx - half), round(body_top)), (round(cx + half), round(feet_y - height * 0.42)),
                  cloth, -1)
    legs = (50, 45, 40)
    for side in (-1, 1):
        x = cx + side * half * 0.45
        cv2.rectangle(image, (round(x - half * 0.35), round(feet_y - height * 0.42)),
                      (round(x + half * 0.35), round(feet_y)), legs, -1)
    draw_face(image, cx, feet_y - height + head / 2, head, tone=look)
