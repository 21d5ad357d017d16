"""``edge-anpr bench redaction`` prints the time per image for each detector."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.cli import main

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_bench_redaction_prints_one_row_per_detector_as_json(capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("centerface", "face_detection_full_range"):
        if not (MODELS / f"{name}.tflite").is_file():
            pytest.skip(f"{name}.tflite is missing (run scripts/setup.sh)")
    monkeypatch.chdir(MODELS.parent)  # the detectors' default model paths are relative to the checkout
    args = ["bench", "redaction", "--size", "640x360", "--detector", "centerface,blazeface", "--min-face", "96",
            "--repeat", "1", "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["size"] == [640, 360] and out["threads"] == 1
    assert [r["detector"].split(":")[0] for r in out["results"]] == ["centerface", "blazeface"]
    assert all(r["median_ms"] > 0 and r["detect_ms"] > 0 and r["check_ms"] > 0 for r in out["results"])
    # the node's work per overview: the scene frame's plate is given, and the pass's two earlier frames
    assert out["plate"] is not None and out["views"] == 2
    assert all(r["pass_ms"] > r["frame_ms"] > 0 for r in out["results"])


def test_bench_redaction_names_a_bad_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "redaction", "--size", "big"]) == 2
    assert "--size 'big'" in capsys.readouterr().err
