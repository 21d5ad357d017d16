"""The privacy stage with an overview camera: its frame is redacted like any overview, without the plate camera's
plate box (which is nowhere in particular in it), and a read whose overview camera had no frame near it goes
without an image."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from test_stage import GreyRedactor, make_pass, payload, stage

from edge.capture.overview import NO_OVERVIEW
from edge.config.model import PrivacyConfig
from edge.domain import Box, Image, Redaction


class Recording(GreyRedactor):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, Any]] = []

    def redact_image(self, image: Image, extra_boxes: Sequence[Box] = (), **kw: Any) -> tuple[Image, Redaction]:
        self.seen.append({"shape": image.shape, "extra": tuple(extra_boxes), **kw})
        return super().redact_image(image, extra_boxes)


def test_an_overview_camera_frame_is_redacted_without_the_plate_camera_s_plate_box() -> None:
    wide = np.zeros((108, 192, 3), np.uint8)
    p = replace(make_pass(), overview=wide, overview_camera=True)
    redactor = Recording()
    msg = stage(PrivacyConfig(image="redacted_overview", redact_cabin=True), redactor=redactor).prepare(p)
    image = payload(msg)["image"]
    assert (image["kind"], image["width"], image["height"]) == ("redacted_overview", 192, 108)
    assert redactor.seen[0]["plate"] is None and redactor.seen[0]["extra"] == ()  # no cabin guessed from it
    # the plate patch is the plate camera's own crop, with its box
    patch = Recording()
    stage(PrivacyConfig(image="plate_patch"), redactor=patch).prepare(p)
    assert patch.seen[0]["plate"] == p.best.detection.box


def test_a_read_without_an_overview_camera_frame_goes_without_an_image_and_is_counted() -> None:
    p = replace(make_pass(), overview=NO_OVERVIEW, overview_camera=True)
    redactor = Recording()
    s = stage(PrivacyConfig(image="redacted_overview"), redactor=redactor)
    body = payload(s.prepare(p))
    assert "image" not in body and body["plate"] == "AB12CDE"
    assert redactor.seen == []  # never handed to the redactor, and not a redaction failure
    assert s.stats.images_dropped == 1 and s.stats.redaction_failures == 0
