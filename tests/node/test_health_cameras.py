"""Health of a two-camera node: the plate camera's exposure profile and switches, and how the overview camera's
frames paired, as the running node collects them (a fake Picamera2 through the real adapter), valid against the
schema; a schema that refuses what the node cannot say."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support.picamera import FakeLamp, FakePicamera2
from test_health import bare_tree, collector, full_message

from edge.capture.overview import OverviewStats
from edge.capture.picam import PicameraSource
from edge.config.camera import ExposureConfig
from edge.errors import SourceError
from edge.publish.schema import InvalidMessageError, Schemas

NOW = datetime(2026, 12, 7, 22, 0, tzinfo=UTC)


class _Clock:
    def now(self) -> datetime:
        return NOW


def _camera_health() -> dict[str, Any]:
    camera = FakePicamera2(0, frames=4, metadata=[{"Lux": 2.5, "ExposureTime": 1000, "AnalogueGain": 11.7}] * 4)
    source = PicameraSource(main_size=(64, 36), lores_size=(32, 18), fps=25.0, clock=_Clock(),
                            camera_factory=lambda: camera, exposure=ExposureConfig(switch="lux", ir_gpio=17),
                            lamp_factory=FakeLamp)
    with pytest.raises(SourceError):
        list(source.frames())
    overview = OverviewStats(frames=120, paired=40, missing=1, dropped=2)
    return {**source.camera_health(), **overview.health()}


def test_the_cameras_health_is_in_the_body_and_valid(tmp_path: Path) -> None:
    fields = _camera_health()
    body = collector(tmp_path, bare_tree(tmp_path), camera=lambda: fields).collect()
    Schemas().validate("health", full_message(body))
    assert (body["exposure_profile"], body["profile_switches"], body["ir_light"]) == ("night", 0, True)
    assert (body["exposure_us"], body["analogue_gain"], body["lux"]) == (1000, 11.7, 2.5)
    assert (body["overview_frames"], body["overview_missing"], body["overview_dropped"]) == (120, 1, 2)


def test_a_single_camera_node_without_a_pi_camera_says_nothing_of_cameras(tmp_path: Path) -> None:
    body = collector(tmp_path, bare_tree(tmp_path), camera=lambda: {}).collect()
    assert not {k for k in body if k.startswith(("exposure", "overview", "profile"))}


@pytest.mark.parametrize("bad", [{"exposure_profile": "dusk"}, {"overview_missing": -1}, {"ir_light": "on"}])
def test_the_schema_refuses_camera_fields_the_node_cannot_send(bad: dict[str, Any]) -> None:
    (field,) = bad
    with pytest.raises(InvalidMessageError, match=field):
        Schemas().validate("health", full_message(bad))
