"""Frame sources: replays keep the recording's timing; bad input is skipped and counted or refused clearly."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.capture.picam import PicameraSource
from edge.capture.video import ImageFolderSource, VideoFileSource
from edge.errors import SourceError

START = datetime(2026, 3, 14, 8, 0, tzinfo=UTC)


def _write_video(path: Path, frames: int = 10, fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (160, 120))
    for i in range(frames):
        img = np.full((120, 160, 3), i * 20 % 255, np.uint8)
        writer.write(img)
    writer.release()
    return path


def test_video_replay_is_timed_from_the_given_start(tmp_path: Path) -> None:
    video = _write_video(tmp_path / "v.mp4")
    frames = list(VideoFileSource(video, lores_size=(80, 60), start=START).frames())
    assert [f.index for f in frames] == list(range(10))
    assert frames[3].timestamp == START + timedelta(seconds=0.3)
    assert frames[0].lores.shape == (60, 80, 3)
    assert frames[0].image.shape == (120, 160, 3)


def test_video_replay_is_deterministic(tmp_path: Path) -> None:
    video = _write_video(tmp_path / "v.mp4")
    def run() -> list[tuple[int, datetime, int]]:
        source = VideoFileSource(video, lores_size=(80, 60), start=START)
        return [(f.index, f.timestamp, int(f.image.sum())) for f in source.frames()]

    assert run() == run()


def test_scene_sidecar_supplies_the_start_time(tmp_path: Path) -> None:
    video = _write_video(tmp_path / "v.mp4")
    (tmp_path / "v.json").write_text('{"start_time": "2026-03-14T08:00:00Z"}', encoding="utf-8")
    first = next(iter(VideoFileSource(video, lores_size=(80, 60)).frames()))
    assert first.timestamp == START


def test_missing_video_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"absent\.mp4"):
        VideoFileSource(tmp_path / "absent.mp4", lores_size=(80, 60))


def test_undecodable_video_is_a_source_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(SourceError, match="cannot open video"):
        list(VideoFileSource(junk, lores_size=(80, 60), start=START).frames())


def test_image_folder_skips_corrupt_files_and_counts_them(tmp_path: Path) -> None:
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.full((40, 60, 3), 100, np.uint8))
    (tmp_path / "001b.jpg").write_bytes(b"\xff\xd8 broken jpeg")
    source = ImageFolderSource(tmp_path, lores_size=(30, 20), fps=2.0, start=START)
    frames = list(source.frames())
    assert len(frames) == 3
    assert source.decode_failures == 1
    assert frames[-1].timestamp == START + timedelta(seconds=1.5)  # its position in the folder sets its time


class _FakeRequest:
    def __init__(self, camera: _FakeCamera, sensor_ns: int) -> None:
        self.camera = camera
        self.sensor_ns = sensor_ns

    def make_array(self, name: str) -> Any:
        if name == "main":
            return np.zeros((72, 128, 3), np.uint8)
        return np.zeros((36 * 3 // 2, 64), np.uint8)  # YUV420 planar

    def get_metadata(self) -> dict[str, int]:
        return {"SensorTimestamp": self.sensor_ns}

    def release(self) -> None:
        self.camera.released += 1


class _FakeCamera:
    """Behaves like Picamera2 for the calls the adapter makes."""

    def __init__(self, fail_after: int) -> None:
        self.fail_after = fail_after
        self.released = 0
        self.issued = 0
        self.closed = False
        self.config: dict[str, Any] = {}

    def create_video_configuration(self, **kwargs: Any) -> dict[str, Any]:
        return kwargs

    def configure(self, config: dict[str, Any]) -> None:
        self.config = config

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def capture_request(self) -> _FakeRequest:
        if self.issued >= self.fail_after:
            raise RuntimeError("camera unplugged")
        self.issued += 1
        return _FakeRequest(self, sensor_ns=1_000_000_000 + self.issued * 40_000_000)


class _FixedClock:
    def now(self) -> datetime:
        return START


def _frames(source: PicameraSource) -> Iterator[Any]:
    return source.frames()


def test_picamera_releases_every_buffer_and_reports_a_vanished_camera() -> None:
    camera = _FakeCamera(fail_after=3)
    source = PicameraSource(
        main_size=(128, 72), lores_size=(64, 36), fps=25, clock=_FixedClock(),
        camera_factory=lambda: camera, monotonic=lambda: 2_000_000_000,
    )
    got = []
    with pytest.raises(SourceError, match="camera stopped delivering frames"):
        got.extend(_frames(source))
    assert len(got) == 3
    assert camera.released == 3
    assert camera.closed
    assert camera.config["lores"]["size"] == (64, 36)
    # sensor time 1.04 s on a monotonic clock now at 2.0 s: 0.96 s before "now" in UTC
    assert got[0].timestamp == START - timedelta(seconds=0.96)
    assert got[0].lores.shape == (36, 64, 3)


@pytest.mark.parametrize("where", ["sidecar", "modification time"])
def test_a_recording_that_starts_beyond_the_year_2099_is_refused_naming_its_time(tmp_path: Path, where: str) -> None:
    video = _write_video(tmp_path / "v.mp4")
    if where == "sidecar":
        (tmp_path / "v.json").write_text('{"start_time": "9999-12-31T23:59:55Z"}', encoding="utf-8")
    else:
        far = datetime(2300, 1, 1, tzinfo=UTC).timestamp()  # ext4 keeps times up to 2446
        os.utime(video, (far, far))
    with pytest.raises(SourceError, match=r"(9999-12-31|2300-01-01).* is outside the years 2000 to 2099"):
        VideoFileSource(video, lores_size=(80, 60))
