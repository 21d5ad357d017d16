"""``edge-anpr update``: the node's over-the-air updater (run as root by edge-anpr-update.service, from ``stable``).

::

    edge-anpr update run --config /etc/edge-anpr/config.yaml      # recover, check, install, switch, confirm
    edge-anpr update recover --config ...                          # only finish or undo an interrupted step
    edge-anpr update status --config ... [--json]                  # running, confirmed, pending, last failure

Exit codes: 0 done (updated, nothing to do, recovered), 9 the update was refused or rolled back (health says
why), 2 config.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from edge.config.loader import load_config
from edge.config.model import Config
from edge.errors import ConfigError

if TYPE_CHECKING:  # python-tuf is imported when the command runs, not to build the parser
    from edge.node.update import NodeUpdater
    from edge.node.update_fetch import TlsFetcher, TlsOptions

EXIT_NOT_UPDATED = 9


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("run", "recover", "status"), help="what to do (see edge-anpr update -h)")
    parser.add_argument("--config", "-c", default="/etc/edge-anpr/config.yaml",
                        help="config file (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def tls_options(config: Config) -> TlsOptions:
    from edge.node.update_fetch import TlsOptions

    up = config.update
    assert up is not None
    tls = config.mqtt.tls if config.mqtt is not None else None
    ca = up.ca_file or (tls.ca_file if tls else None)
    if ca is None:
        raise ConfigError("update.ca_file is needed (there is no mqtt.tls.ca_file to default to)")
    return TlsOptions(ca, up.cert_file or (tls.cert_file if tls else None),
                      up.key_file or (tls.key_file if tls else None))


def build_updater(config: Config, config_path: str) -> tuple[NodeUpdater, TlsFetcher]:
    from edge.node.update import CommandRestarter, CommandSelfTest, HealthFileProbe, Identity, NodeUpdater, Timing
    from edge.node.update_fetch import ReleaseClient, TlsFetcher

    up = config.update
    if up is None:
        raise ConfigError(f"{config_path} has no update: section (update.url, update.root_file)")
    fetcher = TlsFetcher(tls_options(config))
    root = Path(up.install_root)
    client = ReleaseClient(url=up.url, pinned_root=Path(up.root_file), cache=root / "tuf", fetcher=fetcher)
    groups = config.fleet.groups if config.fleet is not None else ()
    health = Path(config.node.state_dir) / "health.json"
    updater = NodeUpdater(
        root, client, Identity(config.node.site, config.node.camera, tuple(groups)),
        restarter=CommandRestarter(up.restart_command),
        selftest=CommandSelfTest(config_path, run_as=up.selftest_user, state_dir=config.node.state_dir),
        probe=lambda: HealthFileProbe(health), installer=up.installer,
        timing=Timing(startup_s=up.startup_s, healthy_s=up.healthy_s, min_free_mb=up.min_free_mb),
        fetched=lambda: fetcher.bytes_received,
    )
    return updater, fetcher


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    updater, _ = build_updater(config, args.config)
    if args.action == "status":
        from edge.node.update_state import health_fields

        body = health_fields(updater.root)
        print(json.dumps(body, indent=1) if args.json else "\n".join(f"{k}: {v}" for k, v in body.items()) or "-")
        return 0
    outcome = updater.recover() if args.action == "recover" else updater.run()
    if outcome is None:
        print("nothing was interrupted")
        return 0
    if args.json:
        print(json.dumps(outcome.__dict__))
    else:
        print(f"{outcome.action}: {outcome.version} {outcome.detail} ({outcome.bytes} bytes fetched)")
    return EXIT_NOT_UPDATED if outcome.action in ("refused", "rolled_back") else 0
