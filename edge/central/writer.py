"""The store writer: batches judged messages, commits them, and only then acknowledges them.

The MQTT thread judges each message (:class:`~edge.central.intake.Intake`) and hands it here with a
function that acknowledges it. The writer thread takes whatever is waiting (up to ``max_batch``), writes it
in one transaction, then acknowledges the batch in the order the messages arrived (MQTT wants PUBACKs in
order). While the store is unavailable it keeps the batch and tries again with a growing pause, acknowledging
nothing; the broker holds the rest (the subscriber's Receive Maximum bounds how many are in flight).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from edge.central.records import Outcome, ReadRecord, Record
from edge.central.store import CentralStore, StoreUnavailableError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Delivery:
    record: Record
    ack: Callable[[], None]


@dataclass
class ListenStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    status_health: int = 0  # status and health messages kept
    batches: int = 0
    store_retries: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # rejected, by reason (first 60 characters)

    def as_dict(self) -> dict[str, object]:
        return {"received": self.received, "stored": self.stored, "duplicates": self.duplicates,
                "rejected": self.rejected, "status_health": self.status_health, "batches": self.batches,
                "store_retries": self.store_retries}


class Writer:
    def __init__(
        self,
        store: CentralStore,
        *,
        max_batch: int = 500,
        queue_size: int = 4000,
        max_reads: int | None = None,
        on_read: Callable[[ReadRecord], None] | None = None,
        retry_max_s: float = 30.0,
    ) -> None:
        self.stats = ListenStats()
        self.done = threading.Event()  # max_reads stored
        self.failed: BaseException | None = None
        self._store = store
        self._queue: queue.Queue[Delivery] = queue.Queue(queue_size)
        self._max_batch = max_batch
        self._max_reads = max_reads
        self._on_read = on_read
        self._retry_max_s = retry_max_s
        self._lock = threading.Lock()

    def put(self, delivery: Delivery) -> None:
        with self._lock:
            self.stats.received += 1
        self._queue.put(delivery)  # bounded: blocks the MQTT thread only if the broker ignores Receive Maximum

    def run(self, stop: threading.Event) -> None:
        """Thread target: write until ``stop`` is set and nothing is waiting (or the store fails for good)."""
        try:
            while True:
                batch = self._take(stop)
                if not batch:
                    if stop.is_set():
                        return
                    continue
                outcomes = self._write(batch, stop)
                if outcomes is None:
                    return  # stopping while the store is unavailable: unacknowledged, the broker keeps them
                self._finish(batch, outcomes)
        except Exception as exc:
            log.exception("listen: the store writer stopped")
            self.failed = exc
            self.done.set()

    def _take(self, stop: threading.Event) -> list[Delivery]:
        try:
            first = self._queue.get(timeout=0.05 if stop.is_set() else 0.2)
        except queue.Empty:
            return []
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write(self, batch: list[Delivery], stop: threading.Event) -> list[Outcome] | None:
        pause = 0.5
        while True:
            try:
                return self._store.write([d.record for d in batch])
            except StoreUnavailableError as exc:
                self.stats.store_retries += 1
                log.error("listen: %s; %d messages wait, unacknowledged (again in %.1f s)", exc, len(batch), pause)
                if stop.wait(pause):
                    return None
                pause = min(pause * 2, self._retry_max_s)

    def _finish(self, batch: list[Delivery], outcomes: list[Outcome]) -> None:
        stats = self.stats
        stats.batches += 1
        for delivery, outcome in zip(batch, outcomes, strict=True):
            delivery.ack()
            record = delivery.record
            if outcome == "rejected":
                stats.rejected += 1
                reason = getattr(record, "reason", "refused by the store")
                stats.reasons[reason[:60]] = stats.reasons.get(reason[:60], 0) + 1
                log.warning("listen: message on %s kept as a dead letter: %s", record.topic, reason)
            elif not isinstance(record, ReadRecord):
                stats.status_health += outcome == "stored"
            elif outcome == "stored":
                stats.stored += 1
                if self._on_read is not None:
                    self._on_read(record)
            else:
                stats.duplicates += 1
        if self._max_reads is not None and stats.stored >= self._max_reads:
            self.done.set()

    def idle(self) -> bool:
        return self._queue.empty()


def wait_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True
