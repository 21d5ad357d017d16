"""Child process for the config SIGKILL test: takes pushed configs version after version until it is killed, each
confirmed healthy before the next (so the good copy is written too).

argv: folder (config.yaml, centre.pub, state/) pushes_dir. ``pushes_dir`` holds v<N>.json (a list of [topic, hex]).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edge.clock import SystemClock
from edge.config import load_config
from edge.node.config_push import ConfigPushes
from edge.node.fleet import FleetNode


class NoRestart:
    def restart(self) -> None:
        pass


def main() -> None:
    folder, pushes = Path(sys.argv[1]), Path(sys.argv[2])
    local = load_config(folder / "config.yaml")
    configs = ConfigPushes(folder / "config.yaml", local, restarter=NoRestart(), clock=SystemClock())
    config = configs.select().config
    assert config.fleet is not None
    fleet = FleetNode(config.fleet, config.node, config.privacy, prefix="anpr", state_dir=folder / "state",
                      clock=SystemClock(), configs=configs)
    print("ready", flush=True)
    for path in sorted(pushes.glob("v*.json"), key=lambda p: int(p.stem[1:])):
        for topic, body in json.loads(path.read_text()):
            fleet.handle(topic, bytes.fromhex(body))
        configs.selection = configs.select()  # as a restart would: the new one on trial, then healthy
        configs.health_published(started=True, connected=True)
        print(f"applied {path.stem}", flush=True)


if __name__ == "__main__":
    main()
