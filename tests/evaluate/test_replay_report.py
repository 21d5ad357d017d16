"""The replay report a tester reads: its timeline spans the whole recording, small crops are shown large enough
to see, and the progress line says why a replay ended short of the recording's last frame."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from edge.evaluate.progress import ReplayProgress
from edge.evaluate.replay import CROP_MIN_WIDTH, FoundPass, passes_svg, write_report


def _ticks(svg: str) -> list[int]:
    return [int(s) for s in re.findall(r">(\d+)s</text>", svg)]


def test_the_timeline_spans_the_recording_not_only_its_passes() -> None:
    found = [FoundPass("AB12CDE", 1.0, 3.0), FoundPass("XY63KLM", 5.0, 7.4)]
    assert max(_ticks(passes_svg(found))) == 7  # without the recording's length: up to the last pass
    assert max(_ticks(passes_svg(found, end_s=30.0))) == 30


def test_the_report_draws_the_timeline_to_the_end_of_the_recording(tmp_path: Path) -> None:
    found = [FoundPass("AB12CDE", 1.0, 7.4)]
    page = write_report(tmp_path / "r", {"recording_s": 30.0}, title="t", found=found,
                        recording_s=30.0).read_text(encoding="utf-8")
    assert max(_ticks(page)) == 30
    assert "how long the recording is" in page  # recording_s explained


def test_a_small_crop_is_shown_enlarged_pixel_for_pixel(tmp_path: Path) -> None:
    small = np.full((14, 54, 3), 200, np.uint8)
    large = np.full((40, 200, 3), 200, np.uint8)
    found = [FoundPass("AB12CDE", 1.0, 2.0, crop=small), FoundPass("XY63KLM", 3.0, 4.0, crop=large)]
    page = write_report(tmp_path / "r", {}, title="t", found=found).read_text(encoding="utf-8")
    small_img, large_img = re.findall(r"<img[^>]*>", page)
    width = int(re.search(r'width="(\d+)"', small_img).group(1))  # type: ignore[union-attr]
    assert width >= CROP_MIN_WIDTH and width % 54 == 0  # a whole factor: sharp square pixels
    assert 'class="enlarged"' in small_img and "54x14 px" in small_img
    assert "image-rendering:pixelated" in page
    assert "enlarged" not in large_img  # a crop wide enough is shown as it is


def _progress(total: int, last_index: int) -> str:
    out = io.StringIO()
    progress = ReplayProgress(total, enabled=True, stream=out)
    for index in range(last_index + 1):
        progress.frame(passes=1, index=index)
    progress.done()
    return out.getvalue().splitlines()[-1]


def test_progress_says_when_the_last_frames_did_not_decode() -> None:
    line = _progress(750, 744)
    assert "745/750 (99%)" in line
    assert "ended at frame 745 of 750: the last 5 frames the file announces did not decode" in line
    assert "1 pass" in line and "1 passes" not in line


def test_a_replay_to_the_last_frame_ends_at_100_percent_with_no_note() -> None:
    line = _progress(750, 749)
    assert "750/750 (100%)" in line and "ended at" not in line
