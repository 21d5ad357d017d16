"""``edge-anpr fleet release``: cut, sign, stage, withdraw and announce node releases (a TUF repository).

::

    edge-anpr fleet release init-repo --repo /srv/edge-anpr/tuf --root-key /media/usb/release-root.key \\
        --online-key /etc/edge-anpr-central/release-online.key
    edge-anpr fleet release build --out dist/ [--deps-platform manylinux_2_28_aarch64 --lock locked.txt]
    edge-anpr fleet release publish dist/edge-anpr-0.2.0.tar --repo DIR --online-key FILE [--to group/canary]
    edge-anpr fleet release rollout 0.2.0 --to all --repo DIR --online-key FILE
    edge-anpr fleet release withdraw 0.2.0 --repo DIR --online-key FILE [--back-to 0.1.0]
    edge-anpr fleet release rotate-key --repo DIR --root-key FILE --new-online-key FILE [--new-root-key FILE]
    edge-anpr fleet release refresh --repo DIR --online-key FILE        # daily, from cron
    edge-anpr fleet release status --repo DIR [--json]
    edge-anpr fleet release announce 0.2.0 --to canary|SITE/CAMERA|all --store STORE --host BROKER ...  # look now

The root key signs only ``init-repo`` and ``rotate-key``: keep it offline. Everything else needs the online key.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from edge.errors import ConfigError

if TYPE_CHECKING:  # python-tuf is imported when a command runs, not to build the parser
    from securesystemslib.signer import CryptoSigner


def configure_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="release_command", metavar="WHAT", required=True)

    p = sub.add_parser("init-repo", help="create the release repository, its root (v1) and the keys not yet made")
    _repo(p)
    p.add_argument("--root-key", required=True, help="root key file (made if absent; keep it offline afterwards)")
    p.add_argument("--online-key", required=True,
                   help="online key file for targets, snapshot and timestamp (made if absent)")

    p = sub.add_parser("build", help="make a release bundle (wheel, dependency wheels, models) from this checkout")
    p.add_argument("--out", default="dist", help="folder for edge-anpr-<version>.tar (default: %(default)s)")
    p.add_argument("--source", default=".", help="the checkout to build the wheel from (default: %(default)s)")
    p.add_argument("--wheel", help="use this edge_anpr wheel instead of building one")
    p.add_argument("--models", default="models", help="models folder with manifest.json (default: %(default)s)")
    p.add_argument("--no-models", action="store_true", help="a bundle without models (the node keeps its own)")
    p.add_argument("--deps-platform", metavar="TAG",
                   help="also bundle the dependency wheels for this platform, e.g. manylinux_2_28_aarch64")
    p.add_argument("--python-version", default="3.11", help="the node's Python (default: %(default)s)")
    p.add_argument("--lock", help="hashed requirements file to bundle exactly (pip --require-hashes)")

    p = sub.add_parser("publish", help="sign a bundle into the repository (optionally roll it out at once)")
    p.add_argument("bundle", metavar="BUNDLE")
    _repo(p)
    _online(p)
    p.add_argument("--to", action="append", default=[], metavar="SCOPE",
                   help="roll it out to: all, group/<name> or <site>/<camera> (repeat; default: nowhere yet)")

    p = sub.add_parser("rollout", help="point a scope (all, group/<name>, <site>/<camera>) at a published release")
    p.add_argument("version")
    _repo(p)
    _online(p)
    p.add_argument("--to", action="append", required=True, metavar="SCOPE")

    p = sub.add_parser("withdraw", help="remove a release; scopes running it go back to the release before")
    p.add_argument("version")
    _repo(p)
    _online(p)
    p.add_argument("--back-to", help="the release those scopes go to (default: each one's previous)")

    p = sub.add_parser("rotate-key", help="a new root version naming a new online key (and/or a new root key)")
    _repo(p)
    p.add_argument("--root-key", required=True, help="the current root key (the offline file)")
    p.add_argument("--new-online-key", help="the new online key file (made if absent)")
    p.add_argument("--new-root-key", help="a new root key file (made if absent); the old one signs the change too")

    p = sub.add_parser("refresh", help="re-sign timestamp (and what else expires soon); run daily")
    _repo(p)
    _online(p)

    p = sub.add_parser("status", help="releases, rollout pointers and metadata versions of the repository")
    _repo(p)
    p.add_argument("--json", action="store_true")

    from edge.central.fleet_cli import DEFAULT_KEYS, broker_args

    p = sub.add_parser("announce", help="tell nodes on the control channel to look for a release now (signed)")
    p.add_argument("version", help="the release (nodes still install only what the repository's rollout says)")
    p.add_argument("--to", action="append", required=True, metavar="GROUP|SITE/CAMERA|all",
                   help="a group, one node, or all (repeat for several)")
    p.add_argument("--keys", default=DEFAULT_KEYS, help="the folder fleet keygen wrote (default: %(default)s)")
    p.add_argument("--store", required=True, help="central store (postgresql://... or an SQLite file) for versions")
    p.add_argument("--expires-in-h", type=float, default=168.0,
                   help="hours the signed announcement stays valid (default: %(default)s)")
    broker_args(p)


def _repo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repo", required=True, help="the repository folder (served as-is by any static HTTPS server)")


def _online(p: argparse.ArgumentParser) -> None:
    p.add_argument("--online-key", required=True, help="the online signing key file")


def _signer(path: str, *, create: bool = False) -> CryptoSigner:
    from edge.central import release as rel

    p = Path(path)
    if create and not p.exists():
        print(f"created {p} (Ed25519, 0600)")
        return rel.make_key(p)
    return rel.load_signer(p)


def main(args: argparse.Namespace) -> int:
    commands = {"init-repo": _init, "build": _build, "status": _status, "rotate-key": _rotate, "refresh": _refresh,
                "publish": _publish, "rollout": _rollout, "withdraw": _withdraw}
    from edge.central.release import utc_now

    return commands[args.release_command](args, utc_now())


def _init(args: argparse.Namespace, now: datetime) -> int:
    from edge.central import release as rel

    repo = rel.ReleaseRepo.init(Path(args.repo), root_signer=_signer(args.root_key, create=True),
                                online_signer=_signer(args.online_key, create=True), now=now)
    print(f"created the repository {repo.path}: install {repo.meta_dir / '1.root.json'} on every node "
          f"(provision --update-root); keep {args.root_key} offline")
    return 0


def _status(args: argparse.Namespace, now: datetime) -> int:
    from edge.central import release as rel

    summary = rel.summary(rel.ReleaseRepo.open(Path(args.repo)))
    print(json.dumps(summary, indent=1) if args.json else _status_text(summary))
    return 0


def _rotate(args: argparse.Namespace, now: datetime) -> int:
    from edge.central import release as rel

    if not args.new_online_key and not args.new_root_key:
        raise ConfigError("rotate-key: give --new-online-key and/or --new-root-key")
    repo = rel.ReleaseRepo.open(Path(args.repo))
    new_online = _signer(args.new_online_key, create=True) if args.new_online_key else None
    version = repo.rotate(root_signer=_signer(args.root_key), now=now, new_online=new_online,
                          new_root=_signer(args.new_root_key, create=True) if args.new_root_key else None)
    if new_online is not None:
        repo.commit(new_online, now)
    print(f"root version {version} written; nodes follow it at their next check (nothing to do on them)")
    return 0


def _refresh(args: argparse.Namespace, now: datetime) -> int:
    from edge.central import release as rel

    print(rel.ReleaseRepo.open(Path(args.repo)).refresh(_signer(args.online_key), now))
    return 0


def _publish(args: argparse.Namespace, now: datetime) -> int:
    from edge.central import release as rel

    repo = rel.ReleaseRepo.open(Path(args.repo))
    online = _signer(args.online_key)
    info = repo.add_release(Path(args.bundle))
    version = info.custom["version"]
    for scope in args.to:
        repo.set_rollout(scope, version, now)
    repo.commit(online, now)
    where = ", ".join(args.to) or "nowhere yet (fleet release rollout VERSION --to SCOPE)"
    print(f"published {version} ({info.length} bytes, sha256 {info.hashes['sha256'][:16]}...); "
          f"rolled out to {where}")
    return 0


def _rollout(args: argparse.Namespace, now: datetime) -> int:
    from edge.central import release as rel

    repo = rel.ReleaseRepo.open(Path(args.repo))
    online = _signer(args.online_key)
    for scope in args.to:
        repo.set_rollout(scope, args.version, now)
    repo.commit(online, now)
    print(f"{', '.join(args.to)} -> {args.version} (targets version {repo.targets.signed.version})")
    return 0


def _withdraw(args: argparse.Namespace, now: datetime) -> int:
    from edge.central import release as rel

    repo = rel.ReleaseRepo.open(Path(args.repo))
    online = _signer(args.online_key)
    lines = repo.withdraw(args.version, now, back_to=args.back_to)
    repo.commit(online, now)
    for line in lines or [f"{args.version} withdrawn (no scope ran it)"]:
        print(line)
    return 0


def _build(args: argparse.Namespace, now: datetime) -> int:
    from edge.central import release as rel

    with tempfile.TemporaryDirectory(prefix="edge-anpr-release-") as scratch:
        tmp = Path(scratch)
        wheel = Path(args.wheel) if args.wheel else rel.build_wheel(Path(args.source), tmp)
        deps: list[Path] = []
        if args.deps_platform:
            deps = rel.download_dependencies(wheel, tmp / "deps", platform=args.deps_platform,
                                             python_version=args.python_version,
                                             lock=Path(args.lock) if args.lock else None)
        bundle = rel.build_bundle(Path(args.out), wheel=wheel, models=None if args.no_models else Path(args.models),
                                  dependencies=deps, now=now)
    print(f"{bundle} ({bundle.stat().st_size} bytes; {len(deps)} dependency wheels)")
    sys.stdout.flush()
    return 0


def _status_text(s: dict[str, object]) -> str:
    lines = [f"root v{s['root_version']}, targets v{s['targets_version']} (expires {s['targets_expires']})"]
    releases = s["releases"]
    rollout = s["rollout"]
    assert isinstance(releases, dict) and isinstance(rollout, dict)
    for version, info in releases.items():
        lines.append(f"release {version}: {info['size']} bytes, sha256 {info['sha256'][:16]}...")
    for scope, version in rollout.items():
        lines.append(f"rollout {scope} -> {version}")
    return "\n".join(lines)
