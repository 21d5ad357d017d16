"""Build the configured plate detector (the composition root and ``eval plates`` both use this)."""

from __future__ import annotations

import dataclasses

from edge.config.model import DetectConfig
from edge.detect import PlateDetector
from edge.detect.contour import ContourDetectorOptions, ContourPlateDetector
from edge.detect.edges import FINE_LOOK, EdgeDetectorOptions, EdgePlateDetector
from edge.detect.glow import GlowDetectorOptions, GlowPlateDetector
from edge.detect.wpod import STRIDE, WpodDetectorOptions, WpodPlateDetector
from edge.detect.yellow import Together, YellowPlateDetector
from edge.errors import ConfigError
from edge.runtime import load_manifest, open_model

DETECTORS = ("contour", "edges", "wpod")


def build_second_look(config: DetectConfig, backend: str | None = None) -> PlateDetector | None:
    """The detector that looks again when the first found nothing readable (None: ``none``, or the same
    detector as ``detect.backend``, which would only find the same boxes again)."""
    name = backend or config.second_look
    return None if name in ("none", config.backend) else build_detector(config, name)


def build_fine_look(config: DetectConfig) -> PlateDetector | None:
    """The detectors for small plates on a larger image: edges for small characters, yellow rectangles (rear
    plates whose characters are too small to separate) and, in a monochrome (infrared) image, glowing ones.
    None: ``detect.fine_look`` is off."""
    if not config.fine_look:
        return None
    small = EdgePlateDetector(dataclasses.replace(FINE_LOOK, min_confidence=config.min_confidence))
    return Together(small, YellowPlateDetector(), GlowPlateDetector())


def build_detector(config: DetectConfig, backend: str | None = None) -> PlateDetector:
    """The detector named by ``backend`` (default: ``config.backend``) with the config's thresholds."""
    name = backend or config.backend
    if name == "contour":
        return ContourPlateDetector(
            ContourDetectorOptions(min_width=config.min_plate_width, min_confidence=config.min_confidence)
        )
    if name == "edges":  # with the glowing plates of a monochrome (infrared) frame, which it finds alone
        edges = EdgeDetectorOptions(min_width=config.min_plate_width, min_confidence=config.min_confidence)
        glow = GlowDetectorOptions(min_width=config.min_plate_width)
        return Together(EdgePlateDetector(edges), GlowPlateDetector(glow))
    if name == "wpod":
        # first prepared for one cell: the detector sizes it to each image (or band) before running it
        model = open_model(config.model, load_manifest(config.manifest), threads=config.threads,
                           first_input=(1, STRIDE, STRIDE, 3))
        if model.entry.task != "plate-detection-wpod":
            raise ConfigError(
                f"detect.model {config.model!r} has task {model.entry.task!r}; the wpod detector needs a "
                "'plate-detection-wpod' model (models/wpod_net.tflite, from tools/convert_wpod_net.py)"
            )
        # alpr-unconstrained's threshold is 0.5; a higher detect.min_confidence raises it
        threshold = max(WpodDetectorOptions().threshold, config.min_confidence)
        return WpodPlateDetector(
            model, WpodDetectorOptions(threshold=threshold, scale=config.scale, min_width=config.min_plate_width,
                                       bands=config.wpod_bands)
        )
    raise ConfigError(f"unknown plate detector {name!r}; known: {', '.join(DETECTORS)}")
