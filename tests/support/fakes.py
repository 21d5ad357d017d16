"""Real, in-memory implementations of the stage Protocols, for unit tests (no mock.patch)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import numpy as np

from edge.domain import Box, FormatMatch, Frame, Image, OutgoingMessage, PlateDetection, PlateText, VehiclePass

START = datetime(2026, 3, 14, 8, 0, tzinfo=UTC)


class ListSource:
    """A FrameSource of blank frames at ``fps``; optionally raises after ``fail_after`` frames."""

    def __init__(self, count: int, *, fps: float = 25.0, size: tuple[int, int] = (320, 180),
                 fail_after: int | None = None) -> None:
        self.count, self.fps, self.size, self.fail_after = count, fps, size, fail_after

    def frames(self) -> Iterator[Frame]:
        w, h = self.size
        for i in range(self.count):
            if self.fail_after is not None and i >= self.fail_after:
                raise RuntimeError("camera vanished")
            image = np.zeros((h, w, 3), np.uint8)
            yield Frame(i, START + timedelta(seconds=i / self.fps), image, image[::2, ::2].copy())


class ScriptedDetector:
    """A PlateDetector that returns the boxes scripted for each call, in order (lores coordinates)."""

    def __init__(self, script: dict[int, list[Box]]) -> None:
        self.script = script
        self.calls = 0

    def detect(self, image: Image) -> list[PlateDetection]:
        boxes = self.script.get(self.calls, [])
        self.calls += 1
        return [PlateDetection(b, 0.9) for b in boxes]


class FixedReader:
    """A PlateReader that reads every crop as ``text`` with confidence ``conf``."""

    def __init__(self, text: str, conf: float = 0.95) -> None:
        self.text, self.conf = text, conf

    def read(self, crop: Image) -> PlateText:
        return PlateText(self.text, tuple(self.conf for _ in self.text))


class PassThroughFormats:
    def match(self, text: str, captured_on: date) -> FormatMatch:
        return FormatMatch(text, "test", False, text)


class JsonPrivacy:
    """A PassPreparer that publishes plate and time only."""

    def __init__(self, topic: str = "anpr/t/c/reads") -> None:
        self.topic = topic
        self.seq = 0

    def prepare(self, vehicle_pass: VehiclePass) -> OutgoingMessage | None:
        self.seq += 1
        body = {"seq": self.seq, "plate": vehicle_pass.plate, "time": vehicle_pass.first_seen.isoformat()}
        return OutgoingMessage(f"id{self.seq}", self.topic, json.dumps(body).encode(), vehicle_pass.first_seen)


class ListOutbox:
    def __init__(self) -> None:
        self.messages: list[OutgoingMessage] = []

    def put(self, message: OutgoingMessage) -> None:
        self.messages.append(message)
