"""Two cameras, real video files: the sample scene's plate view and its overview (another rate, started later),
each plate frame paired with the overview frame nearest in time, and a pass given its best read's pair."""

from __future__ import annotations

import gc
import time
import weakref
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from support.fakes import FixedReader, ListOutbox, PassThroughFormats, ScriptedDetector

from edge.capture.overview import NO_OVERVIEW, OverviewFeed
from edge.capture.video import VideoFileSource, recording_offset_s
from edge.config import TrackConfig
from edge.domain import Box, Frame, Image, OutgoingMessage, VehiclePass
from edge.pipeline import Pipeline
from edge.sample.overview import overview_path, write_overview
from edge.sample.scene import SceneSpec, default_scene, write_scene
from edge.track import PlateTracker

OFFSET_S = 0.3  # the overview recording starts this long after the plate recording
OVERVIEW_FPS = 10.0


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, SceneSpec]:
    spec = replace(default_scene(5, 1), width=320, height=180, duration_s=2.0)
    plate, _, _ = write_scene(spec, tmp_path_factory.mktemp("cams") / "lane.mp4")
    wide, _ = write_overview(spec, overview_path(plate), offset_s=OFFSET_S, fps=OVERVIEW_FPS, size=(384, 216))
    return plate, wide, spec


def _start(spec: SceneSpec) -> datetime:
    return datetime.fromisoformat(spec.start_time)


def _feed(wide: Path, spec: SceneSpec, **kw: float) -> OverviewFeed:
    source = VideoFileSource(wide, lores_size=None, start=_start(spec))
    return OverviewFeed(source, offset_s=OFFSET_S, tolerance_s=kw.get("tolerance_s", 0.06),
                        buffer_frames=int(kw.get("buffer_frames", 16)))


def _nearest_index(t: float, count: int, tolerance: float) -> int | None:
    j = min(range(count), key=lambda k: abs(OFFSET_S + k / OVERVIEW_FPS - t))
    return j if abs(OFFSET_S + j / OVERVIEW_FPS - t) <= tolerance + 1e-9 else None


def test_the_sample_scene_writes_a_wider_colour_overview_that_says_when_it_started(
    recordings: tuple[Path, Path, SceneSpec],
) -> None:
    plate, wide, spec = recordings
    assert wide.name == "lane.overview.mp4"
    assert recording_offset_s(plate, wide) == pytest.approx(OFFSET_S)
    frames = list(VideoFileSource(wide, lores_size=None).frames())
    assert len(frames) == round((spec.duration_s - OFFSET_S) * OVERVIEW_FPS)
    assert frames[0].image.shape == (216, 384, 3) and frames[0].lores is frames[0].image
    assert frames[0].timestamp == _start(spec) + timedelta(seconds=OFFSET_S)  # from its own sidecar
    sky = frames[0].image[:20].reshape(-1, 3).mean(axis=0)
    assert sky[0] - sky[2] > 20  # colour: a blue sky, not grey


def test_every_plate_frame_pairs_with_the_overview_frame_nearest_in_time(
    recordings: tuple[Path, Path, SceneSpec],
) -> None:
    plate, wide, spec = recordings
    overview = [f.image for f in VideoFileSource(wide, lores_size=None).frames()]
    feed = _feed(wide, spec)
    feed.open()
    try:
        got = []
        for frame in VideoFileSource(plate, lores_size=(160, 90), start=_start(spec)).frames():
            t = (frame.timestamp - _start(spec)).total_seconds()
            image = feed.nearest(frame.timestamp)
            expected = _nearest_index(t, len(overview), 0.06)
            if expected is None:
                assert image is None, t
            else:
                assert image is not None and np.array_equal(image, overview[expected]), (t, expected)
            got.append(expected)
    finally:
        feed.close()
    assert got[:5] == [None] * 5  # before the overview camera started (0.3 s - 0.06 s)
    assert sum(g is not None for g in got) > 20  # within 0.06 s of a 10 fps frame: 3 plate frames in 4
    assert feed.stats.dropped == 0


def test_overview_frames_pushed_out_before_their_time_are_counted(recordings: tuple[Path, Path, SceneSpec]) -> None:
    _, wide, spec = recordings
    source = VideoFileSource(wide, lores_size=None, start=_start(spec))
    # a live camera running ahead of a plate camera that has asked for nothing yet: 2 frames cannot hold it
    feed = OverviewFeed(source, offset_s=OFFSET_S, tolerance_s=1.0, buffer_frames=2, live=True)
    feed.open()
    try:
        deadline = time.monotonic() + 10.0
        while feed.stats.frames < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        feed.close()
    assert feed.stats.frames >= 5 and feed.stats.dropped > 0


def test_overview_frames_passed_over_between_reads_are_not_drops(recordings: tuple[Path, Path, SceneSpec]) -> None:
    _, wide, spec = recordings
    feed = _feed(wide, spec, buffer_frames=2)
    feed.open()
    try:
        feed.observe(_start(spec) + timedelta(seconds=0.2))  # plate frames without reads
        assert feed.nearest(_start(spec) + timedelta(seconds=1.6)) is not None  # a read 1.4 s later
    finally:
        feed.close()
    assert feed.stats.frames >= 14 and feed.stats.dropped == 0


def test_only_the_overview_frames_either_side_of_the_plate_camera_s_time_are_kept(
    recordings: tuple[Path, Path, SceneSpec],
) -> None:
    _, wide, spec = recordings
    feed = _feed(wide, spec, tolerance_s=0.5, buffer_frames=16)  # 10 fps: 0.5 s either side would be 10 frames
    feed.open()
    try:
        for tenths in range(5, 20):
            assert feed.nearest(_start(spec) + timedelta(seconds=tenths / 10 + 0.04)) is not None
            assert feed.buffered <= 2  # the last frame at or before the time, and the first after it
    finally:
        feed.close()
    assert feed.stats.dropped == 0


class _Passes:
    """The privacy stage's place: keeps each pass."""

    def __init__(self) -> None:
        self.passes: list[VehiclePass] = []

    def prepare(self, vehicle_pass: VehiclePass) -> OutgoingMessage | None:
        self.passes.append(vehicle_pass)
        return None


def test_a_pass_carries_the_overview_frame_of_its_best_read_or_none_beyond_the_tolerance(
    recordings: tuple[Path, Path, SceneSpec],
) -> None:
    plate, wide, spec = recordings
    overview = [f.image for f in VideoFileSource(wide, lores_size=None).frames()]
    # one vehicle read at 0-0.16 s (before the overview camera's first frame) and one at 0.8-1.2 s
    script = {i: [Box(40 + i, 50, 40, 9)] for i in (*range(5), *range(20, 31))}
    privacy = _Passes()
    feed = _feed(wide, spec)
    pipe = Pipeline(source=VideoFileSource(plate, lores_size=(160, 90), start=_start(spec)),
                    detector=ScriptedDetector(script), reader=FixedReader("AB12CDE"), formats=PassThroughFormats(),
                    tracker=PlateTracker(TrackConfig(max_gap_s=0.2, min_sightings=2, repeat_gap_s=0), views=2),
                    privacy=privacy, outbox=ListOutbox(), verify_plates=False, overview=feed)
    pipe.run()
    early, late = sorted(privacy.passes, key=lambda p: p.first_seen)
    assert early.overview is NO_OVERVIEW and early.overview_camera
    t = (late.best.timestamp - _start(spec)).total_seconds()
    expected = _nearest_index(t, len(overview), 0.06)
    assert expected is not None and np.array_equal(late.overview, overview[expected])
    assert late.overview_camera and late.views == () and late.others == ()  # the plate camera's geometry stays
    assert feed.stats.missing == 1 and feed.stats.paired >= 8


def test_an_open_track_keeps_the_overview_frame_and_lets_the_plate_frame_go(
    recordings: tuple[Path, Path, SceneSpec],
) -> None:
    plate, wide, spec = recordings
    overview = [f.image for f in VideoFileSource(wide, lores_size=None).frames()]
    feed = _feed(wide, spec)
    tracker = PlateTracker(TrackConfig(max_gap_s=5.0, min_sightings=1, repeat_gap_s=0), views=0)
    pipe = Pipeline(source=VideoFileSource(plate, lores_size=(160, 90), start=_start(spec)),
                    detector=ScriptedDetector({0: [Box(40, 50, 40, 9)]}), reader=FixedReader("AB12CDE"),
                    formats=PassThroughFormats(), tracker=tracker, privacy=_Passes(), outbox=ListOutbox(),
                    verify_plates=False, overview=feed)
    feed.open()
    try:
        image: Image = np.full((90, 160, 3), 7, np.uint8)
        frame = Frame(0, _start(spec) + timedelta(seconds=1.0), image, image)
        gone = weakref.ref(image)
        pipe.process(frame)
        del frame, image
        gc.collect()
        assert gone() is None  # the plate camera's frame went as soon as it was read
        assert tracker.open_tracks == 1
        (kept,) = [p.overview for p in tracker.flush()]
        assert np.array_equal(kept, overview[7])  # 1.0 s: the overview camera's frame at 0.3 + 7 x 0.1 s
    finally:
        feed.close()
