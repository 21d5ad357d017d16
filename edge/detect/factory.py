"""Build the configured plate detector (the composition root and ``eval plates`` both use this)."""

from __future__ import annotations

from edge.config.model import DetectConfig
from edge.detect import PlateDetector
from edge.detect.contour import ContourDetectorOptions, ContourPlateDetector
from edge.detect.edges import EdgeDetectorOptions, EdgePlateDetector
from edge.errors import ConfigError

DETECTORS = ("contour", "edges")


def build_detector(config: DetectConfig, backend: str | None = None) -> PlateDetector:
    """The detector named by ``backend`` (default: ``config.backend``) with the config's thresholds."""
    name = backend or config.backend
    if name == "contour":
        return ContourPlateDetector(
            ContourDetectorOptions(min_width=config.min_plate_width, min_confidence=config.min_confidence)
        )
    if name == "edges":
        return EdgePlateDetector(
            EdgeDetectorOptions(min_width=config.min_plate_width, min_confidence=config.min_confidence)
        )
    raise ConfigError(f"unknown plate detector {name!r}; known: {', '.join(DETECTORS)}")
