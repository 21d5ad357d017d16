"""Replay and stream sources through OpenCV: a video file, an image folder, a network stream URL.

A replay keeps the recording's own timing: frame ``index`` is the position in the file and the
timestamp is ``start + position``, so the same file and start give the same frames and times.

Damaged input is counted, never silently cut short: a frame of a video that cannot be decoded is skipped
and counted (``decode_failures``) and reading goes on to the end the container declares; an image that
cannot be decoded is counted the same way; an image whose header declares more than ``max_pixels`` is
refused before it is decoded (``frames_refused``), and so is a video or stream whose frames would be.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2

from edge.capture.header import image_size
from edge.clock import Clock
from edge.config.times import check_time
from edge.domain import Frame, Image, as_image
from edge.errors import SourceError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
DEFAULT_MAX_PIXELS = 40_000_000
MAX_GAP_S = 10.0  # a video's undecodable frames in a row before the rest is taken as lost
END_SLACK = 3  # frames a container may over-count at its end (its count is estimated from the duration)


def check_pixels(what: str, width: int, height: int, max_pixels: int) -> None:
    """Refuse frames larger than ``max_pixels`` (capture.max_pixels) before any is decoded."""
    if width * height > max_pixels:
        raise SourceError(f"{what} has {width}x{height} = {width * height:,} pixels per frame, more than "
                          f"capture.max_pixels ({max_pixels:,}); refused before decoding")


def make_lores(image: Image, size: tuple[int, int] | None) -> Image:
    """The detection stream: the full frame scaled to ``size`` (width, height); None: the frame itself (an
    overview camera's, on which nothing is detected)."""
    if size is None or (image.shape[1], image.shape[0]) == size:
        return image
    return as_image(cv2.resize(image, size, interpolation=cv2.INTER_AREA))


def replay_start(path: Path, given: datetime | None) -> datetime:
    """Start time of a replay: the one given, the scene sidecar's, or the file's mtime (in that order)."""
    if given is not None:
        return given if given.tzinfo else given.replace(tzinfo=UTC)
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        try:
            start = json.loads(sidecar.read_text(encoding="utf-8"))["start_time"]
            return check_time(datetime.fromisoformat(str(start).replace("Z", "+00:00")), "start_time")
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
            raise SourceError(f"scene sidecar {str(sidecar)!r} has no valid 'start_time': {exc}") from exc
    try:
        return check_time(datetime.fromtimestamp(path.stat().st_mtime, UTC), "its modification time",
                          "give its start in capture.start_time (replay --start)")
    except (OverflowError, OSError, ValueError) as exc:
        raise SourceError(f"no start time for {str(path)!r}: {exc}") from exc


def sidecar_start(path: Path) -> datetime | None:
    """The start time a recording's scene sidecar (``<name>.json``) gives, or None without one."""
    sidecar = path.with_suffix(".json")
    return replay_start(path, None) if sidecar.is_file() else None


def recording_offset_s(plate: str | Path, overview: str | Path) -> float | None:
    """Seconds the overview recording starts after the plate recording, from their sidecars (None: not both)."""
    first, second = sidecar_start(Path(plate)), sidecar_start(Path(overview))
    if first is None or second is None:
        return None
    return (second - first).total_seconds()


class VideoFileSource:
    """Frames of a video file, timed by the file's frame rate from ``start``."""

    def __init__(
        self,
        path: str | Path,
        *,
        lores_size: tuple[int, int] | None,
        start: datetime | None = None,
        realtime: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"video file {str(self.path)!r} does not exist")
        self.lores_size = lores_size
        self.start = replay_start(self.path, start)
        self.realtime = realtime
        self.max_pixels = max_pixels
        self.decode_failures = 0
        self.frames_refused = 0

    def frames(self) -> Iterator[Frame]:
        cap = cv2.VideoCapture(str(self.path))
        try:
            if not cap.isOpened():
                raise SourceError(f"cannot open video {str(self.path)!r}: not a video OpenCV can decode")
            width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            try:
                check_pixels(f"video {str(self.path)!r}", width, height, self.max_pixels)
            except SourceError:
                self.frames_refused += max(1, total)
                raise
            fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            if not 0.0 < fps <= 1000.0:
                log.warning("video %s reports fps %r; assuming 25", self.path, fps)
                fps = 25.0
            yield from self._read(cap, fps, max(0, total))
        finally:
            cap.release()
        self._report(total)

    def _report(self, total: int) -> None:
        if self.decode_failures:
            log.warning("video %s: %d of %d frame(s) could not be decoded (a damaged file); they were skipped and "
                        "counted", self.path, self.decode_failures, total or self.decode_failures)

    def _read(self, cap: cv2.VideoCapture, fps: float, total: int) -> Iterator[Frame]:
        index = 0
        wall0 = time.monotonic()
        gap = 0
        while True:
            ok, raw = cap.read()
            if not ok or raw is None:
                # A damaged frame, or the end: the container says how many frames there are, so a failure
                # before that is counted (once a later frame decodes) and reading goes on; a run of MAX_GAP_S
                # worth is taken as the rest lost. Containers often estimate their frame count from the
                # duration, so a few frames short at the very end (END_SLACK) is the end, not damage.
                if index >= total:
                    if gap > end_slack(total):
                        self.decode_failures += gap
                    return
                gap += 1
                if gap > MAX_GAP_S * fps:
                    self.decode_failures += total - (index - gap + 1)
                    log.warning("video %s: nothing decodes after frame %d of %d; the rest is taken as lost",
                                self.path, index - gap, total)
                    return
                index += 1
                continue
            self.decode_failures += gap
            gap = 0
            image = as_image(raw)
            if image.ndim != 3:
                self.decode_failures += 1
                log.warning("frame %d of %s is corrupt; skipped", index, self.path)
                index += 1
                continue
            offset = index / fps
            if self.realtime:
                behind = (time.monotonic() - wall0) - offset
                if behind > 1.0 / fps:  # a live camera would have overwritten this frame
                    index += 1
                    continue
                if behind < 0:
                    time.sleep(-behind)
            stamp = self.start + timedelta(seconds=offset)
            yield Frame(index, stamp, image, make_lores(image, self.lores_size))
            index += 1


def end_slack(total: int) -> int:
    """Frames a container may over-count at its end without the file being damaged (its count is an estimate)."""
    return max(END_SLACK, total // 200)


class ImageFolderSource:
    """Images of a folder in name order, timed at ``fps`` from ``start``. Unreadable files are skipped."""

    def __init__(
        self, path: str | Path, *, lores_size: tuple[int, int], fps: float, start: datetime | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise SourceError(f"image folder {str(self.path)!r} does not exist")
        self.lores_size = lores_size
        self.fps = fps
        self.start = replay_start(self.path, start)
        self.max_pixels = max_pixels
        self.decode_failures = 0
        self.frames_refused = 0

    def frames(self) -> Iterator[Frame]:
        files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SourceError(f"image folder {str(self.path)!r} has no {'/'.join(IMAGE_SUFFIXES)} files")
        for index, file in enumerate(files):
            size = image_size(file)
            if size is not None and size[0] * size[1] > self.max_pixels:
                self.frames_refused += 1
                log.warning("image %s declares %dx%d pixels, more than capture.max_pixels (%d); refused without "
                            "decoding it", file, size[0], size[1], self.max_pixels)
                continue
            raw = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if raw is None:
                self.decode_failures += 1
                log.warning("image %s cannot be decoded; skipped", file)
                continue
            image = as_image(raw)
            stamp = self.start + timedelta(seconds=index / self.fps)
            yield Frame(index, stamp, image, make_lores(image, self.lores_size))


class StreamSource:
    """A network stream (RTSP, HTTP, ...) through OpenCV, timed by the wall clock."""

    def __init__(self, url: str, *, lores_size: tuple[int, int] | None, clock: Clock, max_failures: int = 50,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.url = url
        self.lores_size = lores_size
        self.clock = clock
        self.max_failures = max_failures
        self.max_pixels = max_pixels
        self.decode_failures = 0
        self.frames_refused = 0

    def frames(self) -> Iterator[Frame]:
        cap = cv2.VideoCapture(self.url)
        try:
            if not cap.isOpened():
                raise SourceError(f"cannot open stream {self.url!r}")
            check_pixels(f"stream {self.url!r}", int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                         int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), self.max_pixels)
            index, failures = 0, 0
            while True:
                ok, raw = cap.read()
                if not ok or raw is None:
                    self.decode_failures += 1
                    failures += 1
                    if failures >= self.max_failures:
                        raise SourceError(f"stream {self.url!r} stopped delivering frames ({failures} failed reads)")
                    continue
                failures = 0
                image = as_image(raw)
                yield Frame(index, self.clock.now(), image, make_lores(image, self.lores_size))
                index += 1
        finally:
            cap.release()
