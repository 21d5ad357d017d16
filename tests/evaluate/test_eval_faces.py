"""``eval faces``: JSON fields and counts on small labelled folders the tests build, with the real model.

The real-photo test copies two images from $EDGE_DATA_DIR (default ../shared/data) into a temporary
folder (never into the project) and skips when the data or the fetched model is absent.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.evaluate import faces as eval_faces

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "models" / "manifest.json"
MODEL = ROOT / "models" / "face_detection_full_range.tflite"
DATA = Path(os.environ.get("EDGE_DATA_DIR", ROOT.parent / "shared" / "data")) / "faces" / "dlib-pascal"


def _run(folder: Path, *extra: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    if not MODEL.is_file():
        pytest.skip("face model not fetched: run python -m edge.runtime.fetch --models-dir models")
    parser = argparse.ArgumentParser()
    eval_faces.configure_parser(parser)
    args = parser.parse_args([str(folder), "--json", "--model", str(MODEL), "--manifest", str(MANIFEST), *extra])
    code = eval_faces.main(args)
    return code, json.loads(capsys.readouterr().out)


def _write_labels(folder: Path, rows: list[tuple[str, int, int, int, int]]) -> None:
    with open(folder / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "x", "y", "w", "h"])
        writer.writerows(rows)


def test_counts_a_labelled_face_the_detector_cannot_see_as_missed(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "set"
    data.mkdir()
    cv2.imwrite(str(data / "plain.png"), np.full((120, 160, 3), 150, np.uint8))
    cv2.imwrite(str(data / "empty.png"), np.full((120, 160, 3), 90, np.uint8))  # no row: an image with no face
    _write_labels(data, [("plain.png", 40, 30, 30, 30), ("plain.png", 100, 20, 16, 16)])
    report = tmp_path / "report"
    code, r = _run(data, "--report", str(report), "--fail-under", "0.99", capsys=capsys)
    assert code == 1  # recall_min24 below --fail-under
    assert (r["images"], r["faces"], r["covered"], r["faces_min24"]) == (2, 2, 0, 1)
    assert (r["recall"], r["recall_min24"], r["false_area"], r["dropped"]) == (0.0, 0.0, None, 0)
    assert isinstance(r["median_ms"], float)
    assert {k: (v["faces"], v["covered"], v["recall"]) for k, v in r["by_height"].items()} == {
        "0-24": (1, 0, 0.0), "24-48": (1, 0, 0.0), "48-96": (0, 0, None), "96-up": (0, 0, None)}
    assert (r["false_regions"], r["false_per_image"], r["redacted_share"]) == (0, 0.0, 0.0)
    assert (report / "plain.report.png").is_file()
    assert not (report / "empty.report.png").exists()
    assert "plain.png: 2 of 2 faces missed" in (report / "index.html").read_text(encoding="utf-8")


@pytest.mark.integration
def test_real_photos_are_covered_and_scored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not (DATA / "labels.csv").is_file():
        pytest.skip(f"evaluation data not found at {DATA} (set EDGE_DATA_DIR)")
    picked = ("2008_007676.jpg", "2009_004587.jpg")
    data = tmp_path / "set"
    data.mkdir()
    with open(DATA / "labels.csv", encoding="utf-8") as fh:
        rows = [(r["file"], int(r["x"]), int(r["y"]), int(r["w"]), int(r["h"])) for r in csv.DictReader(fh)
                if r["file"] in picked]
    for name in picked:
        shutil.copy(DATA / name, data / name)
    _write_labels(data, rows)
    code, r = _run(data, "--threads", "2", "--fail-under", "0.99", capsys=capsys)
    assert code == 0
    assert (r["images"], r["faces"]) == (2, len(rows))
    assert r["covered"] == r["faces"]
    assert r["recall"] == r["recall_min24"] == 1.0
    false_area = r["false_area"]
    assert isinstance(false_area, float)
    assert 0.0 < false_area < 0.8  # the margin is redacted too, but mostly faces are
    assert r["missed"] == []
    assert r["settings"]["threads"] == 2  # type: ignore[index]


def test_a_folder_without_labels_is_refused_naming_the_columns(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    eval_faces.configure_parser(parser)
    code = eval_faces.main(parser.parse_args([str(tmp_path)]))
    assert code == 2
    err = capsys.readouterr().err
    assert "labels.csv" in err
    assert "file,x,y,w,h" in err


def test_a_photo_is_placed_at_its_own_size_in_a_camera_frame_with_its_faces_moved() -> None:
    from edge.domain import Box

    photo = np.full((100, 200, 3), 200, np.uint8)
    frame, faces = eval_faces.on_canvas(photo, [Box(10, 20, 30, 40)], (400, 300))
    assert frame.shape == (300, 400, 3)
    assert faces == [Box(110, 120, 30, 40)]  # centred, not scaled
    assert (frame[120:160, 110:140] == 200).all() and (frame[0, 0] == 90).all()
    frame, faces = eval_faces.on_canvas(np.zeros((600, 200, 3), np.uint8), [Box(0, 300, 20, 60)], (400, 300))
    assert frame.shape == (300, 400, 3) and faces == [Box(150, 150, 10, 30)]  # too tall: shrunk to fit, never grown


def test_a_bad_canvas_is_refused_naming_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_labels(tmp_path, [])
    parser = argparse.ArgumentParser()
    eval_faces.configure_parser(parser)
    assert eval_faces.main(parser.parse_args([str(tmp_path), "--canvas", "1920by1080"])) == 2
    assert "--canvas '1920by1080': expected WIDTHxHEIGHT" in capsys.readouterr().err


def test_the_night_look_is_grey_dim_and_the_same_for_the_same_file() -> None:
    image = np.full((40, 60, 3), 200, np.uint8)
    a, b = eval_faces.night_look(image, "x.jpg"), eval_faces.night_look(image, "x.jpg")
    assert np.array_equal(a, b) and not np.array_equal(a, eval_faces.night_look(image, "y.jpg"))
    assert a.shape == image.shape and (a[..., 0] == a[..., 2]).all()
    assert 100 < float(a.mean()) < 140  # 200 * 0.5 + 20, with noise
