"""The node's TUF client: which release it should run, and the bundle, verified from the root it pinned.

:class:`TlsFetcher` is python-tuf's pluggable fetcher over urllib3 with the node's own client certificate (the
central HTTPS server may require it) and the CA it trusts; no proxy, no redirects. :class:`ReleaseClient` wraps
``tuf.ngclient.Updater``: the root metadata pinned at provisioning bootstraps the trust (later roots are fetched
and checked against it, so the centre rotates keys without touching nodes), the cache lives in ``<root>/tuf``.
Every failure is a :class:`UpdateError` with a typed reason (``expired``, ``rollback``, ``bad_signature``,
``sha_mismatch``, ``truncated``, ``oversized``, ``unreachable``, ``withdrawn``, ``bad_metadata``) and a detail.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import urllib3
from tuf.api import exceptions as tufx
from tuf.api.metadata import TargetFile
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface

from edge.fleet.release import ROLLOUT_FORMAT, check_version, rollout_path, scopes

log = logging.getLogger(__name__)

Reason = Literal[
    "expired", "rollback", "bad_signature", "sha_mismatch", "truncated", "oversized", "unreachable", "withdrawn",
    "bad_metadata", "bad_bundle", "disk", "install_failed", "selftest_failed", "unhealthy", "previously_failed",
]
POINTER_MAX_BYTES = 4096


class UpdateError(Exception):
    """An update not taken, with why (a typed reason) and what exactly went wrong."""

    def __init__(self, reason: Reason, detail: str, version: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: Reason = reason
        self.detail = detail
        self.version = version


@dataclass(frozen=True, slots=True)
class TlsOptions:
    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None
    timeout_s: float = 30.0


class TlsFetcher(FetcherInterface):
    """GET over HTTPS with the node's client certificate; counts the bytes received (for health and the bench)."""

    def __init__(self, tls: TlsOptions, chunk_size: int = 256 * 1024) -> None:
        context = ssl.create_default_context(cafile=tls.ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if tls.cert_file:
            context.load_cert_chain(tls.cert_file, tls.key_file)
        self._pool = urllib3.PoolManager(ssl_context=context, retries=False, timeout=urllib3.Timeout(tls.timeout_s))
        self._chunk = chunk_size
        self.bytes_received = 0

    def _fetch(self, url: str) -> Iterator[bytes]:
        if not url.startswith("https://"):
            raise tufx.DownloadError(f"refusing {url}: updates come over HTTPS only")
        try:
            response = self._pool.request("GET", url, preload_content=False, redirect=False)
        except urllib3.exceptions.HTTPError as exc:
            raise tufx.DownloadError(f"{url}: {exc}") from exc
        if response.status >= 400:
            response.release_conn()
            raise tufx.DownloadHTTPError(f"HTTP {response.status} for {url}", response.status)
        return self._chunks(response)

    def _chunks(self, response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
        try:
            for chunk in response.stream(self._chunk):
                self.bytes_received += len(chunk)
                yield chunk
        except urllib3.exceptions.HTTPError as exc:  # cut mid-stream (ProtocolError: IncompleteRead)
            raise tufx.DownloadError(f"the download was cut: {exc}") from exc
        finally:
            response.release_conn()


@dataclass(frozen=True, slots=True)
class Wanted:
    """The release a node's most specific rollout pointer names, and the bundle's verified target info."""

    version: str
    scope: str
    target: TargetFile

    @property
    def sha256(self) -> str:
        return str(self.target.hashes["sha256"])

    @property
    def length(self) -> int:
        return int(self.target.length)


_TUF_REASONS: tuple[tuple[type[Exception], Reason, str], ...] = (
    (tufx.ExpiredMetadataError, "expired", "metadata expired"),
    (tufx.BadVersionNumberError, "rollback", "metadata older than what this node trusts"),
    (tufx.UnsignedMetadataError, "bad_signature", "not signed by the keys root names"),
    (tufx.DownloadLengthMismatchError, "oversized", "more bytes than the signed length"),
    (tufx.RepositoryError, "bad_metadata", "metadata refused"),
)


def refusal_from(exc: Exception, version: str | None = None) -> UpdateError:
    """python-tuf's exception as a typed refusal (anything else is raised again)."""
    if isinstance(exc, UpdateError):
        return exc
    text = str(exc) or type(exc).__name__
    if isinstance(exc, tufx.LengthOrHashMismatchError):
        return UpdateError("truncated" if "length" in text.lower() else "sha_mismatch", text, version)
    for kind, reason, what in _TUF_REASONS:
        if isinstance(exc, kind):
            return UpdateError(reason, f"{what}: {text}", version)
    if isinstance(exc, tufx.DownloadError):
        detail = f"{text}{f' ({exc.__cause__})' if exc.__cause__ else ''}"
        cut = "cut" in text or "IncompleteRead" in detail
        return UpdateError("truncated" if cut else "unreachable", detail, version)
    raise exc


class ReleaseClient:
    """One check against the repository (a fresh ``Updater`` each time, as python-tuf requires)."""

    def __init__(self, *, url: str, pinned_root: Path, cache: Path, fetcher: FetcherInterface) -> None:
        if not url.startswith("https://"):
            raise ValueError(f"update.url {url!r}: must be https://")
        self._url = url.rstrip("/")
        self._pinned = pinned_root
        self._cache = cache
        self._fetcher = fetcher

    def _updater(self) -> Updater:
        meta = self._cache / "metadata"
        meta.mkdir(parents=True, exist_ok=True, mode=0o755)
        # The pinned root bootstraps the trust once; afterwards the cache holds the newest root this node verified.
        bootstrap = None if (meta / "root.json").exists() else self._pinned.read_bytes()
        return Updater(str(meta), f"{self._url}/metadata/", str(self._cache / "targets"), f"{self._url}/targets/",
                       fetcher=self._fetcher, bootstrap=bootstrap)

    def wanted(self, site: str, camera: str, groups: Sequence[str]) -> Wanted | None:
        """The release this node's most specific rollout pointer names; None when no pointer names one."""
        try:
            updater = self._updater()
            updater.refresh()
            for scope in scopes(site, camera, groups):
                info = updater.get_targetinfo(rollout_path(scope))
                if info is None:
                    continue
                doc = self._pointer(updater, info)
                version = check_version(str(doc.get("version")))
                release = updater.get_targetinfo(str(doc.get("release")))
                if release is None:
                    raise UpdateError("withdrawn", f"rollout {scope} names {doc.get('release')}, which the "
                                        "repository no longer lists", version)
                custom: Any = release.custom
                if not isinstance(custom, dict) or custom.get("version") != version:
                    raise UpdateError("bad_metadata", f"{release.path} is not release {version}", version)
                return Wanted(version, scope, release)
        except ValueError as exc:
            raise UpdateError("bad_metadata", str(exc)) from exc
        except Exception as exc:  # python-tuf's errors, typed; anything else is raised again by refusal_from
            raise refusal_from(exc) from exc
        return None

    def _pointer(self, updater: Updater, info: TargetFile) -> dict[str, Any]:
        if info.length > POINTER_MAX_BYTES:
            raise UpdateError("oversized", f"rollout pointer {info.path} of {info.length} bytes")
        path = updater.find_cached_target(info) or updater.download_target(info)
        doc = json.loads(Path(path).read_bytes())
        if not isinstance(doc, dict) or doc.get("format") != ROLLOUT_FORMAT:
            raise UpdateError("bad_metadata", f"{info.path} is not {ROLLOUT_FORMAT}")
        return doc

    def download(self, wanted: Wanted, dest: Path) -> Path:
        """The bundle into ``dest`` (verified: length and sha256 as the signed targets metadata says)."""
        try:
            updater = self._updater()
            updater.refresh()
            info = updater.get_targetinfo(wanted.target.path)
            if info is None or info.hashes != wanted.target.hashes:
                raise UpdateError("withdrawn", f"{wanted.target.path} changed or left the repository meanwhile",
                                    wanted.version)
            return Path(updater.download_target(info, str(dest)))
        except Exception as exc:
            raise refusal_from(exc, wanted.version) from exc
