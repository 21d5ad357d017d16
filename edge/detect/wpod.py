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

Its working memory grows with the input: about 90 MB for a 640x368 input, held for as long as the model is
loaded. With ``bands`` above 1 the input is run as that many overlapping horizontal bands, one after another
(:func:`bands`): the memory falls with the band's height, the time rises with the rows run twice. Each band
keeps the plates centred in its own rows (those nearer it than its neighbour), so a plate no taller than the
overlap is found whole in one band; then overlapping detections are suppressed across the bands as in one.
"""

from __future__ import annotations

import itertools
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
BAND_OVERLAP = 64  # input rows two neighbouring bands share (4 cells: a plate in a 640x360 image is under 40 rows)
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
    bands: int = 1  # overlapping horizontal bands the input is run in, one after another (less memory)


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


def bands(rows: int, count: int, overlap: int = BAND_OVERLAP) -> list[tuple[int, int]]:
    """Row ranges ``[top, bottom)`` of ``count`` bands of equal height (a multiple of the stride) that cover
    ``rows`` input rows (a multiple of the stride), neighbours sharing at least ``overlap`` rows; one band, the
    whole input, where bands would be no shorter than it."""
    for n in range(count, 1, -1):  # fewer bands where the input is too short for distinct ones
        height = -(-(rows + (n - 1) * overlap) // n)
        height += (-height) % STRIDE
        while height < rows:
            tops = [round((rows - height) * i / (n - 1) / STRIDE) * STRIDE for i in range(n)]
            if len(set(tops)) == n and all(top + height - after >= overlap
                                           for top, after in itertools.pairwise(tops)):
                return [(top, top + height) for top in tops]
            height += STRIDE
    return [(0, rows)]


def decode(output: npt.NDArray[np.float32], width: int, height: int, options: WpodDetectorOptions,
           ) -> list[PlateDetection]:
    """Plates from one (H/16)x(W/16)x8 output map, in the pixels of a ``width`` x ``height`` image.

    Each detection has its axis-aligned box and its four corners (top-left, top-right, bottom-right,
    bottom-left of the plate as the network saw it), the plate probability as confidence.
    """
    return suppress_overlaps(_cells(output, width, height, options), iou=options.nms_iou)[: options.max_detections]


def _cells(output: npt.NDArray[np.float32], width: int, height: int, options: WpodDetectorOptions, *,
           top: float = 0.0, span: float | None = None) -> list[PlateDetection]:
    """The plates of every cell above the threshold, before suppression. ``top``, ``span``: the map covers only
    the image's rows from ``top``, ``span`` of them (a band); boxes are clipped to the whole image."""
    rows, cols = output.shape[:2]
    covered = height if span is None else span
    ys, xs = np.nonzero(output[..., 0] > options.threshold)
    found = []
    for y, x in zip(ys.tolist(), xs.tolist(), strict=True):
        affine = output[y, x, 2:].astype(np.float64).reshape(2, 3)
        affine[0, 0] = max(affine[0, 0], 0.0)
        affine[1, 1] = max(affine[1, 1], 0.0)
        pts = (affine @ _BASE) * SIDE + np.array([[x + 0.5], [y + 0.5]])  # output-map cells
        pts = pts / np.array([[cols], [rows]]) * np.array([[width], [covered]]) + np.array([[0.0], [top]])
        x0, y0 = pts.min(axis=1)
        x1, y1 = pts.max(axis=1)
        box = Box(round(x0), round(y0), round(x1 - x0), round(y1 - y0)).clipped(width, height)
        if box.w < options.min_width or box.h < 1:
            continue
        corners = tuple((float(px), float(py)) for px, py in pts.T)
        found.append(PlateDetection(box, float(output[y, x, 0]), corners))
    return found


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
        tensor = to_input(image, size)
        ranges = bands(size[1], self._options.bands)  # one band: the whole input, every plate its own
        rows = h / size[1]  # image rows per input row
        cuts = [(bottom + after) / 2 * rows for (_, bottom), (after, _) in itertools.pairwise(ranges)]
        edges = [0.0, *cuts, float(h)]  # each band's own rows, in image rows: up to the middle of each overlap
        found: list[PlateDetection] = []
        for (top, bottom), own_top, own_bottom in zip(ranges, edges[:-1], edges[1:], strict=True):
            self._network.resize_input((1, bottom - top, size[0], 3))
            output = self._network.run(tensor[:, top:bottom])[0][0]
            found += [d for d in _cells(output, w, h, self._options, top=top * rows, span=(bottom - top) * rows)
                      if own_top <= d.box.centre[1] < own_bottom]
        return suppress_overlaps(found, iou=self._options.nms_iou)[: self._options.max_detections]
