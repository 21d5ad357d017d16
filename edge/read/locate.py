"""Where the plates of an image are, unread: the other vehicles of an overview that leaves the node.

The privacy stage gives each other vehicle in a ``redacted_overview`` an enlarged look at its occupants. The
tracker knows the vehicles it follows; a far vehicle whose small plate it has not yet picked up (the node's
fine look runs only while no crop reads as a plate) is found here: the fine look's boxes on the overview,
kept unless the crop looks like no plate at all (:func:`edge.read.line.plate_check`). A "maybe" is kept: the
detector's box often cuts a far plate short (its characters run out of the crop), and here a box too many
costs one more look at a window, a box too few a driver's face. Nothing is read.
"""

from __future__ import annotations

from edge.detect import PlateDetector
from edge.domain import Box, Image
from edge.read.finder import shrunk
from edge.read.line import plate_check


class PlateLocator:
    """Boxes of the plates in an image (full-resolution pixels), by ``detector`` (the fine look's) on the image
    shrunk to at most ``work_size`` (twice the detection stream, as the fine look sees it)."""

    def __init__(self, detector: PlateDetector, *, work_size: tuple[int, int]) -> None:
        self._detector = detector
        self._work = work_size

    def locate(self, image: Image) -> list[Box]:
        seen = shrunk(image, *self._work)
        sx, sy = image.shape[1] / seen.shape[1], image.shape[0] / seen.shape[0]
        found = []
        for det in self._detector.detect(seen):
            box = det.scaled(sx, sy).box
            crop = image[box.y : box.y + box.h, box.x : box.x + box.w]
            if crop.size and plate_check(crop).level != "no":
                found.append(box)
        return found
