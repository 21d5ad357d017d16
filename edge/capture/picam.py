"""The Raspberry Pi camera through picamera2: a full-resolution ``main`` stream and a small ``lores`` one.

``picamera2`` is imported only here, and only when a source is opened (importing it probes devices); so is
``gpiozero`` for the IR lamp. A Pi 5 opens its two cameras by index (``Picamera2(0)``, ``Picamera2(1)``): the plate
camera and the overview camera are two sources. Every request is released in ``finally``; sensor timestamps
(CLOCK_MONOTONIC ns, one clock for both cameras) are converted to UTC.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import partial
from typing import Any, Protocol

import cv2
import numpy as np

from edge.capture.exposure import ProfileSwitch, camera_controls
from edge.clock import Clock, monotonic_ns, monotonic_ns_to_utc
from edge.config.camera import ExposureConfig
from edge.domain import Frame
from edge.errors import SourceError

log = logging.getLogger(__name__)


def _default_camera_factory(index: int = 0) -> Any:
    try:
        from picamera2 import Picamera2
    except ImportError as exc:
        raise SourceError(
            "capture.source is 'picamera' but picamera2 is not installed "
            "(on Raspberry Pi OS: apt install python3-picamera2, and a venv made with --system-site-packages)"
        ) from exc
    try:
        return Picamera2(index)
    except (RuntimeError, IndexError) as exc:
        raise SourceError(f"no camera {index} found by picamera2 (rpicam-hello --list-cameras lists them): {exc}"
                          ) from exc


class Lamp(Protocol):
    """The IR illuminator's switch (gpiozero's OutputDevice)."""

    def on(self) -> None: ...

    def off(self) -> None: ...

    def close(self) -> None: ...


def _default_lamp_factory(pin: int) -> Lamp:
    try:
        from gpiozero import OutputDevice
    except ImportError as exc:
        raise SourceError(f"capture.exposure.ir_gpio is {pin} but gpiozero is not installed "
                          f"(on Raspberry Pi OS: apt install python3-gpiozero)") from exc
    try:
        lamp: Lamp = OutputDevice(pin, active_high=True, initial_value=False)
    except Exception as exc:  # gpiozero raises its own GPIOZeroError family, and OSError
        raise SourceError(f"cannot drive the IR lamp on GPIO {pin} (capture.exposure.ir_gpio): {exc}") from exc
    return lamp


@dataclass
class ExposureState:
    """What the plate camera last reported and which profile it runs (health, aim)."""

    profile: str | None = None
    switches: int = 0
    exposure_us: int | None = None
    analogue_gain: float | None = None
    lux: float | None = None
    ir_light: bool | None = None
    gain_capped: int = 0  # times auto-exposure's gain went over the cap and was fixed at it

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = {"exposure_profile": self.profile, "profile_switches": self.switches,
                                "exposure_us": self.exposure_us, "lux": self.lux, "ir_light": self.ir_light}
        if self.analogue_gain is not None:
            body["analogue_gain"] = round(self.analogue_gain, 2)
        return {k: v for k, v in body.items() if v is not None}


class PicameraSource:
    """Two-stream capture. ``camera_factory`` returns a Picamera2-like object (a fake in tests).

    ``lores_size`` None: one stream only (an overview camera: the frame's ``lores`` is its image). With
    ``exposure`` the day and night profiles switch by the frames' ``Lux`` metadata or by schedule, and an IR lamp
    on ``exposure.ir_gpio`` follows the profile.
    """

    def __init__(
        self,
        *,
        main_size: tuple[int, int],
        lores_size: tuple[int, int] | None,
        fps: float,
        clock: Clock,
        camera_factory: Callable[[], Any] | None = None,
        monotonic: Callable[[], int] = monotonic_ns,
        camera_index: int = 0,
        exposure: ExposureConfig | None = None,
        lamp_factory: Callable[[int], Lamp] = _default_lamp_factory,
        zone: tzinfo | None = None,
    ) -> None:
        self.main_size = main_size
        self.lores_size = lores_size
        self.fps = fps
        self.clock = clock
        self.camera_index = camera_index
        self.camera_factory = camera_factory or partial(_default_camera_factory, camera_index)
        self.monotonic = monotonic
        self.exposure = exposure
        self.lamp_factory = lamp_factory
        self.switch = ProfileSwitch(exposure, zone) if exposure is not None else None
        self.state = ExposureState()
        self._gain_fixed = False

    def camera_health(self) -> dict[str, Any]:
        return self.state.health()

    def frames(self) -> Iterator[Frame]:
        lamp = None
        if self.exposure is not None and self.exposure.ir_gpio is not None:
            lamp = self.lamp_factory(self.exposure.ir_gpio)
        cam = self.camera_factory()
        try:
            streams: dict[str, Any] = {"main": {"size": self.main_size, "format": "RGB888"}}
            if self.lores_size is not None:
                streams["lores"] = {"size": self.lores_size, "format": "YUV420"}
            controls = ({"FrameRate": self.fps} if self.switch is None
                        else camera_controls(self.switch.settings, self.fps))
            config = cam.create_video_configuration(**streams, controls=controls)
            cam.configure(config)
            cam.start()
            index = 0
            while True:
                try:
                    request = cam.capture_request()
                except (RuntimeError, OSError) as exc:
                    raise SourceError(f"the camera stopped delivering frames: {exc}") from exc
                try:
                    frame, metadata = self._frame(request, index)
                finally:
                    request.release()
                self._expose(cam, lamp, metadata, frame.timestamp)
                yield frame
                index += 1
        finally:
            try:
                try:
                    cam.stop()
                finally:
                    cam.close()
            finally:
                if lamp is not None:
                    lamp.off()
                    lamp.close()

    def _frame(self, request: Any, index: int) -> tuple[Frame, dict[str, Any]]:
        # make_array returns a copy of the buffer, not a view: it stays valid after request.release(); it may
        # be a slice of a row-padded copy, which is made compact here (copied only then)
        main = np.ascontiguousarray(request.make_array("main"), dtype=np.uint8)
        if self.lores_size is not None:
            yuv = request.make_array("lores")
            lores = np.asarray(cv2.cvtColor(yuv, cv2.COLOR_YUV420p2BGR), dtype=np.uint8)
        else:
            lores = main
        metadata = dict(request.get_metadata())
        sensor_ns = metadata.get("SensorTimestamp")
        now = self.clock.now()
        stamp = now if sensor_ns is None else monotonic_ns_to_utc(
            int(sensor_ns), now=now, monotonic_now_ns=self.monotonic()
        )
        return Frame(index, stamp, main, lores), metadata

    def _expose(self, cam: Any, lamp: Lamp | None, metadata: dict[str, Any], when: datetime) -> None:
        """Note what the frame was taken with; switch the profile (controls, IR lamp) when the light says so."""
        state = self.state
        lux, exposure, gain = metadata.get("Lux"), metadata.get("ExposureTime"), metadata.get("AnalogueGain")
        state.lux = None if lux is None else round(float(lux), 1)
        state.exposure_us = None if exposure is None else int(exposure)
        state.analogue_gain = None if gain is None else float(gain)
        if self.switch is None:
            return
        before = self.switch.settings
        change = self.switch.update(state.lux, when)
        settings = self.switch.settings
        if change is not None:
            if change.profile != state.profile and state.profile is not None:
                log.info("plate camera: %s profile (%s)", change.profile, change.reason)
            cam.set_controls(camera_controls(settings, self.fps, reset=not before.auto_exposure))
            self._gain_fixed = False
            if lamp is not None and settings.ir_light:
                lamp.on()
            elif lamp is not None:
                lamp.off()
            state.ir_light = settings.ir_light if lamp is not None else None
        elif settings.auto_exposure and not self._gain_fixed and state.analogue_gain is not None \
                and state.analogue_gain > settings.analogue_gain_max:
            cam.set_controls({"AnalogueGain": settings.analogue_gain_max})  # hold the cap (noise) from now on
            self._gain_fixed = True
            state.gain_capped += 1
        state.profile, state.switches = self.switch.profile, self.switch.switches
