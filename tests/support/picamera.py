"""A fake ``Picamera2`` with exactly the calls the camera adapter makes, and a fake IR lamp (gpiozero's
OutputDevice: on, off, close). picamera2 itself is never imported in the tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edge.domain import Image


class FakeRequest:
    def __init__(self, camera: FakePicamera2, index: int) -> None:
        self.camera = camera
        self.index = index

    def make_array(self, name: str) -> Image:
        width, height = self.camera.streams[name]["size"]
        if name == "main":  # the frame number in its pixels, so a test can tell which frame it holds
            return np.full((height, width, 3), self.index % 256, np.uint8)
        return np.zeros((height * 3 // 2, width), np.uint8)  # YUV420 planar

    def get_metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"SensorTimestamp": self.camera.first_ns + self.index * self.camera.step_ns}
        if self.index < len(self.camera.metadata):
            meta.update(self.camera.metadata[self.index])
        return meta

    def release(self) -> None:
        self.camera.released += 1


class FakePicamera2:
    """``Picamera2(index)``: frames ``step_ns`` apart on the monotonic clock from ``first_ns``; frame i's
    metadata adds ``metadata[i]`` (Lux, ExposureTime, AnalogueGain); stops after ``frames`` frames."""

    def __init__(self, index: int = 0, *, frames: int = 10, first_ns: int = 1_000_000_000, step_ns: int = 40_000_000,
                 metadata: Sequence[dict[str, Any]] = ()) -> None:
        self.index = index
        self.frames = frames
        self.first_ns = first_ns
        self.step_ns = step_ns
        self.metadata = list(metadata)
        self.streams: dict[str, dict[str, Any]] = {}
        self.controls: dict[str, Any] = {}
        self.control_calls: list[dict[str, Any]] = []  # every set_controls, in order
        self.issued = 0
        self.released = 0
        self.started = False
        self.closed = False

    def create_video_configuration(self, main: dict[str, Any], lores: dict[str, Any] | None = None,
                                   controls: dict[str, Any] | None = None) -> dict[str, Any]:
        streams = {"main": main, **({"lores": lores} if lores is not None else {})}
        return {"streams": streams, "controls": dict(controls or {})}

    def configure(self, config: dict[str, Any]) -> None:
        self.streams = config["streams"]
        self.controls = dict(config["controls"])

    def start(self) -> None:
        self.started = True

    def set_controls(self, controls: dict[str, Any]) -> None:
        self.control_calls.append(dict(controls))
        self.controls.update(controls)

    def capture_request(self) -> FakeRequest:
        if self.issued >= self.frames:
            raise RuntimeError("camera unplugged")
        self.issued += 1
        return FakeRequest(self, self.issued - 1)

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True


class FakeLamp:
    def __init__(self, pin: int) -> None:
        self.pin = pin
        self.lit = False
        self.switched: list[bool] = []
        self.closed = False

    def on(self) -> None:
        self.lit = True
        self.switched.append(True)

    def off(self) -> None:
        self.lit = False
        self.switched.append(False)

    def close(self) -> None:
        self.closed = True
