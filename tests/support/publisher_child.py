"""A node stand-in run as a child process by the SIGKILL test: puts reads and publishes them.

Usage: python publisher_child.py HOST PORT STATE_DIR FIRST_SEQ COUNT BASE_ISO
With COUNT 0 it stays connected until killed. Prints ``ready`` once connected,
``put <seq>`` after each put returned (committed), and ``done`` after everything was flushed.
The parent may SIGKILL it at any point.
"""

from __future__ import annotations

import sys
import threading
from datetime import datetime
from pathlib import Path

from support.reads import lab_mqtt, make_read, node_config, outbox_config

from edge.clock import SystemClock
from edge.outbox.store import Outbox
from edge.publish.mqtt import MqttPublisher


def main(argv: list[str]) -> int:
    host, port, state_dir, first, count, base = argv
    node = node_config()
    with Outbox(Path(state_dir) / "outbox.sqlite", outbox_config(), SystemClock()) as box, MqttPublisher(
        lab_mqtt(host, int(port)), node, box, SystemClock(), "child", reconnect_max_s=1
    ) as pub:
        pub.wait_connected(10)
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        for seq in range(int(first), int(first) + int(count)):
            box.put(make_read(node, seq, base=datetime.fromisoformat(base)))
            pub.notify()
            sys.stdout.write(f"put {seq}\n")
            sys.stdout.flush()
        if int(count) == 0:  # stay connected until killed (last-will test)
            threading.Event().wait()
        pub.flush(30)
    sys.stdout.write("done\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
