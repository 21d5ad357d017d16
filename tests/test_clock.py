"""Clocks: a replay follows the recording's own time, never going backwards once started."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edge.clock import ReplayClock, monotonic_ns_to_utc

T0 = datetime(2026, 3, 14, 8, 0, tzinfo=UTC)


def test_replay_clock_follows_the_frames_and_never_goes_back() -> None:
    clock = ReplayClock(start=datetime(2030, 1, 1, tzinfo=UTC))
    clock.observe(T0)  # the first frame sets the time, even if earlier than the start guess
    assert clock.now() == T0
    clock.observe(T0 + timedelta(seconds=2))
    clock.observe(T0 + timedelta(seconds=1))
    assert clock.now() == T0 + timedelta(seconds=2)


def test_sensor_timestamps_convert_to_utc() -> None:
    assert monotonic_ns_to_utc(5_000_000_000, now=T0, monotonic_now_ns=6_500_000_000) == T0 - timedelta(seconds=1.5)
