"""Does a fresh conversion behave like the shipped model? Maintainers' check, never a set-up step.

    .venv-convert/bin/python tools/convert_wpod_net.py      # -> out/converted/wpod_net.tflite
    .venv/bin/python tools/check_conversion.py wpod_net     # compare it with models/wpod_net.tflite

A conversion's bytes depend on the CPU that ran it (README, "Models"), so the two are compared by what they
do, and the fresh one passes when both hold:

1. its outputs on the reference inputs (``tests/data/model_reference.npz``) are within
   ``edge.runtime.reference.tolerance_for`` the model of the shipped model's on this machine;
2. on frames of the generated ``faces`` and ``night`` scenes (every 5th frame), it finds what the shipped
   model finds: for the plate reader, the same text on every plate; for the detectors, boxes that overlap
   the shipped model's (IoU >= 0.5) for at least 95% of them, both ways.

Exit 0 when it behaves like the shipped model, 1 when not (with the figures), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.domain import Box  # noqa: E402
from edge.runtime.manifest import Manifest, load_manifest  # noqa: E402
from edge.runtime.reference import compare, outputs_of, tolerance_for  # noqa: E402
from edge.runtime.tflite import TfliteModel, open_model  # noqa: E402
from edge.sample.scene import plate_boxes, render_frames, scenario  # noqa: E402

REFERENCE = ROOT / "tests" / "data" / "model_reference.npz"
MATCHED_SHARE = 0.95


def _frames() -> Iterator[tuple[np.ndarray, list[Box]]]:
    for name in ("faces", "night"):
        spec = scenario(name, seed=7)
        for i, frame in enumerate(render_frames(spec)):
            if i % 5 == 0:
                yield frame, plate_boxes(spec, i)


def _iou(a: Box, b: Box) -> float:
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = a.area + b.area - inter
    return inter / union if union else 0.0


def _matched(mine: list[Box], theirs: list[Box]) -> int:
    return sum(any(_iou(a, b) >= 0.5 for b in theirs) for a in mine)


def _detector(task: str, model: TfliteModel) -> Callable[[np.ndarray], list[Box]]:
    if task == "face-detection-centerface":
        from edge.privacy.centerface import CenterFaceDetector
        centerface = CenterFaceDetector(model, threshold=0.15, small_threshold=0.35, small_face=20)
        return centerface.detect
    if task == "plate-detection-wpod":
        from edge.detect.wpod import WpodPlateDetector
        wpod = WpodPlateDetector(model)
        return lambda image: [d.box for d in wpod.detect(image)]
    if task == "face_detection":
        from edge.privacy.faces import BlazeFaceDetector
        blaze = BlazeFaceDetector(model, threshold=0.5, min_face=0)
        return blaze.detect
    raise SystemExit(f"no behaviour check for task {task!r}")


def behaviour(manifest: Manifest, name: str, fresh: Path) -> list[str]:
    """Problems (empty: it behaves like the shipped model) on the generated scenes."""
    entry = manifest.by_name(name)
    shipped = open_model(manifest.path_of(entry), manifest)
    converted = TfliteModel(fresh, entry)
    problems = []
    if entry.task == "plate-ocr-ppocr":
        from edge.read.ppocr import PpocrPlateReader
        readers = PpocrPlateReader(shipped), PpocrPlateReader(converted)
        differ, total = [], 0
        for frame, boxes in _frames():
            for box in boxes:
                crop = frame[box.y : box.y + box.h, box.x : box.x + box.w]
                if crop.size == 0:
                    continue
                total += 1
                a, b = (reader.read(crop).text for reader in readers)
                if a != b:
                    differ.append(f"{a!r} shipped, {b!r} fresh")
        print(f"{name}: {total - len(differ)} of {total} plate crops read the same")
        problems += [f"{name}: plate read differently: {d}" for d in differ]
        return problems
    detect: list[Callable[[np.ndarray], list[Box]]] = [_detector(entry.task, m) for m in (shipped, converted)]
    found: list[Any] = [0, 0]
    matched = [0, 0]
    for frame, _ in _frames():
        a, b = (d(frame) for d in detect)
        found[0] += len(a)
        found[1] += len(b)
        matched[0] += _matched(a, b)
        matched[1] += _matched(b, a)
    print(f"{name}: shipped found {found[0]}, {matched[0]} of them also found fresh; "
          f"fresh found {found[1]}, {matched[1]} also found by the shipped model")
    for k, who in enumerate(("shipped", "fresh")):
        if found[k] and matched[k] < MATCHED_SHARE * found[k]:
            problems.append(f"{name}: only {matched[k]} of the {found[k]} boxes the {who} model found were found by "
                            f"the other (need {MATCHED_SHARE:.0%})")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the model's name in models/manifest.json (for example wpod_net)")
    parser.add_argument("fresh", nargs="?", type=Path,
                        help="the fresh conversion (default: out/converted/<the shipped file's name>)")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    args = parser.parse_args()
    manifest = load_manifest(args.models_dir / "manifest.json")
    entry = manifest.by_name(args.name)
    fresh = args.fresh or ROOT / "out" / "converted" / Path(entry.file).name
    if not fresh.is_file():
        print(f"error: no fresh conversion at {fresh}: run its tools/convert_*.py first", file=sys.stderr)
        return 2
    ref = np.load(REFERENCE)
    frame, plate, face = ref["frame"], ref["plate_box"], ref["face_box"]
    shipped = {k: v for k, v in outputs_of(manifest, frame, plate, face).items() if k.startswith(f"{args.name}/")}
    converted = {k: v for k, v in outputs_of(manifest, frame, plate, face, unverified={args.name: fresh}).items()
                 if k.startswith(f"{args.name}/")}
    problems = []
    tolerance = tolerance_for(entry)
    for d in compare(shipped, converted):
        print(("ok   " if d.within(tolerance) else "FAR  ") + d.describe())
        if not d.within(tolerance):
            problems.append(d.describe())
    problems += behaviour(manifest, args.name, fresh)
    for p in problems:
        print(f"differs: {p}", file=sys.stderr)
    print(f"{fresh}: {'does not behave' if problems else 'behaves'} like {manifest.path_of(entry)}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
