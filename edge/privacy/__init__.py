"""Privacy: decide on the node what may leave it; remove faces before anything is queued."""

from __future__ import annotations

from typing import Protocol

from edge.domain import Box, Image


class FaceDetector(Protocol):
    """Finds faces in an image (pixel boxes). Raises on failure: callers fail closed."""

    def detect(self, image: Image) -> list[Box]: ...
