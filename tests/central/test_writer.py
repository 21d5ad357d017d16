"""The store writer acknowledges a message only after its batch is committed, in arrival order."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime

from support.reads import SettableClock, make_read, node_config

from edge.central.intake import Intake
from edge.central.records import Outcome, Record
from edge.central.store import StoreUnavailableError
from edge.central.writer import Delivery, Writer, wait_until

T = datetime(2026, 3, 14, 8, 0, 0, tzinfo=UTC)


class FlakyStore:
    """A real in-memory store (ids kept once) that is unavailable for its first ``failures`` writes."""

    def __init__(self, failures: int, acks: list[int]) -> None:
        self.failures = failures
        self.kept: list[str] = []
        self.acks = acks
        self.acks_at_commit: list[int] = []

    def write(self, records: Sequence[Record]) -> list[Outcome]:
        if self.failures > 0:
            self.failures -= 1
            raise StoreUnavailableError("database is down")
        self.acks_at_commit.append(len(self.acks))
        outcomes: list[Outcome] = []
        for r in records:
            rid = getattr(r, "id", None)
            if rid is None:
                outcomes.append("rejected")
            elif rid in self.kept:
                outcomes.append("duplicate")
            else:
                self.kept.append(rid)
                outcomes.append("stored")
        return outcomes

    def close(self) -> None:
        pass


def _records(n: int) -> list[Record]:
    node = node_config()
    intake = Intake(SettableClock(T))
    return [intake.judge("anpr/site1/cam1/reads", make_read(node, s).payload) for s in range(n)]


def test_nothing_is_acknowledged_while_the_store_is_down_and_everything_in_order_once_it_is_back() -> None:
    acks: list[int] = []
    store = FlakyStore(failures=2, acks=acks)
    writer = Writer(store, retry_max_s=0.05)
    stop = threading.Event()
    for i, record in enumerate([*_records(5), *_records(2)]):  # the last two are redeliveries
        writer.put(Delivery(record, lambda i=i: acks.append(i)))
    thread = threading.Thread(target=writer.run, args=(stop,))
    thread.start()
    assert wait_until(lambda: len(acks) == 7, 10)
    stop.set()
    thread.join(5)
    assert acks == list(range(7))
    assert store.acks_at_commit[0] == 0  # the first commit came before any acknowledgement
    assert (writer.stats.stored, writer.stats.duplicates, writer.stats.store_retries) == (5, 2, 2)


def test_stopping_while_the_store_is_down_acknowledges_nothing() -> None:
    acks: list[int] = []
    writer = Writer(FlakyStore(failures=1000, acks=acks), retry_max_s=0.05)
    stop = threading.Event()
    for record in _records(3):
        writer.put(Delivery(record, lambda: acks.append(1)))
    thread = threading.Thread(target=writer.run, args=(stop,))
    thread.start()
    assert wait_until(lambda: writer.stats.store_retries >= 2, 5)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert acks == []  # the broker delivers them again
