"""Retention: nothing is kept past its class's maximum age; purges run at start and on schedule (fake clock)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.config.model import OutboxConfig, RetentionConfig
from edge.domain import OutgoingMessage
from edge.outbox.store import Outbox
from edge.privacy.audit import AuditLog, verify
from edge.privacy.retention import Retention

T0 = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


class MemoryStore:
    """A real (in-memory) store of timestamped items."""

    def __init__(self, *times: datetime) -> None:
        self.times = sorted(times)

    def oldest(self) -> datetime | None:
        return self.times[0] if self.times else None

    def purge_before(self, cutoff: datetime) -> int:
        before = len(self.times)
        self.times = [t for t in self.times if t >= cutoff]
        return before - len(self.times)


class BrokenStore:
    def oldest(self) -> datetime | None:
        raise OSError(5, "I/O error")

    def purge_before(self, cutoff: datetime) -> int:
        raise OSError(5, "I/O error")


class FakeClock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def now(self) -> datetime:
        return self.t


CONFIG = RetentionConfig(non_hit_reads_s=3600, hit_reads_s=31 * 86400, images_s=600, logs_s=7 * 86400,
                         purge_interval_s=300)


def stores() -> dict[str, MemoryStore]:
    return {
        "non_hit_reads": MemoryStore(T0, T0 + 30 * timedelta(minutes=1), T0 + 2 * HOUR),
        "hit_reads": MemoryStore(T0 - 40 * DAY, T0 - 2 * DAY),
        "images": MemoryStore(T0 + timedelta(minutes=100), T0 + 2 * HOUR),
        "logs": MemoryStore(T0 - 8 * DAY, T0 - DAY),
    }


def test_purge_removes_exactly_what_is_older_than_each_class_allows() -> None:
    s = stores()
    retention = Retention(CONFIG, s)  # type: ignore[arg-type]
    now = T0 + 2 * HOUR
    assert retention.purge(now) == {"non_hit_reads": 2, "hit_reads": 1, "images": 1, "logs": 1}
    assert retention.oldest(now) == {"non_hit_reads": 0.0, "hit_reads": 2 * 86400 + 7200.0, "images": 0.0,
                                     "logs": 86400 + 7200.0}
    for data_class, store in s.items():
        limit = retention.max_age(data_class)  # type: ignore[arg-type]
        assert all(now - t <= limit for t in store.times)


def test_zero_max_age_deletes_at_the_next_purge() -> None:
    s = {"non_hit_reads": MemoryStore(T0, T0 + HOUR)}
    retention = Retention(RetentionConfig(non_hit_reads_s=0), s)  # type: ignore[arg-type]
    assert retention.purge(T0 + HOUR + timedelta(milliseconds=1)) == {"non_hit_reads": 2}
    assert retention.oldest(T0 + 2 * HOUR) == {}


def test_purge_runs_at_start_and_then_on_schedule() -> None:
    retention = Retention(CONFIG, stores())  # type: ignore[arg-type]
    assert retention.due(T0)
    assert retention.run_if_due(T0) is not None
    assert retention.run_if_due(T0 + timedelta(seconds=299)) is None
    assert retention.run_if_due(T0 + timedelta(seconds=300)) is not None


def test_one_broken_store_does_not_stop_the_others() -> None:
    s = {"logs": BrokenStore(), "non_hit_reads": MemoryStore(T0)}
    retention = Retention(CONFIG, s)  # type: ignore[arg-type]
    assert retention.purge(T0 + DAY) == {"non_hit_reads": 1}
    assert retention.failures == 1
    assert retention.oldest(T0) == {}


def test_unknown_classes_are_refused() -> None:
    with pytest.raises(ValueError, match="raw_frames"):
        Retention(CONFIG, {"raw_frames": MemoryStore()})  # type: ignore[dict-item]


def test_the_audit_log_is_a_logs_store(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(5):
        log.append(read_id=f"r{i}", fields=["id"], image=False, policy_version="0" * 64, time=T0 + i * DAY)
    retention = Retention(CONFIG, {"logs": log})
    assert retention.purge(T0 + 9 * DAY) == {"logs": 2}
    assert retention.oldest(T0 + 9 * DAY) == {"logs": 7 * 86400.0}
    assert verify(log.path) == (True, None)


def test_run_loop_purges_at_start_until_stopped() -> None:
    s = stores()
    retention = Retention(CONFIG, s)  # type: ignore[arg-type]
    stop = threading.Event()
    stop.set()  # set before start: the loop must not run at all
    retention.run(FakeClock(T0 + DAY), stop)
    assert len(s["non_hit_reads"].times) == 3
    stop.clear()
    thread = threading.Thread(target=retention.run, args=(FakeClock(T0 + DAY), stop))
    thread.start()
    try:
        for _ in range(100):
            if not s["non_hit_reads"].times:
                break
            threading.Event().wait(0.01)
    finally:
        stop.set()
        thread.join(5)
    assert s["non_hit_reads"].times == []


@pytest.mark.parametrize(("payload", "expected"), [
    ({"id": "a"}, {"non_hit_reads"}),
    ({"id": "a", "hotlist_hit": False, "image": {}}, {"non_hit_reads", "images"}),
    ({"id": "a", "hotlist_hit": True}, {"hit_reads"}),
    ({"id": "a", "hotlist_hit": True, "image": {}}, {"hit_reads", "images"}),
])
def test_messages_are_classified_by_hit_and_image(
    payload: dict[str, object], expected: set[str], tmp_path: Path
) -> None:
    msg = OutgoingMessage("a", "t", json.dumps(payload).encode(), T0)
    with Outbox(tmp_path / "o.sqlite", OutboxConfig(max_age_s=31 * 86_400), FakeClock(T0)) as box:
        box.put(msg)
        assert {c for c, store in box.retention_stores().items() if store.oldest() is not None} == expected
