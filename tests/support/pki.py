"""Test support: a throw-away PKI made with the ``openssl`` command (CA, broker and node certs)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

OPENSSL = shutil.which("openssl")


@dataclass(frozen=True)
class CertPair:
    cert_file: str
    key_file: str


def _run(*args: str) -> None:
    if OPENSSL is None:
        raise RuntimeError("openssl is not installed")
    subprocess.run([OPENSSL, *args], check=True, capture_output=True)


class TestPki:
    """A CA in ``root`` that issues a broker certificate and one client certificate per identity."""

    __test__ = False

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.ca_file = str(root / "ca.crt")
        self._ca_key = str(root / "ca.key")
        _run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", self._ca_key, "-out", self.ca_file, "-days", "2", "-subj", "/CN=edge-anpr test CA")
        self._serial = 1

    def issue(self, name: str, common_name: str, *, server: bool = False, san: str | None = None) -> CertPair:
        """A certificate for a client (``server`` False) or a server (for ``san``, default 127.0.0.1 and localhost)."""
        key = self.root / f"{name}.key"
        csr = self.root / f"{name}.csr"
        crt = self.root / f"{name}.crt"
        ext = self.root / f"{name}.ext"
        _run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", "/CN=" + common_name.replace("/", "\\/"))
        if server:
            ext.write_text(f"subjectAltName={san or 'IP:127.0.0.1,DNS:localhost'}\nextendedKeyUsage=serverAuth\n")
        else:
            ext.write_text("extendedKeyUsage=clientAuth\n")
        self._serial += 1
        _run("x509", "-req", "-in", str(csr), "-CA", self.ca_file, "-CAkey", self._ca_key,
             "-set_serial", str(self._serial), "-days", "2", "-out", str(crt), "-extfile", str(ext))
        os.chmod(key, 0o600)
        return CertPair(str(crt), str(key))


EXAMPLE_ACL = Path(__file__).resolve().parents[2] / "config" / "mosquitto" / "acl.example"


def tls_listener_lines(pki: TestPki, tmp_path: Path, server_name: str = "localhost") -> tuple[str, ...]:
    """Broker settings for TLS with client certificates as identities and the example ACL (config/mosquitto):
    a server certificate for ``server_name`` from ``pki``, the ACL copied into ``tmp_path``."""
    server = pki.issue("broker", server_name, server=True,
                       san=None if server_name == "localhost" else f"DNS:{server_name}")
    acl = tmp_path / "acl"
    acl.write_text(EXAMPLE_ACL.read_text())
    return (
        f"cafile {pki.ca_file}", f"certfile {server.cert_file}", f"keyfile {server.key_file}",
        "require_certificate true", "use_identity_as_username true", "allow_anonymous false", f"acl_file {acl}",
    )
