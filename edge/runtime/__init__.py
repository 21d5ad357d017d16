"""Runtime: load ``.tflite`` models through LiteRT (``ai-edge-litert``), falling back to ``tflite-runtime``.

Every model file is checked against the sha256 in ``models/manifest.json`` before it is loaded.
"""

from edge.runtime.manifest import Manifest, ModelEntry, load_manifest
from edge.runtime.tflite import TfliteModel, open_model

__all__ = ["Manifest", "ModelEntry", "TfliteModel", "load_manifest", "open_model"]
