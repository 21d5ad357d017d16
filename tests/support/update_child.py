"""Child process for the SIGKILL test: runs one update and kills itself (SIGKILL) when it reaches a given step.

argv: a JSON object (see tests/node/test_update_kill.py): root, url, pinned, tls, kill_at.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from support.releases import Healthy, ProbeSelfTest, Restarts

from edge.node.update import Identity, NodeUpdater, Timing
from edge.node.update_fetch import ReleaseClient, TlsFetcher, TlsOptions


def main() -> None:
    args = json.loads(sys.argv[1])
    kill_at = args["kill_at"]

    def on_step(step: str) -> None:
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    fetcher = TlsFetcher(TlsOptions(**args["tls"]))
    root = Path(args["root"])
    client = ReleaseClient(url=args["url"], pinned_root=Path(args["pinned"]), cache=root / "tuf", fetcher=fetcher)
    updater = NodeUpdater(root, client, Identity("site1", "cam1"), restarter=Restarts(), selftest=ProbeSelfTest(),
                          probe=Healthy, timing=Timing(startup_s=2, healthy_s=0.05, poll_s=0.01),
                          installer="unpack", on_step=on_step)
    print(json.dumps(updater.run().__dict__), flush=True)


if __name__ == "__main__":
    main()
