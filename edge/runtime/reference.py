"""What the shipped models do, pinned: each model's outputs on fixed inputs, and the tolerance they must keep.

The models ship in ``models/`` (their bytes, not a conversion made on the installing machine). Their
*outputs* still vary a little with the CPU that runs them: LiteRT's kernels differ by vector extension
(AVX-512, AVX2, SSE, NEON) in the order they add floats. This module says how much is allowed:

* one fixed frame (a generated scene with a plate and a pedestrian's face) and two boxes in it, stored in
  ``tests/data/model_reference.npz`` together with every model's outputs on inputs made from them, as
  recorded by ``tools/model_reference.py`` on the machine that tested the release;
* inputs are made from that frame with numpy indexing and integer arithmetic only (no OpenCV, whose
  resizing may vary between versions), so every machine feeds the models the same numbers;
* :data:`TOLERANCE` (float models): for each output, the largest difference may be at most 2% of the
  reference output's range (plus 1e-4), and the mean difference at most 0.2% of it. Measured across
  x86-64 (AVX-512, AVX2, SSE4.2 only) and arm64: at most 0.003% (1e-4 on BlazeFace's regressors).
* :data:`QUANTISED_TOLERANCE` (int8 models: CenterFace): 30% and 2%. An int8 network's outputs depend
  on the kernels' rounding, which differs between implementations, not only between CPUs: on one x86
  machine LiteRT's XNNPACK and its built-in kernels differ by 23% of the box output's range at its worst
  (where no face is; 1.3% on average) and by 0.12 in a face score; arm64's kernels by as much (22%, 0.09).
  So an int8 model is held by what it finds, too: the faces it found on the reference frame must be found
  again (``faces_of``), and ``eval faces`` on the real sets gives the same recall on each CPU (README).

``tests/runtime/test_model_reference.py`` checks it on whatever machine runs the tests, and
``tools/check_conversion.py`` uses :func:`compare` to judge a fresh conversion against the shipped model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.runtime.manifest import Manifest, ModelEntry
from edge.runtime.tflite import TfliteModel, open_model

Array = npt.NDArray[Any]


@dataclass(frozen=True, slots=True)
class Tolerance:
    max_share: float = 0.02  # largest |difference| / reference range
    mean_share: float = 0.002  # mean |difference| / reference range
    floor: float = 1e-4  # absolute slack for outputs that are (nearly) constant


TOLERANCE = Tolerance()
QUANTISED_TOLERANCE = Tolerance(max_share=0.30, mean_share=0.02)


def tolerance_for(entry: ModelEntry) -> Tolerance:
    """The tolerance of a model's outputs: int8 models (their manifest version says so) round by kernel."""
    return QUANTISED_TOLERANCE if "int8" in entry.version else TOLERANCE


@dataclass(frozen=True, slots=True)
class Difference:
    output: str
    max_abs: float
    mean_abs: float
    span: float  # the reference output's range

    def within(self, tol: Tolerance = TOLERANCE) -> bool:
        return (self.max_abs <= tol.max_share * self.span + tol.floor
                and self.mean_abs <= tol.mean_share * self.span + tol.floor)

    def describe(self) -> str:
        share = self.max_abs / self.span if self.span > 0 else 0.0
        return (f"{self.output}: max |diff| {self.max_abs:.3g} ({share:.2%} of its range {self.span:.3g}), "
                f"mean {self.mean_abs:.3g}")


def resize_nearest(image: Array, height: int, width: int) -> Array:
    """Nearest-neighbour resize by integer index maps: the same pixels on every machine."""
    rows = (np.arange(height) * image.shape[0]) // height
    cols = (np.arange(width) * image.shape[1]) // width
    out: Array = image[rows][:, cols]
    return out


def grey(image: Array) -> Array:
    """BT.601 luma in integer arithmetic (as uint8)."""
    b, g, r = (image[..., k].astype(np.int32) for k in range(3))
    return ((29 * b + 150 * g + 77 * r + 128) >> 8).astype(np.uint8)


def crop(frame: Array, box: Array) -> Array:
    x0, y0, x1, y1 = (int(v) for v in box)
    return frame[max(y0, 0) : y1, max(x0, 0) : x1]


def model_input(entry: ModelEntry, shape: tuple[int, ...], frame: Array, plate_box: Array, face_box: Array) -> Array:
    """The fixed input (of ``shape``, NHWC) of ``entry``'s model: the part of the frame it is made for, scaled
    as the node scales it for that model (the tasks of models/manifest.json)."""
    height, width = shape[1], shape[2]
    if entry.task == "face-detection-centerface":  # RGB, 0..255
        return resize_nearest(frame, height, width)[np.newaxis, ..., ::-1].astype(np.float32)
    if entry.task == "plate-detection-wpod":  # BGR, 0..1
        return (resize_nearest(frame, height, width).astype(np.float32) / np.float32(255.0))[np.newaxis]
    if entry.task == "plate-ocr-ppocr":  # BGR, -1..1
        plate = resize_nearest(crop(frame, plate_box), height, width).astype(np.float32)
        return (plate / np.float32(127.5) - np.float32(1.0))[np.newaxis]
    if entry.task == "plate-ocr":  # grey, zero mean, unit spread
        plate = resize_nearest(grey(crop(frame, plate_box)), height, width).astype(np.float32)
        plate = (plate - plate.mean()) / max(float(plate.std()), 8.0)
        tensor: Array = plate.astype(np.float32)[np.newaxis, ..., np.newaxis]
        return tensor
    if entry.task == "face_detection":  # BlazeFace: RGB, -1..1
        face = resize_nearest(crop(frame, face_box), height, width)[..., ::-1].astype(np.float32)
        return (face / np.float32(127.5) - np.float32(1.0))[np.newaxis]
    raise ValueError(f"no reference input for task {entry.task!r} (model {entry.name!r})")


def run_reference(model: TfliteModel, frame: Array, plate_box: Array, face_box: Array) -> list[Array]:
    """Every output of ``model`` on its fixed input."""
    tensor = model_input(model.entry, tuple(model.input_shape), frame, plate_box, face_box)
    return [np.array(out, dtype=np.float32, copy=True) for out in model.run(tensor)]


def compare(reference: Mapping[str, Array], actual: Mapping[str, Array]) -> list[Difference]:
    """Per output (by key): how far ``actual`` is from ``reference``; a missing or reshaped output is
    infinitely far."""
    out = []
    for key, ref in reference.items():
        got = actual.get(key)
        span = float(np.max(ref) - np.min(ref)) if ref.size else 0.0
        if got is None or got.shape != ref.shape:
            out.append(Difference(key, float("inf"), float("inf"), span))
            continue
        diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
        out.append(Difference(key, float(diff.max()) if diff.size else 0.0,
                              float(diff.mean()) if diff.size else 0.0, span))
    return out


def outputs_of(manifest: Manifest, frame: Array, plate_box: Array, face_box: Array,
               *, unverified: Mapping[str, Path] | None = None) -> dict[str, Array]:
    """``<model name>/<output index>`` -> output, for every model of the manifest, each checked against its
    sha256. ``unverified`` (model name -> file) replaces some by files loaded without that check: a fresh
    conversion judged by behaviour (``tools/check_conversion.py``), never the node's way of loading."""
    out: dict[str, Array] = {}
    for entry in manifest.entries:
        fresh = (unverified or {}).get(entry.name)
        model = TfliteModel(fresh, entry) if fresh else open_model(manifest.path_of(entry), manifest)
        for k, array in enumerate(run_reference(model, frame, plate_box, face_box)):
            out[f"{entry.name}/{k}"] = array
    return out


def faces_of(model: TfliteModel, frame: Array) -> Array:
    """The faces CenterFace finds on ``frame`` shown twice as large (the scene's own size) at the node's default
    thresholds, as rows (x, y, w, h, score)."""
    from edge.privacy.centerface import CenterFaceDetector
    from edge.privacy.faces import RedactorSettings

    settings = RedactorSettings()
    detector = CenterFaceDetector(model, threshold=settings.threshold, small_threshold=settings.small_threshold,
                                  small_face=settings.small_face)
    found = detector.detect_scored(np.ascontiguousarray(resize_nearest(frame, 2 * frame.shape[0], 2 * frame.shape[1])))
    return np.array([[b.x, b.y, b.w, b.h, score] for b, score in found], dtype=np.float32).reshape(-1, 5)


def unmatched_faces(reference: Array, found: Array, *, iou: float = 0.5, score_slack: float = 0.15) -> list[str]:
    """Reference faces (rows x, y, w, h, score) with no found face overlapping them by ``iou`` and scoring
    within ``score_slack``; empty when every one was found again."""
    missing = []
    for x, y, w, h, score in reference:
        ok = False
        for fx, fy, fw, fh, fscore in found:
            ix = max(0.0, min(x + w, fx + fw) - max(x, fx))
            iy = max(0.0, min(y + h, fy + fh) - max(y, fy))
            inter = ix * iy
            union = w * h + fw * fh - inter
            if union > 0 and inter / union >= iou and abs(fscore - score) <= score_slack:
                ok = True
                break
        if not ok:
            missing.append(f"face at ({x:.0f}, {y:.0f}) {w:.0f}x{h:.0f} score {score:.2f} not found again")
    return missing
