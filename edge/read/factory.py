"""Build the configured plate reader (the composition root and ``eval plates`` both use this).

The reader backend follows the model: the manifest's ``task`` of ``read.model`` names it, so a
config that points ``read.model`` at another listed model switches backend without a code change.
"""

from __future__ import annotations

from pathlib import Path

from edge.config.model import ReadConfig
from edge.errors import ConfigError
from edge.read import PlateReader
from edge.read.formats import FormatSet
from edge.read.lattice import FormatDecoder
from edge.read.ocr import TflitePlateReader
from edge.read.ppocr import PpocrPlateReader
from edge.runtime import load_manifest, open_model
from edge.runtime.manifest import read_verified

# manifest task -> reader backend name
TASK_BACKENDS = {"plate-ocr": "ctc", "plate_ocr": "ctc", "plate-ocr-ppocr": "ppocr"}
READERS = ("ctc", "ppocr")


def reader_backend(config: ReadConfig) -> str:
    """The backend the manifest entry of ``config.model`` calls for."""
    entry = load_manifest(config.manifest).by_file(config.model)
    try:
        return TASK_BACKENDS[entry.task]
    except KeyError:
        raise ConfigError(
            f"model {config.model!r} has task {entry.task!r}, which no plate reader serves "
            f"(reader tasks: {', '.join(TASK_BACKENDS)})"
        ) from None


def default_model(backend: str, config: ReadConfig) -> str:
    """The model a backend reads with: ``config.model`` when its task is that backend's, else the first
    model of the manifest whose task is."""
    if backend not in READERS:
        raise ConfigError(f"unknown plate reader {backend!r}; known: {', '.join(READERS)}")
    manifest = load_manifest(config.manifest)
    own = [e for e in manifest.entries if TASK_BACKENDS.get(e.task) == backend]
    if not own:
        raise ConfigError(f"no model for the {backend!r} reader in {config.manifest!r}")
    configured = Path(config.model).resolve()
    if any(manifest.path_of(e).resolve() == configured for e in own):
        return config.model
    return str(manifest.path_of(own[0]))


def build_reader(config: ReadConfig, backend: str | None = None, formats: FormatSet | None = None, *,
                 content: bytes | None = None) -> PlateReader:
    """The reader named by ``backend`` (default: the one ``config.model``'s manifest task calls for).

    With ``formats`` and ``config.format_guided``, the reader decodes to the likeliest reading that fits
    one of them (:mod:`edge.read.lattice`); without, it decodes greedily. ``content``: ``config.model``'s bytes,
    already read.
    """
    name = backend or reader_backend(config)
    manifest = load_manifest(config.manifest)
    ratio = config.fit_min_ratio
    decoder = FormatDecoder(formats, min_ratio=ratio) if formats is not None and config.format_guided else None
    if name not in READERS:
        raise ConfigError(f"unknown plate reader {name!r}; known: {', '.join(READERS)}")
    model = open_model(config.model, manifest, threads=config.threads, content=content)
    if name == "ctc":
        return TflitePlateReader(model, decoder, ratio)
    return PpocrPlateReader(model, decoder=decoder, min_ratio=ratio)


def build_readers(config: ReadConfig, count: int, formats: FormatSet | None = None) -> list[PlateReader]:
    """``count`` readers of ``config.model`` (one per worker: an interpreter is not thread-safe), all loaded from
    one checked copy of its bytes (each reader after the first costs 15 MB, 27 MB when each mapped the file)."""
    content = read_verified(config.model, load_manifest(config.manifest))
    return [build_reader(config, formats=formats, content=content) for _ in range(count)]
