"""Child process for the SIGKILL test: applies pushed hotlists version after version until it is killed.

argv: state_dir pushes_dir public_key keyring. ``pushes_dir`` holds v<N>.json (a list of [topic, hex bytes]).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edge.clock import SystemClock
from edge.config.model import FleetConfig, NodeConfig, PrivacyConfig
from edge.node.fleet import FleetNode


def main() -> None:
    state, pushes, public_key, keyring = (Path(a) for a in sys.argv[1:5])
    node = NodeConfig(site="site1", camera="cam1", state_dir=str(state))
    fleet = FleetNode(FleetConfig(public_key_file=str(public_key), hotlist_keys_file=str(keyring)), node,
                      PrivacyConfig(), prefix="anpr", state_dir=state, clock=SystemClock())
    files = sorted(pushes.glob("v*.json"), key=lambda p: int(p.stem[1:]))
    print("ready", flush=True)
    for path in files:
        for topic, body in json.loads(path.read_text()):
            fleet.handle(topic, bytes.fromhex(body))
        print(f"applied {path.stem}", flush=True)


if __name__ == "__main__":
    main()
