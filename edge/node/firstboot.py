"""``edge-anpr firstboot``: a unit flashed from a shared card image takes its identity from the boot partition.

One card image serves a batch of units (``scripts/install-node.sh --image``). Before a card goes into its
unit, the engineer drops one file on its boot partition (FAT, writable from any laptop)::

    /boot/firmware/edge-anpr-node.yaml
        site: london-a40
        camera: cam01
        broker: broker.example.net:8883
        ca: |              # the CA that signed the broker's certificate (PEM)
          -----BEGIN CERTIFICATE-----
          ...
        key: |             # optional: the unit's key and certificate, issued centrally (PEM) ...
        cert: |            # ... or leave both out: the unit makes its own key and a CSR to send
        fleet_key: |       # optional: the centre's public key (fleet-signing.pub), pinned for control messages
        hotlist_keys: |    # optional: the unit's hotlist keyring (edge-anpr fleet node-keys; JSON)
        groups: london, a40   # optional: the unit's groups, comma-separated
        update_url: https://releases.example.net/repo   # optional: the release repository (over-the-air updates)
        update_root: |     # with update_url: the repository's root metadata (metadata/1.root.json; JSON), pinned

At boot, ``edge-anpr-firstboot.service`` runs this step before the node: it provisions the unit exactly
as ``edge-anpr provision`` does (config from the template, key 0600 owned by the service user, CSR with
CN ``<site>/<camera>``), installs the key and certificate when given (the certificate must match the key
and carry that CN), and copies the CSR back to the boot partition (``edge-anpr-<site>-<camera>.csr``) when
the unit made its own key. A later file with only ``cert:`` (the signed CSR) installs the certificate for
the key the unit already has. The file is then removed (overwritten first: it may hold a private key) and
``edge-anpr-node.done.txt`` says what was done. A file that cannot be used is left in place, nothing is
changed, and ``edge-anpr-node.error.txt`` says why (fix the file and reboot).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from edge.errors import ConfigError, EdgeError
from edge.files import write_atomic
from edge.node.provision import (
    FleetFiles,
    UpdateFiles,
    check_update_root,
    find_template,
    provision,
    service_ids,
    site_from,
)

IDENTITY_FILE = "edge-anpr-node.yaml"
ERROR_FILE = "edge-anpr-node.error.txt"
DONE_FILE = "edge-anpr-node.done.txt"
BOOT_DIRS = (Path("/boot/firmware"), Path("/boot"))  # Raspberry Pi OS 12, then older releases
KEYS = ("site", "camera", "broker", "ca", "key", "cert", "fleet_key", "hotlist_keys", "groups", "update_url",
        "update_root")


@dataclass(frozen=True, slots=True)
class Identity:
    site: str | None
    camera: str | None
    broker: str | None
    ca: str | None
    key: str | None
    cert: str | None
    fleet_key: str | None = None
    hotlist_keys: str | None = None
    groups: str | None = None
    update_url: str | None = None
    update_root: str | None = None


def parse_identity(text: str, origin: str) -> Identity:
    """The identity file's fields; an unknown key, a wrong type or a missing field is named."""
    try:
        raw: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin} must be a mapping of {', '.join(KEYS)}")
    unknown = sorted(set(map(str, raw)) - set(KEYS))
    if unknown:
        raise ConfigError(f"{origin}: unknown keys {unknown} (known: {', '.join(KEYS)})")
    for key, value in raw.items():
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{origin}: {key} must be text, got {value!r}")
    ident = Identity(*(raw.get(k) or None for k in KEYS))
    if (ident.hotlist_keys or ident.groups) and not ident.fleet_key:
        raise ConfigError(f"{origin}: hotlist_keys and groups need fleet_key (the centre's public key)")
    if bool(ident.update_url) != bool(ident.update_root):
        raise ConfigError(f"{origin}: update_url and update_root go together (the release repository and its root)")
    if ident.update_url and not ident.update_url.startswith("https://"):
        raise ConfigError(f"{origin}: update_url {ident.update_url!r} must be https:// (releases come over TLS only)")
    if ident.key and not ident.cert:
        raise ConfigError(f"{origin}: a key needs its certificate (cert:), or leave both out to make a CSR")
    if ident.cert and not ident.key and not (ident.site and ident.camera):
        raise ConfigError(f"{origin}: cert: alone needs the unit's site and camera, to check its CN")
    if not ident.cert or ident.key:
        missing = [k for k in ("site", "camera", "broker") if not getattr(ident, k)]
        if missing:
            raise ConfigError(f"{origin}: missing {', '.join(missing)}")
    return ident


def _openssl(*args: str, stdin: bytes | None = None) -> str:
    exe = shutil.which("openssl")
    if exe is None:
        raise ConfigError("the 'openssl' command is missing: sudo apt install openssl")
    done = subprocess.run([exe, *args], input=stdin, capture_output=True, timeout=30, check=False)
    if done.returncode != 0:
        raise ConfigError(f"openssl {args[0]}: {done.stderr.decode(errors='replace').strip()[:300]}")
    return done.stdout.decode()


def check_certificate(cert_pem: str, key_pem: str, common_name: str) -> None:
    """The certificate must be for this key and carry CN ``<site>/<camera>`` (the broker ACL's username)."""
    cert_key = _openssl("x509", "-noout", "-pubkey", stdin=cert_pem.encode())
    own_key = _openssl("pkey", "-pubout", stdin=key_pem.encode())
    if cert_key.strip() != own_key.strip():
        raise ConfigError("the certificate (cert:) is not for this unit's key")
    subject = _openssl("x509", "-noout", "-subject", "-nameopt", "multiline", stdin=cert_pem.encode())
    cns = [line.split("=", 1)[1].strip() for line in subject.splitlines() if line.strip().startswith("commonName")]
    if cns != [common_name]:
        raise ConfigError(f"the certificate's CN is {cns[0] if cns else 'missing'!r}, but this unit is "
                          f"{common_name!r} (the broker's ACL confines a node to the topics of its CN)")


def _write_owned(path: Path, data: str, mode: int) -> None:
    write_atomic(path, data.encode(), mode=mode)
    ids = service_ids()
    if ids is not None:
        os.chown(path, *ids)


def take_identity(ident: Identity, out: Path, template: Path) -> list[str]:
    """Provision ``out`` (/etc/edge-anpr) from the identity; returns what was done. Checks before it writes."""
    tls = out / "tls"
    done: list[str] = []
    if ident.key and ident.cert and ident.site and ident.camera:
        check_certificate(ident.cert, ident.key, f"{ident.site}/{ident.camera}")
    if ident.site and ident.camera and ident.broker:
        site = site_from(ident.site, ident.camera, ident.broker)
        with tempfile.TemporaryDirectory(prefix="edge-firstboot-") as tmp:
            files = {name: Path(tmp) / name for name in ("ca.crt", "centre.pub", "hotlist-keys.json", "root.json")}
            for name, text in (("ca.crt", ident.ca), ("centre.pub", ident.fleet_key),
                               ("hotlist-keys.json", ident.hotlist_keys), ("root.json", ident.update_root)):
                if text:
                    files[name].write_text(text, encoding="utf-8")
                    files[name].chmod(0o600)
            fleet = None
            if ident.fleet_key:
                groups = tuple(g.strip() for g in (ident.groups or "").split(",") if g.strip())
                fleet = FleetFiles(files["centre.pub"], files["hotlist-keys.json"] if ident.hotlist_keys else None,
                                   groups)
            update = UpdateFiles(files["root.json"], ident.update_url) if ident.update_url else None
            if update is not None:
                check_update_root(update.root, "update_root")
            if ident.key:  # the centrally issued key replaces any key of an earlier identity
                tls.mkdir(parents=True, exist_ok=True, mode=0o750)
                (tls / "node.key").unlink(missing_ok=True)
                _write_owned(tls / "node.key", ident.key, 0o600)
            said = provision(site, out, template, ca=files["ca.crt"] if ident.ca else None, force=True, fleet=fleet,
                             update=update)
            done += [f"installed the key from {IDENTITY_FILE} at {tls / 'node.key'} (mode 0600)"
                     if ident.key and line.startswith("kept the existing key") else line for line in said]
    if ident.cert:
        key = tls / "node.key"
        if not key.is_file():
            raise ConfigError(f"cert: given, but this unit has no key at {key}: drop the full identity file first")
        check_certificate(ident.cert, key.read_text(encoding="utf-8"), f"{ident.site}/{ident.camera}")
        _write_owned(tls / "node.crt", ident.cert, 0o644)
        done.append(f"installed the certificate {tls / 'node.crt'}")
    return done


def _scrub(path: Path) -> None:
    """Overwrite, then remove (the file may hold a private key; on flash this is best effort)."""
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.write(b"\0" * size)
        fh.flush()
        os.fsync(fh.fileno())
    path.unlink()


def first_boot(boot: Path, out: Path, template: Path) -> tuple[int, list[str]]:
    """Consume ``boot/edge-anpr-node.yaml`` if there; (exit code, lines said)."""
    source = boot / IDENTITY_FILE
    if not source.is_file():
        return 0, [f"no {source}: nothing to do"]
    try:
        ident = parse_identity(source.read_text(encoding="utf-8"), str(source))
        done = take_identity(ident, out, template)
    except (EdgeError, OSError) as exc:
        reason = f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} {source} was not used, nothing changed: {exc}\n"
        (boot / ERROR_FILE).write_text(reason + "Fix the file and reboot the unit.\n", encoding="utf-8")
        code = exc.exit_code if isinstance(exc, EdgeError) else 6
        return code, [reason.strip()]
    csr = out / "tls" / "node.csr"
    if not ident.key and ident.site and ident.camera and ident.broker and csr.is_file():
        copy = boot / f"edge-anpr-{ident.site}-{ident.camera}.csr"
        shutil.copyfile(csr, copy)
        done.append(f"copied the CSR to {copy}: have it signed, then drop a {IDENTITY_FILE} with site, camera "
                    f"and cert: on the boot partition")
    _scrub(source)
    (boot / ERROR_FILE).unlink(missing_ok=True)
    done.append(f"removed {source}")
    (boot / DONE_FILE).write_text(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} edge-anpr first boot\n"
                                  + "".join(f"{line}\n" for line in done), encoding="utf-8")
    return 0, done


def find_boot(given: str | None) -> Path:
    if given:
        return Path(given)
    for path in BOOT_DIRS:
        if (path / IDENTITY_FILE).is_file():
            return path
    return BOOT_DIRS[0]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--boot", help=f"boot partition holding {IDENTITY_FILE} (default: /boot/firmware, /boot)")
    parser.add_argument("--out", default="/etc/edge-anpr", help="where config.yaml and tls/ go (default: %(default)s)")
    parser.add_argument("--template", help="config template (default: the installed config.example.yaml)")


def main(args: argparse.Namespace) -> int:
    boot = find_boot(args.boot)
    if not (boot / IDENTITY_FILE).is_file():
        print(f"no {boot / IDENTITY_FILE}: nothing to do")
        return 0
    code, lines = first_boot(boot, Path(args.out), find_template(args.template))
    for line in lines:
        print(line)
    return code
