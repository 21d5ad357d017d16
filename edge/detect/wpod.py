"""WPOD-NET (Silva & Jung, ECCV 2018, "alpr-unconstrained"): a small CNN that finds plates and their corners.

The network (``tools/convert_wpod_net.py`` converts it) is fully convolutional with stride 16: for a
1xHxWx3 input (BGR scaled to 0..1, H and W multiples of 16) it gives an (H/16)x(W/16)x8 map. Per
cell, channel 0 is the probability that a plate is centred there (channel 1 its complement) and
channels 2..7 an affine map ``A`` (2x3) that carries the corners of a unit square, centred on the
cell, onto the plate. Decoding follows alpr-unconstrained's ``reconstruct`` exactly: ``A[0,0]`` and
``A[1,1]`` are clipped at 0, the corners ``A @ [(-.5,-.5,1), (.5,-.5,1), (.5,.5,1), (-.5,.5,1)]`` are
scaled by the network's side (7.75 cells: ((208 + 40) / 2) / 16), moved to the cell centre and divided
by the map size, giving corners as shares of the image; cells above the threshold (0.5) become
detections, and overlapping ones (IoU of their corner bounding boxes above 0.1) are suppressed, most
probable first.

WPOD-NET was trained on vehicle crops, where a plate is roughly 40 to 200 input pixels wide; the
detection image can be enlarged by ``scale`` so that small plates of a full frame reach that range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from edge.detect import suppress_overlaps
from edge.domain import Box, Image, PlateDetection
from edge.errors import ModelError

STRIDE = 16
SIDE = ((208.0 + 40.0) / 2.0) / STRIDE  # 7.75 cells: the unit square's size in the output map
_BASE = np.array([[-0.5, 0.5, 0.5, -0.5], [-0.5, -0.5, 0.5, 0.5], [1.0, 1.0, 1.0, 1.0]], np.float64)


class Network(Protocol):
    """What the detector needs of a model: :class:`edge.runtime.TfliteModel` has it."""

    @property
    def input_shape(self) -> tuple[int, ...]: ...

    def resize_input(self, shape: tuple[int, ...]) -> None: ...

    def run(self, tensor: npt.NDArray[Any]) -> list[npt.NDArray[np.float32]]: ...


@dataclass(frozen=True, slots=True)
class WpodDetectorOptions:
    threshold: float = 0.5  # alpr-unconstrained's lp_threshold
    nms_iou: float = 0.1  # as alpr-unconstrained's reconstruct
    scale: float = 1.0  # network input = detection image x scale, rounded up to multiples of 16
    min_width: int = 24  # smallest plate width, pixels of the detection image
    max_detections: int = 5


def input_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The network input (width, height) for an image: scaled, each side rounded up to a multiple of 16."""
    w = max(STRIDE, round(width * scale))
    h = max(STRIDE, round(height * scale))
    return w + (-w) % STRIDE, h + (-h) % STRIDE


def to_input(image: Image, size: tuple[int, int]) -> npt.NDArray[np.float32]:
    """1xHxWx3 float32, BGR scaled to 0..1, the image resized (stretched) to ``size`` (width, height)."""
    h, w = image.shape[:2]
    resized = image if (w, h) == size else cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    return (np.asarray(resized, np.float32) / 255.0)[np.newaxis]


def decode(output: npt.NDArray[np.float32], width: int, height: int, options: WpodDetectorOptions,
           ) -> list[PlateDetection]:
    """Plates from one (H/16)x(W/16)x8 output map, in the pixels of a ``width`` x ``height`` image.

    Each detection has its axis-aligned box and its four corners (top-left, top-right, bottom-right,
    bottom-left of the plate as the network saw it), the plate probability as confidence.
    """
    rows, cols = output.shape[:2]
    ys, xs = np.nonzero(output[..., 0] > options.threshold)
    found = []
    for y, x in zip(ys.tolist(), xs.tolist(), strict=True):
        affine = output[y, x, 2:].astype(np.float64).reshape(2, 3)
        affine[0, 0] = max(affine[0, 0], 0.0)
        affine[1, 1] = max(affine[1, 1], 0.0)
        pts = (affine @ _BASE) * SIDE + np.array([[x + 0.5], [y + 0.5]])  # output-map cells
        pts = pts / np.array([[cols], [rows]]) * np.array([[width], [height]])  # image pixels
        x0, y0 = pts.min(axis=1)
        x1, y1 = pts.max(axis=1)
        box = Box(round(x0), round(y0), round(x1 - x0), round(y1 - y0)).clipped(width, height)
        if box.w < options.min_width or box.h < 1:
            continue
        corners = tuple((float(px), float(py)) for px, py in pts.T)
        found.append(PlateDetection(box, float(output[y, x, 0]), corners))
    return suppress_overlaps(found, iou=options.nms_iou)[: options.max_detections]


class WpodPlateDetector:
    """Implements :class:`edge.detect.PlateDetector` with WPOD-NET. Not thread-safe (one model per worker)."""

    def __init__(self, network: Network, options: WpodDetectorOptions = WpodDetectorOptions()) -> None:
        if options.scale <= 0:
            raise ValueError(f"WPOD-NET scale {options.scale} must be above 0")
        shape = tuple(network.input_shape)
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
            raise ModelError(f"WPOD-NET model input is {list(shape)}; expected [1, height, width, 3] (BGR)")
        self._network = network
        self._options = options

    def detect(self, image: Image) -> list[PlateDetection]:
        h, w = image.shape[:2]
        size = input_size(w, h, self._options.scale)
        self._network.resize_input((1, size[1], size[0], 3))
        output = self._network.run(to_input(image, size))[0]
        return decode(output[0], w, h, self._options)
