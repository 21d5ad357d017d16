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
