"""Clock synchronisation: where the verdict comes from, and reads flagged or held while the clock is bad."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from support.fakes import ListOutbox

from edge.config.model import ClockConfig, NodeConfig, PrivacyConfig
from edge.domain import Box, FormatMatch, PlateDetection, PlateRead, PlateText, VehiclePass
from edge.node.clocksync import (
    UNKNOWN,
    AdjtimexProbe,
    ClockGate,
    ClockMonitor,
    ClockState,
    SystemClockProbe,
    parse_chronyc_tracking,
    state_is_bad,
    timex_state,
)
from edge.privacy.stage import PrivacyStage
from edge.publish.schema import Schemas

T0 = datetime(2026, 3, 14, 8, 0, tzinfo=UTC)
NODE = NodeConfig(site="site1", camera="cam1")

TRACKING = """Reference ID    : C0A80001 (ntp.example)
Stratum         : 3
Ref time (UTC)  : Sat Mar 14 07:59:00 2026
System time     : 0.000012345 seconds fast of NTP time
Last offset     : -0.000003 seconds
Leap status     : Normal
"""


@dataclass
class FakeProbe:
    """A ClockProbe whose answer the test sets."""

    state: ClockState
    reads: int = 0

    def read(self) -> ClockState:
        self.reads += 1
        return self.state


class FakeClock:
    def now(self) -> datetime:
        return T0


def make_pass(track_id: int) -> VehiclePass:
    crop = np.zeros((24, 110, 3), np.uint8)
    t = T0 + timedelta(seconds=track_id)
    read = PlateRead(7, t, PlateDetection(Box(10, 20, 110, 24), 0.9), PlateText("AB12CDE", (0.9,) * 7),
                     FormatMatch("AB12CDE", "uk_current", False, "AB12 CDE"), crop)
    return VehiclePass(track_id, "AB12CDE", "AB12 CDE", "uk_current", 0.9, t, t + timedelta(seconds=1), 3, read,
                       np.zeros((90, 160, 3), np.uint8))


def test_chronyc_fast_is_a_positive_offset_and_slow_a_negative_one() -> None:
    state = parse_chronyc_tracking(TRACKING)
    assert state == ClockState(True, pytest.approx(0.012345), "chronyc", "leap status: Normal")  # type: ignore[arg-type]
    slow = parse_chronyc_tracking(TRACKING.replace("fast", "slow"))
    assert slow.offset_ms == pytest.approx(-0.012345)


def test_chronyc_not_synchronised_is_unsynced() -> None:
    state = parse_chronyc_tracking(TRACKING.replace("Normal", "Not synchronised"))
    assert state.synced is False
    with pytest.raises(ValueError, match="Leap status"):
        parse_chronyc_tracking("506 Cannot talk to daemon\n")


def test_a_chronyc_that_cannot_answer_falls_back_to_adjtimex(tmp_path: Path) -> None:
    chronyc = tmp_path / "chronyc"
    chronyc.write_text("#!/bin/sh\necho '506 Cannot talk to daemon' >&2\nexit 1\n")
    chronyc.chmod(0o755)
    fallback = FakeProbe(ClockState(True, 0.5, "adjtimex"))
    assert SystemClockProbe(chronyc=str(chronyc), adjtimex=fallback).read().source == "adjtimex"
    working = tmp_path / "chronyc-ok"
    working.write_text(f"#!/bin/sh\ncat <<'EOF'\n{TRACKING}EOF\n")
    working.chmod(0o755)
    assert SystemClockProbe(chronyc=str(working), adjtimex=fallback).read().source == "chronyc"


def test_kernel_time_error_or_sta_unsync_means_unsynced() -> None:
    assert timex_state(0, 0x0001, 1500).synced is True
    assert timex_state(0, 0x0001, 1500).offset_ms == 1.5  # microseconds
    assert timex_state(0, 0x2001, 1_500_000).offset_ms == 1.5  # STA_NANO: nanoseconds
    assert timex_state(5, 0x0001, 0).synced is False  # TIME_ERROR
    assert timex_state(0, 0x0040, 0).synced is False  # STA_UNSYNC
    assert "STA_UNSYNC" in timex_state(0, 0x0040, 0).unsynced_because  # said as the cause
    assert "TIME_ERROR" in timex_state(5, 0x0001, 0).unsynced_because


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="adjtimex is Linux only")
def test_adjtimex_reads_the_real_kernel_state_without_privilege() -> None:
    state = AdjtimexProbe().read()
    assert state.source == "adjtimex"
    assert isinstance(state.synced, bool)


def test_offset_beyond_the_limit_is_bad_even_when_synchronised() -> None:
    assert not state_is_bad(ClockState(True, 999.0, "t"), 1000.0)
    assert state_is_bad(ClockState(True, -1000.5, "t"), 1000.0)
    assert state_is_bad(ClockState(False, 0.0, "t"), 1000.0)
    assert not state_is_bad(UNKNOWN, 1000.0)  # cannot tell: not flagged, and health leaves it out


def test_monitor_asks_the_probe_at_most_every_check_interval() -> None:
    now = [0.0]
    probe = FakeProbe(ClockState(True, 1.0, "t"))
    monitor = ClockMonitor(probe, ClockConfig(check_interval_s=10), monotonic=lambda: now[0])
    assert not monitor.clock_unsynced()
    probe.state = ClockState(False, None, "t")
    now[0] = 5.0
    assert not monitor.clock_unsynced()  # cached
    now[0] = 10.0
    assert monitor.clock_unsynced()
    assert probe.reads == 2


def _gate(mode: str, probe: FakeProbe) -> tuple[ClockGate, ListOutbox, PrivacyStage]:
    stage = PrivacyStage(PrivacyConfig(), NODE, "anpr/site1/cam1/reads", redactor=None, clock=FakeClock())
    store = ListOutbox()
    monitor = ClockMonitor(probe, ClockConfig(check_interval_s=1, on_unsynced=mode), monotonic=lambda: 0.0)  # type: ignore[arg-type]
    return ClockGate(stage, monitor, store, mode=mode), store, stage  # type: ignore[arg-type]


def test_flag_mode_publishes_unsynced_reads_with_the_flag_and_a_valid_payload() -> None:
    gate, _, _ = _gate("flag", FakeProbe(ClockState(False, None, "t")))
    message = gate.prepare(make_pass(1))
    assert message is not None
    body = json.loads(message.payload)
    assert body["clock_unsynced"] is True
    Schemas().validate("read", body)
    assert gate.flagged == 1


def test_synced_reads_carry_no_flag() -> None:
    gate, _, _ = _gate("flag", FakeProbe(ClockState(True, 0.2, "t")))
    message = gate.prepare(make_pass(1))
    assert message is not None
    assert "clock_unsynced" not in json.loads(message.payload)


def test_hold_mode_keeps_reads_until_the_clock_is_back_then_queues_them_in_order() -> None:
    probe = FakeProbe(ClockState(False, None, "t"))
    gate, store, _ = _gate("hold", probe)
    assert gate.prepare(make_pass(1)) is None
    assert gate.prepare(make_pass(2)) is None
    assert gate.held == 2
    assert store.messages == []
    assert gate.release() == 0  # still unsynced
    probe.state = ClockState(True, 0.1, "t")
    gate._status.refresh()  # type: ignore[attr-defined]  # the health tick's clock check
    assert gate.release() == 2
    seqs = [json.loads(m.payload)["seq"] for m in store.messages]
    assert seqs == [0, 1]
    assert all(json.loads(m.payload)["clock_unsynced"] is True for m in store.messages)
    fresh = gate.prepare(make_pass(3))
    assert fresh is not None
    assert json.loads(fresh.payload)["seq"] == 2


def test_held_reads_are_queued_flagged_at_shutdown_rather_than_lost() -> None:
    gate, store, _ = _gate("hold", FakeProbe(ClockState(False, None, "t")))
    gate.prepare(make_pass(1))
    gate.close()
    assert len(store.messages) == 1
    assert gate.held == 0


def test_the_hold_is_bounded_and_drops_are_counted() -> None:
    stage = PrivacyStage(PrivacyConfig(), NODE, "anpr/site1/cam1/reads", redactor=None, clock=FakeClock())
    monitor = ClockMonitor(FakeProbe(ClockState(False, None, "t")), ClockConfig())
    gate = ClockGate(stage, monitor, ListOutbox(), mode="hold", max_held=2)
    for i in range(5):
        gate.prepare(make_pass(i))
    assert gate.held == 2
    assert gate.held_dropped == 3
