"""A throw-away PostgreSQL server on 127.0.0.1, for the tests and ``bench central`` (never for production).

It runs Debian's server binaries (package ``postgresql``: ``/usr/lib/postgresql/<version>/bin``) on a fresh
cluster in a temporary folder, on a free loopback port, with trust authentication for the role ``edge``
and one database ``anpr``. PostgreSQL refuses to run as root; when this process is root (CI, containers),
the cluster belongs to, and the server runs as, the unprivileged ``postgres`` user that the Debian package
creates (or ``nobody``), so the folder lives in the system temporary folder where that user can reach it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from edge.errors import ConfigError, StateError

SERVER_USERS = ("postgres", "nobody")


def server_bindir() -> Path | None:
    """The newest installed server's bin folder (Debian layout), or the folder of ``initdb`` on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_user() -> pwd.struct_passwd | None:
    """None when not root; else the unprivileged user the server runs as."""
    if os.geteuid() != 0:
        return None
    for name in SERVER_USERS:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise StateError(f"PostgreSQL cannot run as root and none of the users {SERVER_USERS} exists")


class TempPostgres:
    """``start()`` / ``stop()``; ``url`` is the database's connection string. Also a context manager."""

    def __init__(self, *, fsync: bool = True, settings: Mapping[str, str] | None = None) -> None:
        self.fsync = fsync
        self.settings = dict(settings or {})
        self.port = 0
        self.dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://edge@127.0.0.1:{self.port}/anpr"

    def __enter__(self) -> TempPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout_s: float = 60.0) -> None:
        bindir = server_bindir()
        if bindir is None:
            raise ConfigError("the PostgreSQL server is not installed (Debian: apt-get install postgresql)")
        user = _server_user()
        self.dir = Path(tempfile.mkdtemp(prefix="edge-anpr-pg-"))
        ids: dict[str, object] = {}
        if user is not None:
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            ids = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        data = self.dir / "data"
        log = self.dir / "server.log"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": str(self.dir)}
        init = subprocess.run(
            [str(bindir / "initdb"), "-D", str(data), "-U", "edge", "--auth=trust", "-E", "UTF8", "--locale=C",
             "--no-sync"],
            cwd=self.dir, env=env, capture_output=True, text=True, check=False, **ids,  # type: ignore[call-overload]
        )
        if init.returncode != 0:
            self._cleanup()
            raise StateError(f"initdb failed: {init.stderr.strip()[-500:]}")
        self.port = _free_port()
        options = {"listen_addresses": "127.0.0.1", "unix_socket_directories": str(self.dir),
                   "fsync": "on" if self.fsync else "off", **self.settings}
        args = [str(bindir / "postgres"), "-D", str(data), "-p", str(self.port)]
        for key, value in options.items():
            args += ["-c", f"{key}={value}"]
        with log.open("wb") as out:
            self._proc = subprocess.Popen(args, cwd=self.dir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                          **ids)  # type: ignore[call-overload]
        self._wait_ready(timeout_s, log)
        self._create_database()

    def _wait_ready(self, timeout_s: float, log: Path) -> None:
        import psycopg

        deadline = time.monotonic() + timeout_s
        while True:
            if self._proc is None or self._proc.poll() is not None:
                text = log.read_text(errors="replace")[-800:] if log.exists() else ""
                self.stop()
                raise StateError(f"the PostgreSQL server stopped at start: {text}")
            try:
                with psycopg.connect(f"postgresql://edge@127.0.0.1:{self.port}/postgres", connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise StateError(f"the PostgreSQL server did not accept connections in {timeout_s:.0f} s") from None
                time.sleep(0.1)

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(f"postgresql://edge@127.0.0.1:{self.port}/postgres", autocommit=True) as db:
            db.execute("CREATE DATABASE anpr")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        self._cleanup()

    def _cleanup(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


@contextlib.contextmanager
def temp_postgres(**kwargs: object) -> Iterator[TempPostgres]:
    server = TempPostgres(**kwargs)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()
