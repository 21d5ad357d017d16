"""Health: every measure the platform has, none it does not; valid against anpr.health/1; published retained."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support.broker import MosquittoBroker, Subscriber
from support.reads import lab_mqtt, make_read, node_config, outbox_config

from edge.clock import SystemClock
from edge.node.clocksync import UNKNOWN, ClockState
from edge.node.health import (
    HealthCollector,
    HealthReporter,
    PlatformPaths,
    Versions,
    cpu_temp_c,
    mem_rss_mb,
    percentile,
    summary,
    throttled,
)
from edge.outbox.store import Outbox
from edge.pipeline import PipelineStats
from edge.publish.mqtt import MqttPublisher
from edge.publish.schema import Schemas

SHA = "a" * 64


class ClockView:
    def __init__(self, state: ClockState) -> None:
        self.current = state

    def state(self) -> ClockState:
        return self.current


class Published:
    reads_published = 42


def pi_tree(root: Path) -> PlatformPaths:
    """A /sys and /proc as a Raspberry Pi has them."""
    for i, (kind, temp) in enumerate((("acpitz", "27800"), ("cpu-thermal", "61234"))):
        zone = root / "thermal" / f"thermal_zone{i}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(temp + "\n")
    (root / "get_throttled").write_text("50005\n")
    (root / "status").write_text("Name:\tpython3\nVmPeak:\t  300000 kB\nVmRSS:\t  153600 kB\n")
    return PlatformPaths(thermal_root=root / "thermal", throttled_file=root / "get_throttled",
                         proc_status=root / "status", vcgencmd=None)


def bare_tree(root: Path) -> PlatformPaths:
    """A platform with none of it (a laptop or CI container without /sys/class/thermal)."""
    return PlatformPaths(thermal_root=root / "none", throttled_file=root / "none", proc_status=root / "none",
                         vcgencmd=None)


def stats_with_latencies() -> PipelineStats:
    stats = PipelineStats(frames=250, frames_dropped=3)
    stats.detect_ms.extend(float(v) for v in range(1, 101))
    stats.ocr_ms.extend([5.0, 6.0, 7.0, 50.0])
    return stats


def collector(tmp_path: Path, paths: PlatformPaths, **kw: Any) -> HealthCollector:
    stats = kw.pop("stats", stats_with_latencies())
    return HealthCollector(
        stats=lambda: stats, fps_configured=25.0, state_dir=tmp_path,
        versions=Versions("0.1.0", SHA, {"plate_ocr": "b" * 64}), paths=paths, **kw,
    )


def full_message(body: dict[str, Any]) -> dict[str, Any]:
    return {"schema": "anpr.health/1", "site": "site1", "camera": "cam1", "time": "2026-03-14T08:00:00.000Z", **body}


def test_cpu_zone_is_chosen_by_its_type_not_its_number(tmp_path: Path) -> None:
    paths = pi_tree(tmp_path)
    assert cpu_temp_c(paths.thermal_root) == 61.2
    assert cpu_temp_c(tmp_path / "missing") is None


def test_throttled_comes_from_firmware_sysfs_or_vcgencmd(tmp_path: Path) -> None:
    assert throttled(pi_tree(tmp_path).throttled_file, None) == 0x50005
    vcgencmd = tmp_path / "vcgencmd"
    vcgencmd.write_text("#!/bin/sh\necho throttled=0x4\n")
    vcgencmd.chmod(0o755)
    assert throttled(tmp_path / "none", str(vcgencmd)) == 4
    assert throttled(tmp_path / "none", None) is None


def test_rss_is_read_from_proc(tmp_path: Path) -> None:
    assert mem_rss_mb(pi_tree(tmp_path).proc_status) == 150.0
    real = mem_rss_mb(Path("/proc/self/status"))
    assert real is None or real > 10


def test_percentiles_use_nearest_rank() -> None:
    assert percentile(range(1, 101), 50) == 50
    assert percentile(range(1, 101), 95) == 95
    assert percentile([], 50) is None


def test_health_on_a_pi_has_every_measure_and_validates(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite", outbox_config(), SystemClock()) as outbox:
        outbox.put(make_read(node_config(), 0))
        body = collector(
            tmp_path, pi_tree(tmp_path), outbox=outbox, outbox_dropped=lambda: outbox.dropped.total,
            publisher=Published(), privacy_stats=lambda: {"redaction_failures": 1, "images_dropped": 2, "passes": 9},
            clock=ClockView(ClockState(True, 3.25, "chronyc")), oldest=lambda: {"logs": 12.0},
            extras=lambda: {"notify_dropped": 4, "storage_error": "outbox: database or disk is full",
                            "passes_unstored": 2, "acks_unsaved": 1, "outbox_set_aside": "outbox.sqlite.damaged-x",
                            "audit_breaks": 1, "audit_unwritten": 3, "audit_head": {"n": 7, "hash": "c" * 64},
                            "hotlist_problem": "expired", "decode_failures": 3, "frames_refused": 1},
        ).collect()
    Schemas().validate("health", full_message(body))
    assert body["fps_configured"] == 25.0
    assert body["frames_dropped"] == 3
    assert (body["detect_ms_p50"], body["detect_ms_p95"]) == (50.0, 95.0)
    assert (body["ocr_ms_p50"], body["ocr_ms_p95"]) == (6.0, 50.0)
    assert body["outbox_depth"] == 1
    assert body["outbox_oldest_s"] > 0
    assert body["outbox_dropped"] == 0
    assert body["reads_published"] == 42
    assert (body["redaction_failures"], body["images_dropped"]) == (1, 2)
    assert (body["cpu_temp_c"], body["throttled"], body["mem_rss_mb"]) == (61.2, 0x50005, 150.0)
    assert body["disk_free_mb"] > 0
    assert (body["clock_synced"], body["clock_offset_ms"]) == (True, 3.25)
    assert set(body["oldest"]) == {"outbox", "logs"}
    assert body["notify_dropped"] == 4
    assert body["versions"] == {"software": "0.1.0", "config_sha256": SHA, "models": {"plate_ocr": "b" * 64}}


def test_measures_a_platform_lacks_are_absent_not_invented(tmp_path: Path) -> None:
    body = collector(tmp_path, bare_tree(tmp_path), clock=ClockView(UNKNOWN),
                     stats=PipelineStats()).collect()
    Schemas().validate("health", full_message(body))
    for absent in ("cpu_temp_c", "throttled", "mem_rss_mb", "clock_synced", "clock_offset_ms", "detect_ms_p50",
                   "ocr_ms_p95", "outbox_depth", "reads_published", "redaction_failures", "oldest"):
        assert absent not in body, absent


def test_clock_off_by_more_than_the_limit_reports_unsynced(tmp_path: Path) -> None:
    body = collector(tmp_path, bare_tree(tmp_path), clock=ClockView(ClockState(True, 1500.0, "chronyc")),
                     max_offset_ms=1000.0).collect()
    assert body["clock_synced"] is False
    assert body["clock_offset_ms"] == 1500.0
    assert "CLOCK NOT SYNCED" in summary(body)


def test_fps_is_measured_over_the_last_interval(tmp_path: Path) -> None:
    now = [1000.0]
    stats = PipelineStats()
    c = collector(tmp_path, bare_tree(tmp_path), stats=stats, monotonic=lambda: now[0])
    c.collect()
    stats.frames += 100
    now[0] += 10.0
    assert c.collect()["fps"] == 10.0
    now[0] += 10.0
    assert c.collect()["fps"] == 0.0  # a stalled camera shows as 0 fps


def test_reporter_reports_on_demand_and_writes_health_json(tmp_path: Path) -> None:
    got: list[dict[str, Any]] = []
    reporter = HealthReporter(collector(tmp_path, bare_tree(tmp_path)), interval_s=3600, sinks=[got.append],
                              json_path=tmp_path / "health.json")
    with reporter:
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(got) == 1  # one at start
        reporter.request()
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(got) == 2
    assert json.loads((tmp_path / "health.json").read_text())["fps_configured"] == 25.0


def test_a_failing_sink_is_counted_and_does_not_stop_reporting(tmp_path: Path) -> None:
    def broken(body: dict[str, Any]) -> None:
        raise RuntimeError("broker gone")

    got: list[dict[str, Any]] = []
    reporter = HealthReporter(collector(tmp_path, bare_tree(tmp_path)), interval_s=60, sinks=[broken, got.append])
    reporter.report()
    assert reporter.failures == 1
    assert len(got) == 1


def test_losing_clock_sync_is_reported_at_once(tmp_path: Path) -> None:
    clock = ClockView(ClockState(True, 1.0, "t"))
    got: list[dict[str, Any]] = []
    reporter = HealthReporter(collector(tmp_path, bare_tree(tmp_path), clock=clock), interval_s=3600,
                              sinks=[got.append], tick_s=0.02, clock=clock)
    with reporter:
        time.sleep(0.1)
        clock.current = ClockState(False, None, "t")
        deadline = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert [b["clock_synced"] for b in got[:2]] == [True, False]


@pytest.mark.integration
def test_health_is_published_retained_and_valid_on_a_real_broker(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    node = node_config(state_dir=str(tmp_path))
    with Outbox(tmp_path / "o.sqlite", outbox_config(), SystemClock()) as outbox, MqttPublisher(
        lab_mqtt(mosquitto.host, mosquitto.port), node, outbox, SystemClock(), "0.1.0"
    ) as publisher:
        assert publisher.wait_connected(10)
        c = collector(tmp_path, pi_tree(tmp_path), outbox=outbox, publisher=publisher,
                      clock=ClockView(ClockState(False, None, "adjtimex")))
        HealthReporter(c, interval_s=60, sinks=[publisher.publish_health]).report()
        time.sleep(0.3)
    # a subscriber that comes later still gets it: retained
    late = Subscriber(mosquitto.host, mosquitto.port, "anpr/site1/cam1/health").start()
    try:
        got = late.wait_for(1, 5)
    finally:
        late.stop()
    assert got, mosquitto.log_tail()
    assert got[0].retain
    message = Schemas().validate_bytes("health", got[0].payload)
    assert message["clock_synced"] is False
    assert datetime.fromisoformat(message["time"].replace("Z", "+00:00")).tzinfo == UTC


def test_the_firmware_throttled_file_is_found_on_a_pi_4_and_a_pi_5_layout(tmp_path: Path) -> None:
    from edge.node.health import firmware_throttled_file

    pi5 = tmp_path / "pi5"
    (pi5 / "soc@107c000000" / "soc@107c000000:firmware").mkdir(parents=True)
    (pi5 / "soc@107c000000" / "soc@107c000000:firmware" / "get_throttled").write_text("0\n")
    assert throttled(firmware_throttled_file(pi5), None) == 0
    assert firmware_throttled_file(tmp_path / "laptop").name == "get_throttled"
    assert throttled(firmware_throttled_file(tmp_path / "laptop"), None) is None
