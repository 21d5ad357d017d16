"""``edge-anpr fleet``: the centre's commands for the control channel (keys, hotlist pushes, status).

::

    edge-anpr fleet keygen --out /etc/edge-anpr-central/fleet
    edge-anpr fleet node-keys --keys DIR --site london-a40 --camera cam01 --group london --out hotlist-keys.json
    edge-anpr fleet hotlist push list.json --to london --to london-a40/cam01 --keys DIR --store STORE \\
        --host broker.example.org --ca-file ca.crt --cert-file fleet.crt --key-file fleet.key
    edge-anpr fleet config push node.yaml --to london --keys DIR --store STORE --host ... (as hotlist push)
    edge-anpr fleet status --store STORE [--json]
    edge-anpr fleet release announce 0.2.0 --to canary --keys DIR --store STORE --host ... (as hotlist push)
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from edge.errors import ConfigError

if TYPE_CHECKING:
    from edge.central.fleet import BrokerOptions
    from edge.fleet.topics import Kind

DEFAULT_KEYS = "/etc/edge-anpr-central/fleet"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="fleet_command", metavar="WHAT", required=True)
    p = sub.add_parser("keygen", help="make the centre's signing key and the fleet hotlist secret (once)")
    p.add_argument("--out", default=DEFAULT_KEYS, help="folder for the keys (default: %(default)s)")
    p = sub.add_parser("node-keys", help="write one node's hotlist keyring (its own key and its groups')")
    p.add_argument("--keys", default=DEFAULT_KEYS, help="the folder keygen wrote (default: %(default)s)")
    p.add_argument("--site", required=True)
    p.add_argument("--camera", required=True)
    p.add_argument("--group", action="append", default=[], help="a group of the node (repeat for each)")
    p.add_argument("--out", required=True, help="the keyring file to write (0600), for provision --hotlist-keys")
    p = sub.add_parser("hotlist", help="hotlist pushes")
    hot = p.add_subparsers(dest="hotlist_command", metavar="WHAT", required=True)
    p = hot.add_parser("push", help="hash FILE (anpr.hotlist/1 with plates) with each target's key, sign, publish")
    p.add_argument("file", metavar="FILE", help="anpr.hotlist/1 list with plate text (checksummed or signed)")
    _push_args(p)
    p = sub.add_parser("config", help="config pushes")
    cfg = p.add_subparsers(dest="config_command", metavar="WHAT", required=True)
    p = cfg.add_parser("push", help="sign a node config (YAML) and publish it; each node checks it as check-config "
                       "does, restarts with it and rolls back if it does not come back healthy")
    p.add_argument("file", metavar="FILE", help="node config (YAML); node identity, certificate paths and pinned keys "
                   "may be left out (each node keeps its own) and may not differ from the node's")
    _push_args(p)
    p = sub.add_parser("status", help="each node: state, health, applied versions, pending pushes, refusals")
    p.add_argument("--store", required=True, help="central store (postgresql://... or an SQLite file)")
    p.add_argument("--json", action="store_true", help="print JSON")
    from edge.central import release_cli  # issue 23: software releases (a TUF repository)

    release_cli.configure_parser(sub.add_parser("release", help="cut, sign, stage and withdraw node releases (TUF)"))



def _push_args(p: argparse.ArgumentParser) -> None:
    """What every push takes: its targets, the keys, the store that versions it, expiry and the broker."""
    p.add_argument("--to", action="append", required=True, metavar="GROUP|SITE/CAMERA",
                   help="a group name or one node (repeat for several targets)")
    p.add_argument("--keys", default=DEFAULT_KEYS, help="the folder keygen wrote (default: %(default)s)")
    p.add_argument("--store", required=True, help="central store (postgresql://... or an SQLite file) for versions")
    p.add_argument("--version", type=int, help="version to give (default: one more than the last pushed)")
    p.add_argument("--expires-in-h", type=float, default=168.0,
                   help="hours the signed manifest stays valid; re-push before then (default: %(default)s)")
    broker_args(p)

def broker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="localhost", help="broker host (checked against its certificate)")
    p.add_argument("--port", type=int, default=8883)
    p.add_argument("--ca-file")
    p.add_argument("--cert-file", help="the centre's control certificate (CN fleet in the example ACL)")
    p.add_argument("--key-file")
    p.add_argument("--insecure-lab-mode", action="store_true", help="plain TCP, no TLS (lab bench only)")
    p.add_argument("--client-id", default="fleet", help="MQTT client id (default: %(default)s)")
    p.add_argument("--topic-prefix", default="anpr")


def broker_options(args: argparse.Namespace) -> BrokerOptions:
    """The broker the options of :func:`broker_args` name."""
    from edge.central.fleet import BrokerOptions

    return BrokerOptions(host=args.host, port=args.port, ca_file=args.ca_file, cert_file=args.cert_file,
                         key_file=args.key_file, insecure_lab_mode=args.insecure_lab_mode, client_id=args.client_id,
                         prefix=args.topic_prefix)


def main(args: argparse.Namespace) -> int:
    if args.fleet_command == "keygen":
        from edge.central.fleet import keygen

        for line in keygen(Path(args.out)):
            print(line)
        return 0
    if args.fleet_command == "node-keys":
        return _node_keys(args)
    if args.fleet_command in ("hotlist", "config"):
        return _push(args)
    if args.fleet_command == "release" and args.release_command == "announce":
        return _announce(args)
    if args.fleet_command == "release":
        from edge.central.release_cli import main as release_main

        return release_main(args)
    return _status(args)


def _node_keys(args: argparse.Namespace) -> int:
    from edge.central.fleet import load_secret, node_keyring
    from edge.fleet.payload import write_keyring
    from edge.fleet.topics import check_slug

    try:
        for value, what in [(args.site, "site"), (args.camera, "camera"), *((g, "group") for g in args.group)]:
            check_slug(value, what)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    out = Path(args.out)
    write_keyring(out, node_keyring(load_secret(Path(args.keys)), args.site, args.camera, args.group))
    print(f"wrote {out} (0600): the hotlist keys of {args.site}/{args.camera} and of groups {args.group or 'none'}; "
          "install it on the unit with provision --hotlist-keys, then delete this copy")
    return 0


def _targets(values: list[str], *, everyone: bool = False) -> list[str]:
    from edge.fleet.topics import EVERYONE, group_target, parse_target

    targets = []
    for value in values:
        if value in ("all", EVERYONE) and not everyone:
            raise ConfigError(f"--to {value}: only a release announcement goes to every node; name groups or nodes")
        try:
            targets.append(parse_target(value) if "/" in value else parse_target(group_target(value)))
        except ValueError as exc:
            raise ConfigError(f"--to {value}: {exc}") from None
    return targets


def _push(args: argparse.Namespace) -> int:
    from edge.central.fleet import (
        SIGNING_KEY,
        ControlPublisher,
        config_push,
        hotlist_push,
        load_secret,
    )
    from edge.central.store.fleet import last_version, open_db, record_push
    from edge.fleet.signing import load_private_key

    targets = _targets(args.to)
    keys = Path(args.keys)
    kind: Kind = "config" if args.fleet_command == "config" else "hotlist"
    key = load_private_key(keys / SIGNING_KEY)
    secret = load_secret(keys) if kind == "hotlist" else b""
    now = datetime.now(UTC)
    expires = now + timedelta(hours=args.expires_in_h)
    db = open_db(args.store)
    broker = broker_options(args)
    try:
        with ControlPublisher(broker) as publisher:
            for target in targets:
                last = last_version(db, kind, target)
                version = args.version if args.version is not None else last + 1
                if version <= last:
                    raise ConfigError(f"--version {version}: {target} already had version {last}; nodes refuse "
                                      "older versions (rollback)")
                if kind == "config":
                    push = config_push(Path(args.file), target=target, version=version, key=key, now=now,
                                       expires=expires)
                else:
                    push = hotlist_push(Path(args.file), target=target, version=version, secret=secret, key=key,
                                        now=now, expires=expires)
                sent = publisher.publish(push)
                m = push.manifest
                record_push(db, kind=kind, target=target, version=version, sha256=m.sha256, size=m.size,
                            chunks=m.chunks, entries=push.entries, bytes_sent=sent, pushed_at=now, expires=expires)
                what = f"{push.entries} plates, " if kind == "hotlist" else ""
                print(f"pushed {kind} version {version} to {target}: {what}{m.size} bytes in {m.chunks} chunk(s), "
                      f"manifest expires {m.expires}")
    finally:
        db.close()
    return 0


def _announce(args: argparse.Namespace) -> int:
    """Sign and publish a release announcement (anpr.release-note/1) to each target; recorded as kind release."""
    from edge.central.fleet import SIGNING_KEY, ControlPublisher, sign_push
    from edge.central.store.fleet import last_version, open_db, record_push
    from edge.fleet.release import check_version, note
    from edge.fleet.signing import load_private_key

    try:
        release = check_version(args.version)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    targets = _targets(args.to, everyone=True)
    key = load_private_key(Path(args.keys) / SIGNING_KEY)
    now = datetime.now(UTC)
    expires = now + timedelta(hours=args.expires_in_h)
    db = open_db(args.store)
    broker = broker_options(args)
    try:
        with ControlPublisher(broker) as publisher:
            for target in targets:
                version = last_version(db, "release", target) + 1
                push = sign_push(key, kind="release", target=target, version=version, data=note(release), now=now,
                                 expires=expires)
                sent = publisher.publish(push)
                m = push.manifest
                record_push(db, kind="release", target=target, version=version, sha256=m.sha256, size=m.size,
                            chunks=m.chunks, entries=None, bytes_sent=sent, pushed_at=now, expires=expires)
                print(f"announced release {release} to {target} (announcement {version}, {sent} bytes); its nodes "
                      "now ask the release repository what to run")
    finally:
        db.close()
    return 0


def _status(args: argparse.Namespace) -> int:
    from edge.central.store.fleet import fleet_status, open_db

    db = open_db(args.store)
    try:
        nodes = fleet_status(db)
    finally:
        db.close()
    if args.json:
        print(json.dumps([n.as_dict() for n in nodes], indent=1))
        return 0
    print(f"{'NODE':28} {'STATE':8} {'HEALTH':20} {'SOFTWARE':24} {'CONFIG':24} {'APPLIED':40} {'PENDING':24} REFUSED")
    for n in nodes:
        applied = ", ".join(f"{k} v{v}" + (f" ({e})" if e is not None else "")
                            for k, (v, e) in sorted(n.applied.items()))
        refused = "; ".join(f"{r['kind']} {r['target']} v{r['version']}: {r['reason']}" for r in n.refused)
        health = n.health_at.strftime("%Y-%m-%d %H:%M:%S") if n.health_at else "-"
        print(f"{n.name:28} {n.state or '-':8} {health:20} {n.software:24} {n.config_line:24} "
              f"{applied or '-':40} "
              f"{', '.join(n.pending) or '-':24} "
              f"{n.refusals} {refused}".rstrip())
    return 0
