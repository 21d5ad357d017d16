"""``edge-anpr bench redaction`` prints the time per image for each smallest face size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.cli import main

MODEL = Path(__file__).resolve().parents[2] / "models" / "fetched" / "face_detection_full_range.tflite"


def test_bench_redaction_prints_one_row_per_min_face_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    if not MODEL.is_file():
        pytest.skip(f"{MODEL} is missing (run scripts/setup.sh)")
    args = ["bench", "redaction", "--size", "640x360", "--min-face", "48,96", "--repeat", "1", "--json",
            "--model", str(MODEL), "--manifest", str(MODEL.parents[1] / "manifest.json")]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["size"] == [640, 360] and out["threads"] == 1
    assert [r["min_face"] for r in out["results"]] == [48, 96]
    assert all(r["median_ms"] > 0 and r["unchanged_image_ms"] > 0 for r in out["results"])


def test_bench_redaction_names_a_bad_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "redaction", "--size", "big"]) == 2
    assert "--size 'big'" in capsys.readouterr().err
