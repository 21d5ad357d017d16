"""Capture: where frames come from (Pi camera, video file, image folder, network stream)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from edge.domain import Frame


class FrameSource(Protocol):
    """Yields frames in capture order. Implementations release hardware in ``finally``."""

    def frames(self) -> Iterator[Frame]: ...
