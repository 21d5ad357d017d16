"""``edge-anpr bench update``: one node updated over the air from release N to N+1 and back, end to end, timed.

Everything is the production code but the service restart and the node's health, which a bench has no service
for: the centre's :mod:`edge.central.release` builds two release bundles (this package repacked as an
``edge_anpr`` wheel of version N and N+1, and the models folder with its manifest) into a temporary TUF
repository; the repository is served over HTTPS on loopback with client certificates required (Python's
``http.server``, as any static server would serve it); a node (:class:`~edge.node.update.NodeUpdater` with its
TLS fetcher and the root it pinned) installs into a temporary root. The steps:

1. ``install N``: the first release onto an empty root (rollout ``all`` -> N);
2. ``N -> N+1``: N+1 published and rolled out to everyone;
3. ``check``: the daily timer's run when nothing changed (metadata only);
4. ``N+1 -> N``: N+1 withdrawn, the pointer goes back to N, which the node kept on disk (nothing to download).

Each step is one ``update run``: TUF refresh, download and verification, unpack with every file checked, the
release's venv, the switch of ``current`` and the selftest (the new release's own Python imports its package
and reports its version). ``update.healthy_s`` is 0 here: on a node the confirmation also waits that long
(300 s by default). Bytes are what the node received over TLS (metadata and bundle), as the fetcher counts them.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from edge.errors import ConfigError, EdgeError

log = logging.getLogger(__name__)

VERSIONS = ("1.0.0", "1.1.0")
SITE, CAMERA = "bench", "cam1"
_ZIP_TIME = (2026, 1, 1, 0, 0, 0)


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", metavar="DIR",
                   help="models folder (with manifest.json) to ship in each release (default: the checkout's models/, "
                        "else /opt/edge-anpr/current/models)")
    p.add_argument("--no-models", action="store_true", help="releases without models (the package wheel alone)")
    p.add_argument("--installer", choices=("unpack", "pip"), default="unpack",
                   help="how the node makes each release's venv (update.installer; default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


# -- what is measured ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    step: str
    action: str
    version: str | None
    seconds: float
    bytes_fetched: int


@dataclass(frozen=True, slots=True)
class Built:
    version: str
    bundle_bytes: int
    build_s: float
    publish_s: float


# -- the releases -----------------------------------------------------------------------------------------------


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def package_wheel(out: Path, version: str) -> Path:
    """This installed ``edge`` package repacked as ``edge_anpr-<version>-py3-none-any.whl`` (a valid wheel with
    its RECORD and the edge-anpr console script; no dependencies named, so pip installs it offline)."""
    import edge

    package = Path(edge.__file__).resolve().parent
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"edge_anpr-{version}-py3-none-any.whl"
    info = f"edge_anpr-{version}.dist-info"
    members = {f"edge/{p.relative_to(package).as_posix()}": p.read_bytes() for p in sorted(package.rglob("*"))
               if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    members[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: edge-anpr\nVersion: {version}\n".encode()
    members[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: edge-anpr bench\nRoot-Is-Purelib: true\n"
                                b"Tag: py3-none-any\n")
    members[f"{info}/entry_points.txt"] = b"[console_scripts]\nedge-anpr = edge.cli:main\n"
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in members.items())
    members[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, _ZIP_TIME), data, zipfile.ZIP_DEFLATED)
    return wheel


def default_models() -> Path | None:
    import edge

    for path in (Path(edge.__file__).resolve().parents[1] / "models", Path("/opt/edge-anpr/current/models")):
        if (path / "manifest.json").is_file():
            return path
    return None


# -- a throw-away PKI and the HTTPS server --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pki:
    ca_file: str
    server_cert: str
    server_key: str
    node_cert: str
    node_key: str


def make_pki(folder: Path) -> Pki:
    """A CA (EC P-256, one day), a server certificate for 127.0.0.1 and the node's client certificate."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write(stem: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> tuple[str, str]:
        crt, pem = folder / f"{stem}.crt", folder / f"{stem}.key"
        crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
        pem.chmod(0o600)
        return str(crt), str(pem)

    ca_key = ec.generate_private_key(ec.SECP256R1())

    def issue(cn: str, key: ec.EllipticCurvePrivateKey, *, ca: bool = False, server: bool = False) -> x509.Certificate:
        builder = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name("edge-anpr bench CA"))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        if not ca:
            usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        return builder.sign(ca_key, hashes.SHA256())

    ca_file, _ = write("ca", ca_key, issue("edge-anpr bench CA", ca_key, ca=True))
    server_key, node_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    server = write("server", server_key, issue("localhost", server_key, server=True))
    node = write("node", node_key, issue(f"{SITE}/{CAMERA}", node_key))
    return Pki(ca_file, *server, *node)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@contextmanager
def serve_https(directory: Path, pki: Pki) -> Iterator[str]:
    """``directory`` on https://127.0.0.1:<port>, a client certificate signed by the bench CA required."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(directory)))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki.ca_file)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(pki.server_cert, pki.server_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name="bench-https", daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- the node's collaborators a bench has no service for ----------------------------------------------------------


class _NoService:
    """No service to restart, and health as a node that runs well reports it."""

    def __init__(self) -> None:
        self.restarts = 0

    def restart(self) -> None:
        self.restarts += 1

    def problem(self, version: str) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class ReleaseRuns:
    """The release's own interpreter imports its own ``edge`` package and reports the version it was built as."""

    timeout_s: float = 60.0

    def check(self, release: Path) -> str | None:
        code = ("import edge, importlib.metadata as m, pathlib; "
                "print(m.version('edge-anpr')); print(pathlib.Path(edge.__file__).resolve())")
        done = subprocess.run([str(release / "venv" / "bin" / "python"), "-I", "-c", code], capture_output=True,
                              text=True, timeout=self.timeout_s, check=False)
        if done.returncode != 0:
            return f"the release's python failed: {done.stderr.strip()[-300:]}"
        version, _, module = done.stdout.strip().partition("\n")
        expected = json.loads((release / "release.json").read_text(encoding="utf-8"))["version"]
        if version != expected or not Path(module).is_relative_to(release.resolve()):
            return f"runs edge-anpr {version} from {module}, not {expected} from {release.resolve()}"
        return None


# -- the run ----------------------------------------------------------------------------------------------------


def run_bench(work: Path, *, models: Path | None, installer: str) -> dict[str, Any]:
    """Build, publish, serve, update N -> N+1 -> N; the figures."""
    from edge.central import release as rel
    from edge.node.update import Identity, NodeUpdater, Timing
    from edge.node.update_fetch import ReleaseClient, TlsFetcher, TlsOptions

    pki = make_pki(work / "pki")
    root_key, online = rel.make_key(work / "keys" / "root.key"), rel.make_key(work / "keys" / "online.key")
    repo = rel.ReleaseRepo.init(work / "repo", root_signer=root_key, online_signer=online, now=rel.utc_now())
    built: list[Built] = []

    def publish(version: str) -> None:
        t0 = time.perf_counter()
        wheel = package_wheel(work / "wheels" / version, version)
        bundle = rel.build_bundle(work / "dist", wheel=wheel, models=models, now=rel.utc_now())
        t1 = time.perf_counter()
        repo.add_release(bundle)
        repo.set_rollout("all", version, rel.utc_now())
        repo.commit(online, rel.utc_now())
        built.append(Built(version, bundle.stat().st_size, round(t1 - t0, 3), round(time.perf_counter() - t1, 3)))

    steps: list[Step] = []
    node_root = work / "node"
    service = _NoService()
    with serve_https(repo.path, pki) as url:

        def update(label: str) -> None:
            fetcher = TlsFetcher(TlsOptions(pki.ca_file, pki.node_cert, pki.node_key))
            client = ReleaseClient(url=url, pinned_root=repo.meta_dir / "1.root.json", cache=node_root / "tuf",
                                   fetcher=fetcher)
            updater = NodeUpdater(node_root, client, Identity(SITE, CAMERA), restarter=service, selftest=ReleaseRuns(),
                                  probe=lambda: service, installer=installer,
                                  timing=Timing(startup_s=60, healthy_s=0, poll_s=0.01, min_free_mb=0),
                                  fetched=lambda: fetcher.bytes_received)
            t0 = time.perf_counter()
            out = updater.run()
            steps.append(Step(label, out.action, out.version, round(time.perf_counter() - t0, 3),
                              fetcher.bytes_received))
            log.info("bench update: %s: %s %s (%s)", label, out.action, out.version, out.detail)

        old, new = VERSIONS
        publish(old)
        update(f"install {old}")
        publish(new)
        update(f"{old} -> {new}")
        update("check, nothing new")
        t0 = time.perf_counter()
        repo.withdraw(new, rel.utc_now())
        repo.commit(online, rel.utc_now())
        withdraw_s = round(time.perf_counter() - t0, 3)
        update(f"{new} -> {old} (withdrawn)")
    expected = [("updated", old), ("updated", new), ("none", new), ("updated", old)]
    return {"versions": list(VERSIONS), "installer": installer, "models": str(models) if models else None,
            "releases": [asdict(b) for b in built], "withdraw_s": withdraw_s,
            "steps": [asdict(s) for s in steps], "restarts": service.restarts,
            "ok": [(s.action, s.version) for s in steps] == expected}


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def report(result: dict[str, Any]) -> str:
    lines = [f"update bench: releases {' and '.join(result['versions'])} over HTTPS with client certificates on "
             f"loopback; installer {result['installer']}; models: {result['models'] or 'none'}"]
    for b in result["releases"]:
        lines.append(f"  centre: build {b['version']} {b['build_s']:.2f} s ({_size(b['bundle_bytes'])} bundle), "
                     f"sign and publish {b['publish_s']:.2f} s")
    lines.append(f"  centre: withdraw {result['versions'][1]} {result['withdraw_s']:.2f} s")
    for s in result["steps"]:
        lines.append(f"  node: {s['step']:<26} {s['seconds']:6.2f} s  {_size(s['bytes_fetched']):>9} fetched  "
                     f"{s['action']} {s['version']}")
    if not result["ok"]:
        lines.append("NOT as expected: install, update, nothing new, back (see the actions above)")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    models = None if args.no_models else (Path(args.models) if args.models else default_models())
    if models is not None and not (models / "manifest.json").is_file():
        raise ConfigError(f"--models {models}: no manifest.json there (or pass --no-models)")
    with tempfile.TemporaryDirectory(prefix="edge-bench-update-") as tmp:
        try:
            result = run_bench(Path(tmp), models=models, installer=args.installer)
        except OSError as exc:
            raise EdgeError(f"bench update failed: {exc}") from exc
    print(json.dumps(result, indent=1) if args.json else report(result))
    sys.stdout.flush()
    return 0 if result["ok"] else 1
