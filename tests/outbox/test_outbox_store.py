"""The durable outbox: survives reopen, capture order, ack deletes, bounds drop oldest and count it."""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from support.reads import T0, SettableClock, make_read, node_config, outbox_config

from edge.errors import StateError
from edge.outbox.store import Outbox

NODE = node_config()


def test_put_survives_reopen_and_pending_is_in_capture_order(tmp_path: Path) -> None:
    clock = SettableClock()
    path = tmp_path / "outbox.sqlite"
    with Outbox(path, outbox_config(), clock) as box:
        for seq in (3, 1, 2):  # inserted out of capture order
            box.put(make_read(NODE, seq, base=T0))
    with Outbox(path, outbox_config(), clock) as box:
        assert [m.message_id.split(".")[2] for m in box.pending(10)] == ["1", "2", "3"]
        assert box.depth() == 3
        assert box.pending(2)[0].payload == make_read(NODE, 1, base=T0).payload


def test_same_capture_time_keeps_insertion_order(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", outbox_config(), SettableClock()) as box:
        for seq in (5, 4, 6):
            box.put(make_read(NODE, seq, at=T0))
        assert [int(m.message_id.split(".")[2]) for m in box.pending(10)] == [5, 4, 6]


def test_ack_deletes_only_that_message_and_reput_of_known_id_is_ignored(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", outbox_config(), SettableClock()) as box:
        msgs = [make_read(NODE, s, base=T0) for s in range(3)]
        for m in msgs:
            box.put(m)
        box.put(msgs[0])
        assert box.depth() == 3
        box.ack(msgs[1].message_id)
        assert [m.message_id for m in box.pending(10)] == [msgs[0].message_id, msgs[2].message_id]
        box.ack("not-there")
        assert box.depth() == 2


def test_byte_bound_drops_oldest_first_and_counts_them(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = outbox_config(max_bytes=1_000_000)
    with Outbox(tmp_path / "o.sqlite", cfg, SettableClock()) as box:
        one = len(make_read(NODE, 0, base=T0).payload) + 200_000
        pad = "x" * 200_000
        with caplog.at_level(logging.WARNING, logger="edge.outbox.store"):
            for seq in range(8):
                m = make_read(NODE, seq, base=T0)
                box.put(type(m)(m.message_id, m.topic, m.payload + pad.encode(), m.captured_at, m.kind))
        kept = [int(m.message_id.split(".")[2]) for m in box.pending(100)]
        assert kept == list(range(8 - len(kept), 8))  # the newest survive
        assert box.size_bytes() <= cfg.max_bytes
        assert len(kept) == cfg.max_bytes // (one + 40)  # size counts payload + topic + id
        assert box.dropped.by_bytes == 8 - len(kept)
        assert "max_bytes" in caplog.text
    with Outbox(tmp_path / "o.sqlite", cfg, SettableClock()) as box:
        assert box.dropped.by_bytes == 8 - len(kept)  # counters persist


def test_age_bound_drops_expired_reads_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = SettableClock(T0 + timedelta(seconds=30))
    with Outbox(tmp_path / "o.sqlite", outbox_config(max_age_s=60), clock) as box:
        for seq in range(10):
            box.put(make_read(NODE, seq, at=T0 + timedelta(seconds=seq * 10)))
        assert box.depth() == 10
        assert box.oldest_age_s() == pytest.approx(30.0)
        clock.advance(45)  # now T0+75: reads at T0+0 and T0+10 are older than 60 s
        with caplog.at_level(logging.WARNING, logger="edge.outbox.store"):
            pending = box.pending(100)
        assert [int(m.message_id.split(".")[2]) for m in pending] == list(range(2, 10))
        assert box.dropped.by_age == 2
        assert box.dropped.total == 2
        assert "max_age_s" in caplog.text


def test_reject_removes_and_counts(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", outbox_config(), SettableClock()) as box:
        m = make_read(NODE, 0, base=T0)
        box.put(m)
        box.reject(m.message_id, "field 'foo' not allowed")
        assert box.depth() == 0
        assert box.dropped.rejected == 1
        assert box.oldest_age_s() is None


def test_missing_state_dir_raises_state_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(StateError, match=str(missing)), Outbox(missing / "o.sqlite", outbox_config(), SettableClock()):
        pass


def _make_read_only(directory: Path) -> bool:
    """chmod for a normal user; as root (which ignores modes) the immutable flag, if allowed here."""
    if os.geteuid() != 0:
        directory.chmod(0o500)
        return True
    return subprocess.run(["chattr", "+i", str(directory)], capture_output=True, check=False).returncode == 0


def _make_writable(directory: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(directory)], capture_output=True, check=False)
    directory.chmod(0o700)


def test_read_only_state_dir_raises_state_error(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    if not _make_read_only(ro):
        pytest.skip("cannot make a directory read-only for root here (chattr +i not permitted)")
    try:
        with pytest.raises(StateError, match=f"{ro}.*not writable"), Outbox(
            ro / "o.sqlite", outbox_config(), SettableClock()
        ):
            pass
    finally:
        _make_writable(ro)


def test_unopened_outbox_refuses_use(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", outbox_config(), SettableClock())
    with pytest.raises(StateError, match="not open"):
        box.depth()


def test_writer_and_dispatcher_threads_together_lose_nothing(tmp_path: Path) -> None:
    acked: list[str] = []
    with Outbox(tmp_path / "o.sqlite", outbox_config(), SettableClock()) as box:
        done = threading.Event()

        def writer() -> None:
            for seq in range(300):
                box.put(make_read(NODE, seq, base=T0))
            done.set()

        t = threading.Thread(target=writer)
        t.start()
        while not (done.is_set() and box.depth() == 0):
            batch = box.pending(50)
            box.ack_many([m.message_id for m in batch])
            acked.extend(m.message_id for m in batch)
        t.join()
    assert len(acked) == 300
    assert len(set(acked)) == 300


def test_pending_leaves_out_the_messages_in_flight(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", outbox_config(), SettableClock()) as box:
        msgs = [make_read(NODE, seq, base=T0) for seq in range(4)]
        for m in msgs:
            box.put(m)
        got = box.pending(2, exclude={msgs[0].message_id, msgs[2].message_id})
        assert [m.message_id for m in got] == [msgs[1].message_id, msgs[3].message_id]


def test_retention_purges_each_class_of_unpublished_read_at_its_own_age(tmp_path: Path) -> None:
    from edge.config.model import RetentionConfig
    from edge.privacy.retention import Retention

    clock = SettableClock()
    hour = 3600.0
    with Outbox(tmp_path / "o.sqlite", outbox_config(max_age_s=31 * 86_400), clock) as box:
        box.put(make_read(NODE, 0, at=T0))  # a plain read
        box.put(make_read(NODE, 1, at=T0, extra={"hotlist_hit": True}))  # a hit
        box.put(make_read(NODE, 2, at=T0, extra={"hotlist_hit": True, "image": {"kind": "plate_patch"}}))
        box.put(make_read(NODE, 3, at=T0 + timedelta(hours=5)))  # younger than every limit
        retention = Retention(
            RetentionConfig(non_hit_reads_s=4 * hour, hit_reads_s=10 * hour, images_s=2 * hour),
            box.retention_stores(),
        )
        clock.advance(6 * hour)
        assert retention.oldest(clock.now()) == {"non_hit_reads": 6 * hour, "hit_reads": 6 * hour, "images": 6 * hour}
        assert retention.purge(clock.now()) == {"non_hit_reads": 1, "hit_reads": 0, "images": 1}
        assert [m.message_id.split(".")[2] for m in box.pending(10)] == ["1", "3"]  # the hit stays, its image went
        assert box.dropped.by_age == 2
        clock.advance(5 * hour)
        retention.purge(clock.now())
        assert [m.message_id.split(".")[2] for m in box.pending(10)] == []
