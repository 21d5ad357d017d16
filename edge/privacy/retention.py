"""Retention: each class of data on the node has a maximum age, enforced at start and on a schedule.

Classes: ``non_hit_reads`` (reads that hit no hotlist), ``hit_reads``, ``images`` and ``logs`` (the audit
log). Each class is kept in some store (the outbox for reads and images, the audit log for logs) that
implements the two-method :class:`RetentionStore`; ``Retention`` only decides the cut-offs, so the rule
"nothing older than the policy allows" lives in one place and is tested with a fake clock. Raw frames are
never written to disk, so they need no purge.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Literal, Protocol

from edge.clock import Clock
from edge.config.model import RetentionConfig
from edge.errors import StateError

log = logging.getLogger(__name__)

DataClass = Literal["non_hit_reads", "hit_reads", "images", "logs"]
DATA_CLASSES: tuple[DataClass, ...] = ("non_hit_reads", "hit_reads", "images", "logs")


class RetentionStore(Protocol):
    """Where one class of data is kept: its oldest item, and removal of everything older than a cut-off."""

    def oldest(self) -> datetime | None: ...

    def purge_before(self, cutoff: datetime) -> int: ...


class Retention:
    """Purges every configured class past its maximum age; reports the age of the oldest item of each."""

    def __init__(self, config: RetentionConfig, stores: Mapping[DataClass, RetentionStore]) -> None:
        unknown = set(stores) - set(DATA_CLASSES)
        if unknown:
            raise ValueError(f"retention classes {sorted(unknown)} are unknown (allowed: {list(DATA_CLASSES)})")
        self._config = config
        self._stores = dict(stores)
        self._last_run: datetime | None = None
        self.failures = 0

    def max_age(self, data_class: DataClass) -> timedelta:
        seconds = {
            "non_hit_reads": self._config.non_hit_reads_s,
            "hit_reads": self._config.hit_reads_s,
            "images": self._config.images_s,
            "logs": self._config.logs_s,
        }[data_class]
        return timedelta(seconds=seconds)

    def purge(self, now: datetime) -> dict[DataClass, int]:
        """Remove everything older than its class allows; {class: items removed} for each store that answered."""
        removed: dict[DataClass, int] = {}
        for data_class, store in self._stores.items():
            cutoff = now - self.max_age(data_class)
            try:
                removed[data_class] = store.purge_before(cutoff)
            except (OSError, ValueError, StateError) as exc:
                self.failures += 1
                log.error("retention: purging %s older than %s failed: %s", data_class, cutoff.isoformat(), exc)
        self._last_run = now
        if any(removed.values()):
            log.info("retention: removed %s", {k: v for k, v in removed.items() if v})
        return removed

    def oldest(self, now: datetime) -> dict[DataClass, float]:
        """Age in seconds of the oldest item of each class that has one (absent when empty or unknown)."""
        ages: dict[DataClass, float] = {}
        for data_class, store in self._stores.items():
            try:
                t = store.oldest()
            except (OSError, ValueError, StateError) as exc:
                log.warning("retention: cannot read the oldest %s: %s", data_class, exc)
                continue
            if t is not None:
                ages[data_class] = max(0.0, (now - t).total_seconds())
        return ages

    def due(self, now: datetime) -> bool:
        """True at start (never run) and once ``purge_interval_s`` has passed since the last purge."""
        if self._last_run is None:
            return True
        return now - self._last_run >= timedelta(seconds=self._config.purge_interval_s)

    def run_if_due(self, now: datetime) -> dict[DataClass, int] | None:
        return self.purge(now) if self.due(now) else None

    def run(self, clock: Clock, stop: threading.Event,
            on_purge: Callable[[dict[DataClass, int]], None] | None = None) -> None:
        """Purge now and then every ``purge_interval_s`` until ``stop`` is set (a thread's target); ``on_purge``
        receives what each purge removed (per class)."""
        while not stop.is_set():
            removed = self.run_if_due(clock.now())
            if removed is not None and on_purge is not None:
                on_purge(removed)
            stop.wait(min(self._config.purge_interval_s, 60.0))
