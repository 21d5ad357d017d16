"""``edge-anpr run`` that SIGKILLs itself between two of its writes: the fault test's node.

Usage: python crash_node.py CONFIG POINT K

POINT names the gap the kill falls in, at its K-th occurrence (``none``: run to the end):

  seq        the sequence number is reserved, the read not yet committed
  commit     the read, its number and its audit entry are committed, the audit log not yet appended
  torn       the audit log append is cut half way (a power cut in the middle of the write)
  head       the audit log is appended, its .head not yet rewritten
  written    every write of the read is done, before the next step
  published  the read was handed to the broker connection, its PUBACK not yet processed
  ack        the broker acknowledged the read, its deletion not yet committed

The wrappers only add the kill; every write is the real one.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from edge import cli
from edge.node.sequence import SequenceFile
from edge.outbox.store import Outbox
from edge.privacy import audit
from edge.privacy.audit import AuditLog
from edge.publish.mqtt import MqttPublisher


def die() -> None:
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class Trigger:
    def __init__(self, k: int) -> None:
        self.left = k

    def hit(self) -> bool:
        self.left -= 1
        return self.left == 0


def after(owner: Any, name: str, trigger: Trigger, when: Callable[[Any], bool] = lambda result: True) -> None:
    original = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if when(result) and trigger.hit():
            die()
        return result

    setattr(owner, name, wrapped)


def before(owner: Any, name: str, trigger: Trigger, when: Callable[..., bool] = lambda *a, **k: True) -> None:
    original = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if when(*args, **kwargs) and trigger.hit():
            die()
        return original(*args, **kwargs)

    setattr(owner, name, wrapped)


def torn(trigger: Trigger) -> None:
    original = AuditLog._append_locked

    def wrapped(self: AuditLog, drafts: Any) -> None:
        if trigger.hit():
            data = b"".join(d.line for d in drafts)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.write(fd, data[: len(data) // 2])
            os.fsync(fd)
            die()
        original(self, drafts)

    AuditLog._append_locked = wrapped  # type: ignore[method-assign]


def arm(point: str, k: int) -> None:
    trigger = Trigger(k)
    if point == "seq":
        after(SequenceFile, "reserve", trigger)
    elif point == "commit":
        after(Outbox, "put", trigger, when=bool)
    elif point == "torn":
        torn(trigger)
    elif point == "head":
        before(audit, "write_atomic", trigger, when=lambda path, *a, **kw: str(path).endswith(".head"))
    elif point == "written":
        after(AuditLog, "write", trigger)
    elif point == "published":
        after(MqttPublisher, "_publish", trigger, when=bool)
    elif point == "ack":
        before(Outbox, "ack_many", trigger)
    elif point != "none":
        raise SystemExit(f"unknown crash point {point!r}")


def main(argv: list[str]) -> int:
    config, point, k = argv
    arm(point, int(k))
    return cli.main(["run", "--config", config])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
