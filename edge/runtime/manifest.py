"""The model manifest: name, version, task, input size, licence, source and sha256 of each model.

Every model ships in the repository (``models/``) with its sha256 here; nothing is converted or downloaded
at set-up or at run time. Check a models folder (``scripts/install-node.sh`` does, after copying)::

    python -m edge.runtime.check --models-dir /opt/edge-anpr/models
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ModelError


@dataclass(frozen=True, slots=True)
class ModelEntry:
    name: str
    file: str  # relative to the manifest's folder
    version: str
    task: str
    input_size: tuple[int, ...]
    licence: str
    source: str  # "trained: <script>" or "pypi: <package>==<version>:<path inside the wheel>"
    sha256: str


@dataclass(frozen=True, slots=True)
class Manifest:
    root: Path
    entries: tuple[ModelEntry, ...]

    def by_file(self, path: str | Path) -> ModelEntry:
        wanted = Path(path).resolve()
        for entry in self.entries:
            if (self.root / entry.file).resolve() == wanted:
                return entry
        known = ", ".join(e.file for e in self.entries) or "none"
        raise ModelError(f"model file {str(path)!r} is not listed in {self.root / 'manifest.json'} (listed: {known})")

    def by_name(self, name: str) -> ModelEntry:
        for entry in self.entries:
            if entry.name == name:
                return entry
        known = ", ".join(e.name for e in self.entries) or "none"
        raise ModelError(f"no model named {name!r} in {self.root / 'manifest.json'} (known: {known})")

    def path_of(self, entry: ModelEntry) -> Path:
        return self.root / entry.file


def load_manifest(path: str | Path) -> Manifest:
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"cannot read model manifest {str(p)!r}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ModelError(f"model manifest {str(p)!r} is not valid JSON: {exc}") from exc
    try:
        entries = tuple(
            ModelEntry(
                name=str(m["name"]),
                file=str(m["file"]),
                version=str(m["version"]),
                task=str(m["task"]),
                input_size=tuple(int(v) for v in m["input_size"]),
                licence=str(m["licence"]),
                source=str(m["source"]),
                sha256=str(m["sha256"]).lower(),
            )
            for m in raw["models"]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"model manifest {str(p)!r} has a malformed entry: {exc!r}") from exc
    return Manifest(root=p.parent, entries=entries)


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: str | Path, manifest: Manifest, content: bytes | None = None) -> ModelEntry:
    """Check a model file (or ``content``, its bytes as read) against its manifest entry; raise ModelError on any
    mismatch."""
    entry = manifest.by_file(path)
    if content is None and not Path(path).is_file():
        raise ModelError(
            f"model file {str(path)!r} ({entry.name}) is missing; it ships in the repository's models/ folder "
            "(scripts/install-node.sh copies it)"
        )
    actual = sha256_of(path) if content is None else hashlib.sha256(content).hexdigest()
    if actual != entry.sha256:
        raise ModelError(
            f"model file {str(path)!r} has sha256 {actual}, but the manifest expects {entry.sha256} "
            f"for {entry.name} {entry.version}: refusing to load it"
        )
    return entry


def read_verified(path: str | Path, manifest: Manifest) -> bytes:
    """A model file's bytes, checked against its manifest entry: several interpreters can load from this one copy
    (and load exactly the bytes that were checked)."""
    entry = manifest.by_file(path)
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise ModelError(
            f"model file {str(path)!r} ({entry.name}) cannot be read ({exc.strerror or exc}); it ships in the "
            "repository's models/ folder (scripts/install-node.sh copies it)"
        ) from exc
    verify(path, manifest, content)
    return content


def check_all(manifest: Manifest) -> list[str]:
    """Problems with the models of ``manifest`` on disk (missing, wrong sha256); empty when all are right."""
    problems = []
    for entry in manifest.entries:
        path = manifest.path_of(entry)
        if not path.is_file():
            problems.append(f"{entry.name}: {path} is missing")
        elif sha256_of(path) != entry.sha256:
            problems.append(f"{entry.name}: {path} has sha256 {sha256_of(path)}, the manifest {entry.sha256}")
    return problems

