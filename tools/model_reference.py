"""Record what the shipped models do: ``tests/data/model_reference.npz`` (see ``edge/runtime/reference.py``).

Maintainers' tool, run once when a model in ``models/`` changes, on the machine that tested the release::

    .venv/bin/python tools/model_reference.py            # writes tests/data/model_reference.npz
    .venv/bin/python tools/model_reference.py --check    # compare this machine's outputs with it

The frame is frame 40 of the generated ``faces`` scenario (seed 7), a plate and a pedestrian's face in
view, halved to 640x360 by nearest-neighbour indexing (so the file stays small); the boxes are the nearest
plate's and the left pedestrian's head. Outputs are stored as float16 (their rounding, 0.05% of a value,
is far inside the tolerance), with the faces CenterFace finds on the frame at the node's thresholds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.runtime.manifest import Manifest, load_manifest  # noqa: E402
from edge.runtime.reference import (  # noqa: E402
    compare,
    faces_of,
    outputs_of,
    resize_nearest,
    tolerance_for,
    unmatched_faces,
)
from edge.runtime.tflite import TfliteModel, open_model  # noqa: E402
from edge.sample.scene import plate_boxes, render_frames, scenario  # noqa: E402

FRAME_INDEX = 40
OUT = ROOT / "tests" / "data" / "model_reference.npz"


def fixed_frame() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    spec = scenario("faces", seed=7)
    frame = next(f for i, f in enumerate(render_frames(spec)) if i == FRAME_INDEX)
    box = plate_boxes(spec, FRAME_INDEX)[-1]
    plate = np.array([box.x, box.y, box.x + box.w, box.y + box.h], dtype=np.float64)
    person = spec.pedestrians[0]
    t = FRAME_INDEX / spec.fps
    cx = (person.x + person.walk * t) * spec.width
    height = person.height * spec.height
    head = height * 0.16
    cy = person.feet_y * spec.height - height + head / 2
    face = np.array([cx - head, cy - head, cx + head, cy + head])
    half = resize_nearest(frame, spec.height // 2, spec.width // 2)
    return half, np.round(plate / 2).astype(np.int32), np.round(face / 2).astype(np.int32)


def centerface(manifest: Manifest) -> TfliteModel:
    return open_model(manifest.path_of(manifest.by_name("centerface")), manifest)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true", help="compare with the recorded file instead of writing")
    args = parser.parse_args()
    manifest = load_manifest(args.models_dir / "manifest.json")
    if args.check:
        ref = np.load(args.out)
        frame, plate, face = ref["frame"], ref["plate_box"], ref["face_box"]
        got = outputs_of(manifest, frame, plate, face)
        diffs = compare({k[4:]: ref[k].astype(np.float32) for k in ref.files if k.startswith("out:")}, got)
        bad = 0
        for d in diffs:
            ok = d.within(tolerance_for(manifest.by_name(d.output.split("/")[0])))
            bad += not ok
            print(("ok   " if ok else "FAIL ") + d.describe())
        expected = ref["faces:centerface"]
        missing = unmatched_faces(expected, faces_of(centerface(manifest), frame))
        for line in missing:
            print("FAIL " + line)
        print(f"centerface: {len(expected) - len(missing)} of {len(expected)} faces found again")
        return 0 if not bad and not missing else 1
    frame, plate, face = fixed_frame()
    outputs = outputs_of(manifest, frame, plate, face)
    arrays = {"frame": frame, "plate_box": plate, "face_box": face}
    arrays.update({f"out:{k}": v.astype(np.float16) for k, v in outputs.items()})
    arrays["faces:centerface"] = faces_of(centerface(manifest), frame)
    np.savez_compressed(args.out, **arrays)  # type: ignore[arg-type]
    size = args.out.stat().st_size / 1e6
    print(f"{args.out}: {len(outputs)} outputs of {len(manifest.entries)} models, {size:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
