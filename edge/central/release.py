"""Releases of the node's software and models, signed into a TUF repository (python-tuf's Metadata API).

A **bundle** (:func:`build_bundle`) is one tar: ``release.json`` (``anpr.release/1``: the version and every file's
sha256 and size), the package wheel built from this checkout (``wheels/edge_anpr-<version>-*.whl``), optionally
its locked dependency wheels for the node's platform (``wheels/``), and the models with their manifest
(``models/``).

The **repository** (:class:`ReleaseRepo`) is a folder any static HTTPS server can serve: ``metadata/`` (TUF's
``N.root.json``, ``N.targets.json``, ``N.snapshot.json`` and ``timestamp.json``; consistent snapshots, so a
publish never rewrites a file a node may be reading except ``timestamp.json``, replaced atomically last) and
``targets/`` (each target under ``<sha256>.<name>``). Targets are the bundles (``releases/edge-anpr-<v>.tar``)
and small **rollout pointers** that say which release a scope runs: ``rollout/all.json`` (every node),
``rollout/group/<name>.json`` and ``rollout/<site>/<camera>.json``. A node takes the most specific pointer it
finds (its own, then its groups' in config order, then ``all``), so staging is: a group first, then everyone.

Keys (Ed25519, PKCS#8 PEM files, 0600): the **root** key signs only root metadata and stays offline (the
operator keeps the file on a removable medium); the **online** key signs targets, snapshot and timestamp, and is
rotated through root (:meth:`ReleaseRepo.rotate`: a new root version that names the new key, signed by the root
key; nodes follow the chain of root versions from the one they pinned, so nothing is touched on them).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.metadata import (
    TOP_LEVEL_ROLE_NAMES,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from edge.clock import iso_ms
from edge.errors import EdgeError
from edge.files import canonical_json, write_atomic
from edge.fleet import signing
from edge.fleet.release import RELEASE_FORMAT, RELEASE_JSON, ROLLOUT_FORMAT, check_version, release_path, rollout_path

log = logging.getLogger(__name__)

ONLINE_ROLES = ("targets", "snapshot", "timestamp")
_WHEEL = re.compile(r"^edge_anpr-(?P<version>[^-]+)-.+\.whl$")


@dataclass(frozen=True, slots=True)
class Expiry:
    """How long each role's metadata stays valid once signed (a node refuses expired metadata: freeze attacks)."""

    root: timedelta = timedelta(days=365)
    targets: timedelta = timedelta(days=30)
    snapshot: timedelta = timedelta(days=14)
    timestamp: timedelta = timedelta(days=2)

    def of(self, role: str) -> timedelta:
        value: timedelta = getattr(self, role)
        return value


class ReleaseError(EdgeError):
    """A bundle or repository operation that cannot be done (exit 2: the operator must fix something)."""

    exit_code = 2


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- the bundle ------------------------------------------------------------------------------------------------


def build_wheel(source: Path, out: Path) -> Path:
    """``pip wheel --no-deps SOURCE``: the package wheel of this checkout."""
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(source)], capture_output=True, text=True, check=False)
    wheels = sorted(out.glob("edge_anpr-*.whl"))
    if done.returncode != 0 or not wheels:
        raise ReleaseError(f"pip wheel {source} failed: {(done.stderr or done.stdout).strip()[-400:]}")
    return wheels[-1]


def download_dependencies(wheel: Path, out: Path, *, platform: str, python_version: str,
                          lock: Path | None) -> list[Path]:
    """The wheels the package needs on ``platform`` (``pip download --only-binary``; ``lock``: a hashed
    requirements file, installed exactly)."""
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--platform", platform,
           "--python-version", python_version, "-d", str(out)]
    cmd += ["--require-hashes", "-r", str(lock)] if lock is not None else [str(wheel)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ReleaseError(f"pip download for {platform} failed: {(done.stderr or done.stdout).strip()[-400:]}")
    return sorted(p for p in out.glob("*.whl") if not p.name.startswith("edge_anpr-"))


def model_files(models: Path) -> list[Path]:
    """``manifest.json`` and every model it lists, each checked against its sha256."""
    manifest = models / "manifest.json"
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReleaseError(f"cannot read the models manifest {manifest}: {exc}") from exc
    files = [manifest]
    for entry in doc.get("models", []):
        path = models / entry["file"]
        if not path.is_file() or _sha256_file(path) != entry["sha256"]:
            raise ReleaseError(f"{path} is missing or does not match models/manifest.json's sha256")
        files.append(path)
    return files


def build_bundle(
    out_dir: Path, *, wheel: Path, models: Path | None, dependencies: Iterable[Path] = (), now: datetime,
    version: str | None = None,
) -> Path:
    """Write ``edge-anpr-<version>.tar`` into ``out_dir``; the version is the wheel's unless given (then equal)."""
    m = _WHEEL.match(wheel.name)
    if m is None:
        raise ReleaseError(f"{wheel.name} is not an edge_anpr wheel (edge_anpr-<version>-...whl)")
    version = check_version(version or m["version"])
    if version != m["version"]:
        raise ReleaseError(f"--version {version} is not the wheel's version {m['version']}")
    members: list[tuple[str, Path]] = [(f"wheels/{wheel.name}", wheel)]
    members += [(f"wheels/{p.name}", p) for p in dependencies]
    if models is not None:
        members += [(f"models/{p.relative_to(models).as_posix()}", p) for p in model_files(models)]
    files = {name: {"sha256": _sha256_file(path), "size": path.stat().st_size} for name, path in members}
    doc = {"format": RELEASE_FORMAT, "version": version, "built": iso_ms(now), "wheel": f"wheels/{wheel.name}",
           "dependencies": len(members) > 1 and any(n.startswith("wheels/") for n, _ in members[1:]),
           "models": models is not None, "files": files}
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"edge-anpr-{version}.tar"
    tmp = out.with_name(f".{out.name}.tmp")
    mtime = int(now.timestamp())
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        meta = json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n"
        _add_bytes(tar, RELEASE_JSON, meta, mtime)
        for name, path in sorted(members):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = path.stat().st_size, mtime, 0o644
            with path.open("rb") as f:
                tar.addfile(info, f)
    os.replace(tmp, out)
    return out


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), mtime, 0o644
    tar.addfile(info, io.BytesIO(data))


def read_release_json(bundle: Path) -> dict[str, Any]:
    try:
        with tarfile.open(bundle, "r:") as tar:
            member = tar.extractfile(RELEASE_JSON)
            if member is None:
                raise KeyError(RELEASE_JSON)
            doc = json.loads(member.read())
    except (OSError, KeyError, ValueError, tarfile.TarError) as exc:
        raise ReleaseError(f"{bundle} is not a release bundle (a tar with {RELEASE_JSON}): {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != RELEASE_FORMAT:
        raise ReleaseError(f"{bundle}: {RELEASE_JSON} is not {RELEASE_FORMAT}")
    check_version(str(doc.get("version")))
    return doc


# -- keys --------------------------------------------------------------------------------------------------------


def make_key(path: Path) -> CryptoSigner:
    """A new Ed25519 key written to ``path`` (0600); refuses to overwrite one."""
    if path.exists():
        raise ReleaseError(f"{path} exists: keep it, or move it away to make a new key")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = signing.generate_key()
    signing.write_private_key(path, key)
    return CryptoSigner(key)


def load_signer(path: Path) -> CryptoSigner:
    return CryptoSigner(signing.load_private_key(path))


def public_key(signer: CryptoSigner) -> SSlibKey:
    key = signer.public_key
    if not isinstance(key, SSlibKey):
        raise ReleaseError("unexpected key type")
    return key


# -- the repository ----------------------------------------------------------------------------------------------


class ReleaseRepo:
    """A TUF repository on disk: the latest metadata of each role, loaded; changes written by :meth:`commit`."""

    def __init__(self, path: Path, root: Metadata[Root], targets: Metadata[Targets], *,
                 expiry: Expiry | None = None) -> None:
        self.path = path
        self.meta_dir = path / "metadata"
        self.targets_dir = path / "targets"
        self.expiry = expiry or Expiry()
        self.root = root
        self.targets = targets

    @classmethod
    def open(cls, path: Path, *, expiry: Expiry | None = None) -> ReleaseRepo:
        meta = path / "metadata"
        if not (meta / "1.root.json").is_file():
            raise ReleaseError(f"{path} is not a release repository (no metadata/1.root.json): fleet release init-repo")
        root: Metadata[Root] = Metadata.from_file(str(_latest(meta, "root")))
        targets: Metadata[Targets] = Metadata.from_file(str(_latest(meta, "targets")))
        return cls(path, root, targets, expiry=expiry)

    def _latest(self, role: str) -> Path:
        return _latest(self.meta_dir, role)

    @classmethod
    def init(cls, path: Path, *, root_signer: CryptoSigner, online_signer: CryptoSigner, now: datetime,
             expiry: Expiry | None = None) -> ReleaseRepo:
        """Root version 1 (root key for root, the online key for the rest) and empty targets, snapshot, timestamp."""
        expiry = expiry or Expiry()
        meta = path / "metadata"
        if (meta / "1.root.json").exists():
            raise ReleaseError(f"{path} already holds a repository (metadata/1.root.json)")
        meta.mkdir(parents=True, exist_ok=True)
        (path / "targets").mkdir(exist_ok=True)
        root = Metadata(Root(expires=now + expiry.root, consistent_snapshot=True))
        for role in TOP_LEVEL_ROLE_NAMES:
            root.signed.add_key(public_key(root_signer if role == "root" else online_signer), role)
        root.sign(root_signer)
        _write(meta / "1.root.json", root)
        targets = Metadata(Targets(version=1, expires=now + expiry.targets))
        targets.signed.version = 0  # commit() signs version 1
        repo = cls(path, root, targets, expiry=expiry)
        repo.commit(online_signer, now)
        return repo

    # -- what is published ------------------------------------------------------------------------------------

    def releases(self) -> dict[str, TargetFile]:
        return {t.custom["version"]: t for t in self.targets.signed.targets.values()
                if t.path.startswith("releases/") and isinstance(t.custom, dict) and "version" in t.custom}

    def rollouts(self) -> dict[str, dict[str, Any]]:
        """Scope -> the pointer document, for every rollout pointer published."""
        out: dict[str, dict[str, Any]] = {}
        for path, info in self.targets.signed.targets.items():
            if path.startswith("rollout/"):
                data = (self.targets_dir / _stored_name(info)).read_bytes()
                out[path[len("rollout/"):-len(".json")]] = json.loads(data)
        return out

    def add_release(self, bundle: Path) -> TargetFile:
        doc = read_release_json(bundle)
        version = doc["version"]
        path = release_path(version)
        if version in self.releases():
            raise ReleaseError(f"release {version} is already published; build a new version")
        with bundle.open("rb") as f:
            info = TargetFile.from_data(path, f, ["sha256"])
        info.unrecognized_fields["custom"] = {"version": version, "format": RELEASE_FORMAT,
                                              "built": doc.get("built"), "models": bool(doc.get("models")),
                                              "dependencies": bool(doc.get("dependencies"))}
        dest = self.targets_dir / _stored_name(info)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        shutil.copyfile(bundle, tmp)
        os.replace(tmp, dest)
        self.targets.signed.targets[path] = info
        return info

    def set_rollout(self, scope: str, version: str, now: datetime) -> None:
        """Point ``scope`` (``all``, ``group/<name>``, ``<site>/<camera>``) at a published release."""
        release = self.releases().get(version)
        if release is None:
            raise ReleaseError(f"release {version} is not published here (published: {sorted(self.releases())})")
        previous = self.rollouts().get(scope, {}).get("version")
        doc = {"format": ROLLOUT_FORMAT, "scope": scope, "version": version, "release": release.path,
               "previous": previous, "time": iso_ms(now)}
        data = canonical_json(doc)
        info = TargetFile.from_data(rollout_path(scope), data, ["sha256"])
        dest = self.targets_dir / _stored_name(info)
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(dest, data, mode=0o644)
        self.targets.signed.targets[info.path] = info

    def clear_rollout(self, scope: str) -> None:
        self.targets.signed.targets.pop(rollout_path(scope), None)

    def withdraw(self, version: str, now: datetime, back_to: str | None = None) -> list[str]:
        """Remove a release; every pointer that names it goes back to ``back_to`` (default: the release it named
        before), or is removed when there is none. Returns one line per pointer changed."""
        if version not in self.releases():
            raise ReleaseError(f"release {version} is not published here (published: {sorted(self.releases())})")
        done = []
        for scope, doc in self.rollouts().items():
            if doc.get("version") != version:
                continue
            target = back_to or doc.get("previous")
            if target and target != version and target in self.releases():
                self.set_rollout(scope, target, now)
                done.append(f"{scope}: {version} -> {target}")
            else:
                self.clear_rollout(scope)
                done.append(f"{scope}: {version} withdrawn; the pointer is removed (nodes keep what they run)")
        del self.targets.signed.targets[release_path(version)]
        return done

    # -- signing ------------------------------------------------------------------------------------------------

    def commit(self, online_signer: CryptoSigner, now: datetime) -> None:
        """Sign and write a new targets, snapshot and timestamp (in that order; timestamp.json replaced last)."""
        self._check_online(online_signer)
        t = self.targets
        t.signed.version += 1
        t.signed.expires = now + self.expiry.targets
        t.signatures.clear()
        t.sign(online_signer)
        _write(self.meta_dir / f"{t.signed.version}.targets.json", t)
        self._snapshot_and_timestamp(online_signer, now)

    def _snapshot_and_timestamp(self, online_signer: CryptoSigner, now: datetime) -> None:
        try:
            snap: Metadata[Snapshot] = Metadata.from_file(str(self._latest("snapshot")))
            snap.signed.version += 1
        except ReleaseError:
            snap = Metadata(Snapshot())
        snap.signed.meta["targets.json"] = MetaFile(version=self.targets.signed.version)
        snap.signed.expires = now + self.expiry.snapshot
        snap.signatures.clear()
        snap.sign(online_signer)
        snap_path = self.meta_dir / f"{snap.signed.version}.snapshot.json"
        _write(snap_path, snap)
        self._timestamp(online_signer, now, snap.signed.version)

    def _timestamp(self, online_signer: CryptoSigner, now: datetime, snapshot_version: int) -> None:
        ts_path = self.meta_dir / "timestamp.json"
        if ts_path.exists():
            ts: Metadata[Timestamp] = Metadata.from_file(str(ts_path))
            ts.signed.version += 1
        else:
            ts = Metadata(Timestamp())
        ts.signed.snapshot_meta = MetaFile(version=snapshot_version)
        ts.signed.expires = now + self.expiry.timestamp
        ts.signatures.clear()
        ts.sign(online_signer)
        _write(ts_path, ts)

    def refresh(self, online_signer: CryptoSigner, now: datetime) -> str:
        """Re-sign what would expire before the next refresh (run daily, e.g. from cron): the timestamp always,
        targets and snapshot within the timestamp's lifetime of their expiry."""
        horizon = now + self.expiry.timestamp
        if self.targets.signed.expires <= horizon:
            self.commit(online_signer, now)
            return "re-signed targets, snapshot and timestamp"
        snap: Metadata[Snapshot] = Metadata.from_file(str(self._latest("snapshot")))
        if snap.signed.expires <= horizon:
            self._check_online(online_signer)
            self._snapshot_and_timestamp(online_signer, now)
            return "re-signed snapshot and timestamp"
        self._check_online(online_signer)
        self._timestamp(online_signer, now, snap.signed.version)
        return "re-signed timestamp"

    def _check_online(self, signer: CryptoSigner) -> None:
        keyid = public_key(signer).keyid
        allowed = self.root.signed.roles["targets"].keyids
        if keyid not in allowed:
            raise ReleaseError(f"the online key given ({keyid[:16]}...) is not the one root {self.root.signed.version} "
                               f"names for targets ({', '.join(k[:16] + '...' for k in allowed)}): rotated away?")

    def rotate(self, *, root_signer: CryptoSigner, now: datetime, new_online: CryptoSigner | None = None,
               new_root: CryptoSigner | None = None) -> int:
        """A new root version naming ``new_online`` for targets/snapshot/timestamp and/or ``new_root`` for root,
        signed by the current root key (and the new root key: a node checks both). Online metadata is then
        re-signed with the online key. Returns the new root version."""
        root = self.root
        current = set(root.signed.roles["root"].keyids)
        if public_key(root_signer).keyid not in current:
            raise ReleaseError("the root key given is not the one this repository's root names")
        root.signed.version += 1
        root.signed.expires = now + self.expiry.root
        if new_online is not None:
            for role in ONLINE_ROLES:
                for keyid in list(root.signed.roles[role].keyids):
                    root.signed.revoke_key(keyid, role)
                root.signed.add_key(public_key(new_online), role)
        if new_root is not None:
            for keyid in list(root.signed.roles["root"].keyids):
                root.signed.revoke_key(keyid, "root")
            root.signed.add_key(public_key(new_root), "root")
        root.signatures.clear()
        root.sign(root_signer, append=True)
        if new_root is not None:
            root.sign(new_root, append=True)
        _write(self.meta_dir / f"{root.signed.version}.root.json", root)
        return root.signed.version


def _latest(meta: Path, role: str) -> Path:
    found = [(int(p.name.split(".", 1)[0]), p) for p in meta.glob(f"*.{role}.json")
             if p.name.split(".", 1)[0].isdigit()]
    if not found:
        raise ReleaseError(f"{meta} holds no {role} metadata")
    return max(found)[1]


def _stored_name(info: TargetFile) -> str:
    """Where a target lies under targets/ with consistent snapshots: ``<dir>/<sha256>.<name>``."""
    dirname, sep, base = info.path.rpartition("/")
    return f"{dirname}{sep}{info.hashes['sha256']}.{base}"


def _write(path: Path, md: Metadata[Any]) -> None:
    data = md.to_bytes(JSONSerializer(compact=False))
    write_atomic(path, data, mode=0o644)


def summary(repo: ReleaseRepo) -> dict[str, Any]:
    releases = {v: {"path": t.path, "size": t.length, "sha256": t.hashes["sha256"]}
                for v, t in sorted(repo.releases().items())}
    return {"root_version": repo.root.signed.version, "targets_version": repo.targets.signed.version,
            "targets_expires": iso_ms(repo.targets.signed.expires), "releases": releases,
            "rollout": {s: d["version"] for s, d in sorted(repo.rollouts().items())}}


def utc_now() -> datetime:
    return datetime.now(UTC)
