"""Test support for over-the-air updates: small real wheels and bundles, a TUF repository made by the central code,
served over HTTPS on loopback with client certificates required (Python's ``http.server``, ssl-wrapped)."""

from __future__ import annotations

import ssl
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PROBE = "edge_release_probe"


def make_wheel(out: Path, version: str, *, fail: bool = False) -> Path:
    """An installable ``edge_anpr`` wheel whose module ``edge_release_probe`` exits 1 when ``fail`` (a bad release)."""
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"edge_anpr-{version}-py3-none-any.whl"
    info = f"edge_anpr-{version}.dist-info"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"{PROBE}.py", f"import sys\nVERSION = {version!r}\nif __name__ == '__main__':\n"
                                   f"    print(VERSION)\n    sys.exit({1 if fail else 0})\n")
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: edge-anpr\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return wheel


def make_models(out: Path) -> Path:
    """A models folder with one small 'model' and its manifest."""
    import hashlib
    import json

    out.mkdir(parents=True, exist_ok=True)
    data = b"model bytes " * 1000
    (out / "tiny.tflite").write_bytes(data)
    (out / "manifest.json").write_text(json.dumps({"models": [
        {"name": "tiny", "file": "tiny.tflite", "sha256": hashlib.sha256(data).hexdigest()}]}))
    return out


class ProbeSelfTest:
    """The release's own code decides: ``venv/bin/python -m edge_release_probe`` (runs what was installed)."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    def check(self, release: Path) -> str | None:
        done = subprocess.run([str(release / "venv" / "bin" / "python"), "-m", PROBE], capture_output=True,
                              text=True, timeout=30, check=False)
        self.ran.append(done.stdout.strip())
        return None if done.returncode == 0 else f"probe exit {done.returncode}"


class Healthy:
    def __init__(self, problem: str | None = None) -> None:
        self._problem = problem

    def problem(self, version: str) -> str | None:
        return self._problem


class Restarts:
    def __init__(self) -> None:
        self.count = 0

    def restart(self) -> None:
        self.count += 1


class _Handler(SimpleHTTPRequestHandler):
    truncate: set[str]  # URL path suffixes served cut in half
    served: list[str]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:
        self.served.append(self.path)
        if any(self.path.endswith(s) for s in self.truncate):
            path = Path(self.translate_path(self.path))
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@contextmanager
def https_server(directory: Path, *, cert: str, key: str, ca: str) -> Iterator[tuple[str, _Handler]]:
    """Serve ``directory`` on https://127.0.0.1:<port>/, client certificates signed by ``ca`` required."""
    handler = type("Handler", (_Handler,), {"truncate": set(), "served": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(directory)))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", handler  # type: ignore[misc]
    finally:
        server.shutdown()
        server.server_close()


def now_utc() -> datetime:
    from datetime import UTC

    return datetime.now(UTC)
