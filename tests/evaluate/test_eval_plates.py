"""``eval plates``: JSON fields, counts, errors file and HTML report on a tiny folder the test builds.

The folder holds rendered UK plates (edge.sample.plates.render_plate) pasted on a plain background,
so the node's contour detector finds them. The counting tests read with a fixed-text reader (a real
fake of the PlateReader Protocol); one test runs the stages built from a config, on the real LiteRT
runtime, with the untrained test OCR model.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.fakes import FixedReader

from edge.detect.contour import ContourPlateDetector
from edge.evaluate import plates as eval_plates
from edge.sample.plates import render_plate

ROOT = Path(__file__).resolve().parents[2]
TINY_OCR = ROOT / "tests" / "data" / "tiny_ocr.tflite"
SIZE = (960, 540)  # shrunk to the 640x360 detection stream, as a 1080p frame would be


def _scene(text: str, at: tuple[int, int], seed: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    rng = np.random.default_rng(seed)
    image = np.full((SIZE[1], SIZE[0], 3), 70, np.uint8)
    image += rng.integers(0, 20, image.shape, dtype=np.uint8)
    plate = render_plate(text, char_height=30)
    h, w = plate.shape[:2]
    image[at[1] : at[1] + h, at[0] : at[0] + w] = plate
    return image, (at[0], at[1], w, h)


def _folder(tmp_path: Path, rows: list[tuple[str, str, tuple[int, int], tuple[int, int, int, int] | None]]) -> Path:
    """rows: (file, labelled plate, where the plate is drawn, labelled box or None for the drawn box)."""
    folder = tmp_path / "set"
    folder.mkdir()
    with open(folder / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "plate", "x", "y", "w", "h"])
        for k, (name, label, at, box) in enumerate(rows):
            image, drawn = _scene("XY51 ABC", at, k)
            cv2.imwrite(str(folder / name), image)
            writer.writerow([name, label, *(box or drawn)])
    return folder


def _args(folder: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    eval_plates.configure_parser(parser)
    return parser.parse_args([str(folder), "--json", *extra])


def _stages(text: str = "XY51ABC") -> eval_plates.Stages:
    return eval_plates.Stages(ContourPlateDetector(), FixedReader(text), eval_plates._NoFormats(), (640, 360), 0.5)


def test_counts_detected_exact_and_folded_plates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _folder(tmp_path, [
        ("a.png", "XY51ABC", (300, 200), None),  # exact
        ("b.png", "XY51 ABC", (100, 400), None),  # exact once the space is removed
        ("c.png", "XY5IABC", (500, 100), None),  # label has I for 1: folded only
        ("d.png", "XY51ABD", (200, 300), None),  # read wrong
        ("e.png", "XY51ABC", (600, 420), (20, 20, 120, 30)),  # labelled where no plate is: not detected
    ])
    code = eval_plates.run(_args(folder), _stages())
    r = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (r["images"], r["plates"], r["detected"], r["read"]) == (5, 5, 4, 4)
    assert (r["exact"], r["exact_rate"], r["folded"], r["folded_rate"]) == (2, 0.4, 3, 0.6)
    assert r["false_detections"] == 1  # the plate drawn in e.png matches no label
    assert r["threads"] == 1
    assert isinstance(r["median_ms"], float) and r["p95_ms"] >= r["median_ms"]
    assert sorted((m["image"], m["truth"], m["read"]) for m in r["misses"]) == [
        ("c.png", "XY5IABC", "XY51ABC"), ("d.png", "XY51ABD", "XY51ABC"), ("e.png", "XY51ABC", "")]


def test_writes_errors_csv_and_report_with_crops(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _folder(tmp_path, [("a.png", "XY51ABC", (300, 200), None), ("b.png", "AB12CDE", (100, 80), None)])
    errors, report = tmp_path / "misses.csv", tmp_path / "report"
    code = eval_plates.run(_args(folder, "--errors", str(errors), "--report", str(report)), _stages())
    assert code == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["exact"], r["plates"]) == (1, 2)
    with open(errors, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(row["image"], row["truth"], row["read"], row["detected"]) for row in rows] == [
        ("b.png", "AB12CDE", "XY51ABC", "1")]
    page = (report / "index.html").read_text(encoding="utf-8")
    assert "AB12CDE" in page and "XY51ABC" in page
    crops = sorted(p.name for p in report.glob("*.png"))
    assert crops == ["miss0000_read.png", "miss0000_truth.png"]
    truth_crop = cv2.imread(str(report / crops[1]))
    assert truth_crop is not None and truth_crop.shape[1] > 100


def test_low_confidence_reads_count_as_no_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _folder(tmp_path, [("a.png", "XY51ABC", (300, 200), None)])
    weak = eval_plates.Stages(ContourPlateDetector(), FixedReader("XY51ABC", conf=0.2),
                              eval_plates._NoFormats(), (640, 360), 0.5)
    eval_plates.run(_args(folder), weak)
    r = json.loads(capsys.readouterr().out)
    assert (r["detected"], r["read"], r["exact"]) == (1, 0, 0)


def test_truth_boxes_score_the_reader_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _folder(tmp_path, [("a.png", "XY51ABC", (300, 200), (20, 20, 120, 30))])
    stages = eval_plates.Stages(None, FixedReader("XY51ABC"), eval_plates._NoFormats(), (640, 360), 0.5)
    eval_plates.run(_args(folder, "--truth-boxes"), stages)
    r = json.loads(capsys.readouterr().out)
    assert (r["detected"], r["exact"], r["detector"]) == (1, 1, "truth-boxes")


def test_stages_built_from_config_run_on_litert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    models = tmp_path / "models"
    models.mkdir()
    shutil.copyfile(TINY_OCR, models / "plate_ocr.tflite")
    digest = hashlib.sha256((models / "plate_ocr.tflite").read_bytes()).hexdigest()
    (models / "manifest.json").write_text(json.dumps({"models": [{
        "name": "plate_ocr", "file": "plate_ocr.tflite", "version": "test", "task": "plate-ocr",
        "input_size": [1, 32, 128, 1], "licence": "test fixture", "source": "trained: tests/data/README.md",
        "sha256": digest}]}))
    folder = _folder(tmp_path, [("a.png", "XY51ABC", (300, 200), None), ("b.png", "XY51ABC", (40, 60), None)])
    code = eval_plates.main(_args(folder, "--manifest", str(models / "manifest.json"), "--reader", "ctc",
                                  "--detector", "contour", "--min-confidence", "0", "--threads", "1"))
    out, err = capsys.readouterr()
    assert code == 0, err
    r = json.loads(out)
    assert {"images", "plates", "detected", "exact", "exact_rate", "folded_rate", "median_ms", "p95_ms",
            "threads"} <= set(r)
    assert (r["images"], r["plates"], r["detected"], r["threads"]) == (2, 2, 2, 1)
    assert r["model"] == str(models / "plate_ocr.tflite")
    assert r["formats"][0] == "uk_current"


def test_missing_labels_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert eval_plates.run(_args(tmp_path), _stages()) == 2
    assert "labels.csv" in capsys.readouterr().err


def test_real_route_edges_and_ppocr_reads_rendered_plates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The edges detector and the converted PP-OCR reader, built from a config, on the real runtime."""
    model = ROOT / "models" / "ppocr_rec_plate.tflite"
    if not model.is_file():
        pytest.skip("PP-OCR model not installed: run tools/convert_ppocr_rec.py in .venv-convert")
    folder = _folder(tmp_path, [("a.png", "XY51ABC", (300, 200), None), ("b.png", "XY51ABC", (40, 60), None)])
    config = tmp_path / "config.yaml"
    config.write_text(f"node: {{site: t, camera: t}}\ndetect: {{backend: edges}}\n"
                      f"read: {{model: {model}, manifest: {ROOT / 'models' / 'manifest.json'}}}\n")
    code = eval_plates.main(_args(folder, "--config", str(config), "--formats", "none"))
    out, err = capsys.readouterr()
    assert code == 0, err
    r = json.loads(out)
    assert (r["plates"], r["detected"], r["exact"], r["folded"]) == (2, 2, 2, 2)
    assert (r["detector"], r["reader"]) == ("edges", "PpocrPlateReader")
