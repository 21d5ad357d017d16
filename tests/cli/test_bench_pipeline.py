"""``edge-anpr bench pipeline`` reports throughput, latency and memory of the whole pipeline on one core."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from edge.cli import main
from edge.sample.scene import scenario, write_scene

ROOT = Path(__file__).resolve().parents[2]
OCR_MODEL = ROOT / "models" / "ppocr_rec_plate.tflite"


def test_a_core_outside_the_allowed_set_is_refused_with_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    assert main(["bench", "pipeline", "--cpu", str(max(allowed) + 64), "--video", "missing.mp4"]) == 2
    assert str(allowed) in capsys.readouterr().err


def test_bench_prints_the_figures_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not OCR_MODEL.is_file():
        pytest.skip(f"{OCR_MODEL} is not there yet (converted by scripts/setup.sh)")
    video, _, _ = write_scene(replace(scenario("overtake"), width=960, height=540), tmp_path / "s.mp4")
    before = os.sched_getaffinity(0)
    try:
        assert main(["bench", "pipeline", "--video", str(video), "--detect-every", "2", "--json"]) == 0
    finally:
        os.sched_setaffinity(0, before)  # the bench pins its own process; give the test runner its cores back
    out = json.loads(capsys.readouterr().out)
    assert {"fps", "latency_p95_ms", "rss_mb", "frames", "detect_every"} <= set(out)
    assert out["frames"] == round(scenario("overtake").duration_s * 25)
    assert out["detect_every"] == 2
    assert out["rss_mb"] > 0
    assert out["matched"] == 2
    assert out["outbox_depth"] == out["passes"]  # a recording's old timestamps do not age its reads out


def test_bench_with_an_overview_camera_pairs_its_frames_with_the_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not OCR_MODEL.is_file():
        pytest.skip(f"{OCR_MODEL} is not there yet (converted by scripts/setup.sh)")
    from edge.sample.overview import write_overview

    spec = replace(scenario("default", 3), width=640, height=360, duration_s=3.0)
    video, _, _ = write_scene(spec, tmp_path / "s.mp4")
    wide, _ = write_overview(spec, tmp_path / "wide.mp4", fps=10, size=(800, 450))
    before = os.sched_getaffinity(0)
    try:
        assert main(["bench", "pipeline", "--video", str(video), "--overview", "--overview-video", str(wide),
                     "--image", "redacted_overview", "--json"]) == 0
    finally:
        os.sched_setaffinity(0, before)
    out = json.loads(capsys.readouterr().out)
    assert out["overview"] == str(wide) and out["overview_frames"] > 0
    assert out["overview_missing"] == 0 and out["passes"] >= 1
