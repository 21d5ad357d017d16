"""Clock: the one place the node reads wall-clock time (a fake in tests)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """UTC wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def monotonic_ns_to_utc(sensor_ns: int, *, now: datetime, monotonic_now_ns: int) -> datetime:
    """Convert a CLOCK_MONOTONIC timestamp (e.g. picamera2's SensorTimestamp) to UTC."""
    return now - timedelta(microseconds=(monotonic_now_ns - sensor_ns) / 1000.0)


def monotonic_ns() -> int:
    return time.monotonic_ns()


class ReplayClock:
    """Time as the recording sees it: the timestamp of the latest frame processed.

    A replay of an old recording then ages, expires and stamps its data as the live node would
    have, and the same recording gives the same output whenever it is replayed.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)  # until the first frame
        self._seen = False

    def now(self) -> datetime:
        return self._now

    def observe(self, timestamp: datetime) -> None:
        """Follow the recording (never backwards once it has started)."""
        if not self._seen or timestamp > self._now:
            self._now = timestamp
            self._seen = True


def iso_ms(when: datetime) -> str:
    """ISO 8601 UTC with millisecond precision and a trailing ``Z`` (naive times are taken as UTC)."""
    t = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
