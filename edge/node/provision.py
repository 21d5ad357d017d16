"""``edge-anpr provision``: a site config from the template, and this node's private key and CSR.

The key and the certificate signing request are made with the ``openssl`` command: it is part of
Raspberry Pi OS (and installed by scripts/setup.sh); the key is generated on the node, goes straight from
openssl's stdout into a file created 0600, and never leaves the unit. The CSR's CN is ``<site>/<camera>``: with
Mosquitto's ``use_identity_as_username`` it becomes the username that config/mosquitto/acl.example
confines to ``anpr/<site>/<camera>/#``.

Layout written under ``--out`` (default /etc/edge-anpr):
  config.yaml        the template with node.site, node.camera, mqtt.host/port and the TLS paths set (0640)
  tls/node.key       EC P-256 private key (0600; owned by the service user when run as root)
  tls/node.csr       the signing request to send to the PKI; its signed certificate goes to tls/node.crt
  tls/ca.crt         the CA that signed the broker's certificate (copied from --ca when given)
  fleet/centre.pub   the centre's Ed25519 public key(s) the node pins for control messages (--fleet-key; 0644)
  fleet/hotlist-keys.json  this node's hotlist keyring from ``edge-anpr fleet node-keys`` (--hotlist-keys; 0600)
  update/root.json   the release repository's TUF root metadata the node pins (--update-root; 0644, root's)
With --fleet-key the config gets a ``fleet:`` section (the two files, and the node's --group names); with
--update-root and --update-url an ``update:`` section (the repository's URL and the pinned root).
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from edge.config import parse_config
from edge.config.model import NodeConfig
from edge.errors import ConfigError, EdgeError
from edge.files import write_atomic

SERVICE_USER = "edge-anpr"
TEMPLATES = (
    Path(__file__).resolve().parents[2] / "config" / "example.yaml",
    Path("/opt/edge-anpr/share/config.example.yaml"),
)
OPENSSL_TIMEOUT_S = 30.0
FLEET_PUB = Path("fleet") / "centre.pub"
FLEET_KEYRING = Path("fleet") / "hotlist-keys.json"
UPDATE_ROOT = Path("update") / "root.json"


@dataclass(frozen=True, slots=True)
class FleetFiles:
    """What the centre gives a node for its control channel: its public key(s), the node's keyring, its groups."""

    public_key: Path
    hotlist_keys: Path | None = None
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UpdateFiles:
    """What the centre gives a node for over-the-air updates: the release repository's URL and its root metadata."""

    root: Path
    url: str


@dataclass(frozen=True, slots=True)
class Site:
    site: str
    camera: str
    host: str
    port: int

    @property
    def common_name(self) -> str:
        """The certificate CN the broker ACL expects: ``<site>/<camera>``."""
        return f"{self.site}/{self.camera}"


def parse_broker(text: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        return text.strip(), 8883
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--broker {text!r}: expected HOST or HOST:PORT, for example broker.example.net:8883")
    return host, int(port)


def site_from(site: str, camera: str, broker: str) -> Site:
    try:
        NodeConfig(site=site, camera=camera)
    except ValueError as exc:
        raise ConfigError(f"site {site!r} / camera {camera!r}: lowercase letters, digits, - and _ only, starting "
                          f"with a letter or digit, at most 63 characters ({exc.__class__.__name__})") from None
    host, port = parse_broker(broker)
    return Site(site, camera, host, port)


# -- the config ---------------------------------------------------------------------------------


def set_in_section(text: str, section: str, key: str, value: str) -> str:
    """Replace ``key: <value>`` inside the top-level ``section:`` block (comments and layout kept)."""
    block = re.search(rf"^{re.escape(section)}:[^\n]*\n((?:[ \t]+[^\n]*\n|\n)*)", text, re.M)
    if block is None:
        raise ConfigError(f"the template has no top-level '{section}:' section")
    body = block.group(1)
    pattern = re.compile(rf"^([ \t]+{re.escape(key)}:[ \t]*)([^#\n]*?)([ \t]*(?:#[^\n]*)?)$", re.M)
    if not pattern.search(body):
        raise ConfigError(f"the template's '{section}:' section has no '{key}:' line")
    new_body = pattern.sub(lambda m: f"{m.group(1)}{value}{m.group(3)}", body, count=1)
    return text[: block.start(1)] + new_body + text[block.end(1):]


def render_config(
    template: str, site: Site, out: Path, fleet: FleetFiles | None = None, update: UpdateFiles | None = None
) -> str:
    tls = out / "tls"
    text = template
    for section, key, value in (
        ("node", "site", site.site), ("node", "camera", site.camera), ("mqtt", "host", site.host),
        ("mqtt", "port", str(site.port)), ("mqtt", "ca_file", str(tls / "ca.crt")),
        ("mqtt", "cert_file", str(tls / "node.crt")), ("mqtt", "key_file", str(tls / "node.key")),
    ):
        text = set_in_section(text, section, key, value)
    if fleet is not None:
        text = _with_fleet(text, out, fleet)
    if update is not None:
        text = _with_update(text, out, update)
    parse_config(yaml.safe_load(text), origin="provisioned config")  # refuse to write an invalid config
    return text


def _with_fleet(text: str, out: Path, fleet: FleetFiles) -> str:
    if re.search(r"^fleet:", text, re.M):
        raise ConfigError("the template already has a fleet: section; remove it, or leave out --fleet-key")
    lines = ["", "fleet:                         # the centre's control channel (edge-anpr fleet)",
             f"  public_key_file: {out / FLEET_PUB}   # the centre's Ed25519 key(s): nothing else is obeyed",
             f"  groups: [{', '.join(fleet.groups)}]"]
    if fleet.hotlist_keys is not None:
        lines.append(f"  hotlist_keys_file: {out / FLEET_KEYRING}   # this node's hotlist keys (0600)")
    return text.rstrip("\n") + "\n" + "\n".join(lines) + "\n"


def _with_update(text: str, out: Path, update: UpdateFiles) -> str:
    if re.search(r"^update:", text, re.M):
        raise ConfigError("the template already has an update: section; remove it, or leave out --update-root")
    lines = ["", "update:                        # over-the-air releases (edge-anpr update; TUF-verified)",
             f"  url: {json.dumps(update.url)}",
             f"  root_file: {out / UPDATE_ROOT}   # the pinned root: every release is verified from it"]
    return text.rstrip("\n") + "\n" + "\n".join(lines) + "\n"


def check_update_root(path: Path, label: str = "--update-root") -> int:
    """``path`` must be TUF root metadata signed by its own keys, as python-tuf bootstraps from it; its version."""
    from tuf.api.exceptions import RepositoryError
    from tuf.api.metadata import Metadata, Root

    try:
        meta = Metadata[Root].from_bytes(path.read_bytes())
        if not isinstance(meta.signed, Root):
            raise ConfigError(f"{label}: this is {meta.signed.type} metadata, not root (give the "
                              f"repository's metadata/1.root.json from edge-anpr fleet release init-repo)")
        meta.signed.verify_delegate(Root.type, meta.signed_bytes, meta.signatures)
    except RepositoryError as exc:
        raise ConfigError(f"{label}: not TUF root metadata signed by its own keys ({exc})") from exc
    return int(meta.signed.version)


def check_fleet(fleet: FleetFiles, site: Site) -> None:
    """The public key file must hold Ed25519 keys and the keyring this node's key and its groups'."""
    from edge.fleet.payload import load_keyring
    from edge.fleet.signing import load_public_keys

    load_public_keys(fleet.public_key)
    if fleet.hotlist_keys is not None:
        ring = load_keyring(fleet.hotlist_keys)
        needed = [site.common_name, *(f"group/{g}" for g in fleet.groups)]
        missing = [t for t in needed if t not in ring]
        if missing:
            raise ConfigError(f"--hotlist-keys {fleet.hotlist_keys}: no key for {', '.join(missing)} (make it with "
                              f"edge-anpr fleet node-keys --site {site.site} --camera {site.camera} and the groups)")


def find_template(given: str | None) -> Path:
    candidates = [Path(given)] if given else list(TEMPLATES)
    for path in candidates:
        if path.is_file():
            return path
    raise ConfigError(f"no config template found (looked at {', '.join(str(p) for p in candidates)}); "
                      f"pass --template config/example.yaml")


# -- key and CSR --------------------------------------------------------------------------------


def _openssl(*args: str) -> bytes:
    exe = shutil.which("openssl")
    if exe is None:
        raise ConfigError("the 'openssl' command is missing: sudo apt install openssl")
    try:
        done = subprocess.run([exe, *args], capture_output=True, timeout=OPENSSL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"openssl {args[0]} failed: {exc}") from exc
    if done.returncode != 0:
        raise ConfigError(f"openssl {args[0]} failed: {done.stderr.decode(errors='replace').strip()[:300]}")
    return done.stdout


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Create ``path`` with ``mode`` from the start (never briefly world-readable); refuse to overwrite."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)  # whatever the umask


def make_key(path: Path) -> None:
    pem = _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
    write_private(path, pem)


def make_csr(key: Path, csr: Path, common_name: str) -> None:
    """A CSR for ``common_name`` (a config file, so '/' in the CN needs no escaping) asking for clientAuth."""
    conf = (
        "[req]\nprompt = no\ndistinguished_name = dn\nreq_extensions = ext\n"
        f"[dn]\nCN = {common_name}\n"
        "[ext]\nextendedKeyUsage = clientAuth\nkeyUsage = critical, digitalSignature\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".cnf", delete=False) as fh:
        fh.write(conf)
    try:
        pem = _openssl("req", "-new", "-key", str(key), "-config", fh.name, "-sha256")
    finally:
        os.unlink(fh.name)
    write_atomic(csr, pem, mode=0o644)


# -- the command --------------------------------------------------------------------------------


def _ask(label: str, value: str | None, interactive: bool) -> str:
    if value:
        return value
    if not interactive:
        raise ConfigError(f"missing --{label} (or run without --no-input to be asked)")
    try:
        answer = input(f"{label}: ").strip()
    except EOFError:
        answer = ""
    if not answer:
        raise ConfigError(f"no {label} given: pass --{label}")
    return answer


def service_ids() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def provision(
    site: Site, out: Path, template: Path, *, ca: Path | None, force: bool, fleet: FleetFiles | None = None,
    update: UpdateFiles | None = None,
) -> list[str]:
    """Write config, key and CSR (the centre's key, the node's keyring, the pinned root); returns what was done."""
    tls = out / "tls"
    config_path, key, csr = out / "config.yaml", tls / "node.key", tls / "node.csr"
    if config_path.exists() and not force:
        raise ConfigError(f"{config_path} exists; pass --force to replace it (the key is kept either way)")
    if fleet is not None:
        check_fleet(fleet, site)
    root_version = check_update_root(update.root) if update is not None else 0
    text = render_config(template.read_text(encoding="utf-8"), site, out, fleet, update)
    try:
        tls.mkdir(parents=True, exist_ok=True, mode=0o750)
    except OSError as exc:
        raise ConfigError(f"cannot create {tls}: {exc.strerror}") from exc
    done = []
    if key.exists():
        done.append(f"kept the existing key {key} (delete it to make a new one; the certificate must then be renewed)")
    else:
        make_key(key)
        done.append(f"created {key} (EC P-256, mode 0600)")
    make_csr(key, csr, site.common_name)
    done.append(f"created {csr} (CN={site.common_name}): send it to the PKI, put the certificate at {tls / 'node.crt'}")
    if ca is not None:
        shutil.copyfile(ca, tls / "ca.crt")
        done.append(f"copied the broker's CA to {tls / 'ca.crt'}")
    owned = [tls, key, csr]
    if fleet is not None:
        (out / "fleet").mkdir(exist_ok=True, mode=0o750)
        write_atomic(out / FLEET_PUB, fleet.public_key.read_bytes(), mode=0o644)
        owned.append(out / "fleet")
        done.append(f"pinned the centre's key(s) at {out / FLEET_PUB}")
        if fleet.hotlist_keys is not None:
            write_atomic(out / FLEET_KEYRING, fleet.hotlist_keys.read_bytes(), mode=0o600)
            owned.append(out / FLEET_KEYRING)
            done.append(f"installed the hotlist keyring at {out / FLEET_KEYRING} (mode 0600; groups: "
                        f"{', '.join(fleet.groups) or 'none'}); delete the copy you brought")
    if update is not None:  # root's, not the service user's: the node's own process cannot replace its trust anchor
        (out / "update").mkdir(exist_ok=True, mode=0o755)
        write_atomic(out / UPDATE_ROOT, update.root.read_bytes(), mode=0o644)
        done.append(f"pinned the release repository's root (version {root_version}) at {out / UPDATE_ROOT}; "
                    f"updates from {update.url}")
    write_atomic(config_path, text.encode(), mode=0o640)
    done.append(f"wrote {config_path} (site {site.site}, camera {site.camera}, broker {site.host}:{site.port})")
    ids = service_ids()
    if ids is not None:
        for path in owned:
            os.chown(path, *ids)
        os.chown(config_path, 0, ids[1])
        done.append(f"gave {tls} and the key to {SERVICE_USER}")
    return done


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--site", help="site id (lowercase, digits, - and _), e.g. london-a40")
    parser.add_argument("--camera", help="camera id at the site, e.g. cam01")
    parser.add_argument("--broker", help="broker HOST[:PORT] (default port 8883)")
    parser.add_argument("--out", default="/etc/edge-anpr", help="where config.yaml and tls/ go (default: %(default)s)")
    parser.add_argument("--template", help="config template (default: config/example.yaml)")
    parser.add_argument("--ca", help="CA certificate of the broker, copied to OUT/tls/ca.crt")
    parser.add_argument("--force", action="store_true", help="replace an existing config.yaml")
    parser.add_argument("--no-input", action="store_true", help="never prompt; fail on a missing flag")
    parser.add_argument("--fleet-key", help="the centre's public key (fleet-signing.pub from edge-anpr fleet keygen), "
                        "pinned for control messages; adds a fleet: section to the config")
    parser.add_argument("--hotlist-keys", help="this node's hotlist keyring (edge-anpr fleet node-keys)")
    parser.add_argument("--group", action="append", default=[], help="a group of this node (repeat; with --fleet-key)")
    parser.add_argument("--update-root", help="the release repository's root metadata (metadata/1.root.json from "
                        "edge-anpr fleet release init-repo), pinned for over-the-air updates; with --update-url")
    parser.add_argument("--update-url", help="the release repository's https:// URL; adds an update: section")


def fleet_from_args(args: argparse.Namespace) -> FleetFiles | None:
    if not args.fleet_key:
        if args.hotlist_keys or args.group:
            raise ConfigError("--hotlist-keys and --group need --fleet-key (the centre's public key)")
        return None
    for given in (args.fleet_key, args.hotlist_keys):
        if given and not Path(given).is_file():
            raise ConfigError(f"{given}: no such file")
    return FleetFiles(Path(args.fleet_key), Path(args.hotlist_keys) if args.hotlist_keys else None,
                      tuple(args.group))


def update_from_args(args: argparse.Namespace) -> UpdateFiles | None:
    if not args.update_root and not args.update_url:
        return None
    if not (args.update_root and args.update_url):
        raise ConfigError("--update-root and --update-url go together (the pinned root and the repository's URL)")
    if not Path(args.update_root).is_file():
        raise ConfigError(f"--update-root {args.update_root}: no such file")
    if not args.update_url.startswith("https://"):
        raise ConfigError(f"--update-url {args.update_url!r}: must be https:// (nodes fetch releases over TLS only)")
    return UpdateFiles(Path(args.update_root), args.update_url)


def main(args: argparse.Namespace) -> int:
    interactive = not args.no_input
    site = site_from(_ask("site", args.site, interactive), _ask("camera", args.camera, interactive),
                     _ask("broker", args.broker, interactive))
    ca = Path(args.ca) if args.ca else None
    if ca is not None and not ca.is_file():
        raise ConfigError(f"--ca {args.ca}: no such file")
    fleet, update = fleet_from_args(args), update_from_args(args)
    try:
        done = provision(site, Path(args.out), find_template(args.template), ca=ca, force=args.force, fleet=fleet,
                         update=update)
    except OSError as exc:
        raise EdgeError(f"provisioning failed: {exc}") from exc
    for line in done:
        print(line)
    config_path = Path(args.out) / "config.yaml"
    print(f"next: install the signed certificate, then run: edge-anpr selftest --config {config_path}")
    sys.stdout.flush()
    return 0
