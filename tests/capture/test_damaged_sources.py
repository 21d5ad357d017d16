"""Damaged and hostile frames: an image that declares a huge size is refused before it is decoded; a video damaged
in the middle is read to its end, every frame it could not decode counted and reported."""

from __future__ import annotations

import logging
import struct
import time
import zlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.capture.header import header_size, image_size
from edge.capture.video import ImageFolderSource, VideoFileSource, check_pixels
from edge.errors import SourceError
from edge.sample.scene import default_scene, write_scene


def png_bomb(path: Path, width: int = 30000, height: int = 20000) -> None:
    """A valid 1-bit PNG of ``width`` x ``height`` zeros: a few hundred KB on disk, 1.8 GB once decoded to BGR."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row * 1000) for _ in range(height // 1000)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def test_headers_give_the_size_without_decoding(tmp_path: Path) -> None:
    image = np.zeros((37, 53, 3), np.uint8)
    for suffix in (".png", ".jpg", ".bmp"):
        cv2.imwrite(str(tmp_path / f"a{suffix}"), image)
        assert image_size(tmp_path / f"a{suffix}") == (53, 37), suffix
    assert header_size(b"GIF89a....") is None
    assert header_size(b"\xff\xd8\xff\xe0\x00") is None  # a JPEG cut short
    assert image_size(tmp_path / "missing.png") is None


def test_an_image_declaring_30000x20000_pixels_is_refused_before_decoding(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "camera"
    folder.mkdir()
    png_bomb(folder / "0000.png")
    assert (folder / "0000.png").stat().st_size < 1_000_000
    assert image_size(folder / "0000.png") == (30000, 20000)
    cv2.imwrite(str(folder / "0001.png"), np.full((90, 160, 3), 50, np.uint8))
    source = ImageFolderSource(folder, lores_size=(80, 45), fps=25)
    started = time.monotonic()
    frames = list(source.frames())
    assert time.monotonic() - started < 2, "decoding it would have taken seconds and 1.8 GB"
    assert [f.index for f in frames] == [1]
    assert source.frames_refused == 1
    assert "more than capture.max_pixels" in caplog.text


def test_a_frame_size_above_the_limit_is_a_source_error_naming_it() -> None:
    with pytest.raises(SourceError, match=r"30000x20000 = 600,000,000 pixels per frame, more than capture\.max_pixels"):
        check_pixels("video 'x.mp4'", 30000, 20000, 40_000_000)
    check_pixels("video 'x.mp4'", 1920, 1080, 40_000_000)


def test_a_video_damaged_in_the_middle_is_read_to_its_end_and_its_lost_frames_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    video, _, _ = write_scene(replace(default_scene(7, 4), width=640, height=360), tmp_path / "scene.mp4")
    total = int(cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT))
    data = bytearray(video.read_bytes())
    third = len(data) // 3
    data[third : third + len(data) // 4] = b"\xff" * (len(data) // 4)  # a damaged stretch of the card
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    caplog.set_level(logging.WARNING)
    source = VideoFileSource(damaged, lores_size=(320, 180))
    frames = list(source.frames())
    assert source.decode_failures > 0
    assert len(frames) + source.decode_failures == total, "every frame is either delivered or counted"
    assert frames[-1].index > total * 0.9, "frames after the damage are read (the old reader stopped at it)"
    assert f"of {total} frame(s) could not be decoded" in caplog.text


class ShortCapture:
    """An OpenCV capture whose container declares ``declared`` frames but decodes ``good`` of them, with the frames
    at ``bad`` not decodable."""

    def __init__(self, good: int, bad: frozenset[int] = frozenset()) -> None:
        self.good, self.bad, self.at = good, bad, 0

    def read(self) -> tuple[bool, np.ndarray | None]:
        at, self.at = self.at, self.at + 1
        if at >= self.good or at in self.bad:
            return False, None
        return True, np.zeros((36, 64, 3), np.uint8)


def _source(tmp_path: Path) -> VideoFileSource:
    path = tmp_path / "x.mp4"
    path.write_bytes(b"")
    return VideoFileSource(path, lores_size=(32, 18), start=datetime(2026, 1, 1, tzinfo=UTC))


def test_a_container_that_overcounts_its_last_frames_is_not_reported_as_damaged(tmp_path: Path) -> None:
    # MOT17-13's MP4 declares 750 frames and decodes 748: a container's count is often estimated from its duration
    source = _source(tmp_path)
    frames = list(source._read(ShortCapture(good=748), 25.0, 750))
    assert len(frames) == 748
    assert source.decode_failures == 0


def test_frames_lost_at_the_end_beyond_the_slack_and_in_the_middle_are_counted(tmp_path: Path) -> None:
    source = _source(tmp_path)
    frames = list(source._read(ShortCapture(good=700, bad=frozenset({10, 11})), 25.0, 750))
    assert len(frames) == 698
    assert source.decode_failures == 52
