"""A damaged outbox file: found by SQLite's own check, moved aside, and every row SQLite can still read carried
into the outbox that replaces it (edge/outbox/salvage.py, edge/outbox/store.py)."""

from __future__ import annotations

import json
import os
import random
import sqlite3
from pathlib import Path

import pytest
from support.reads import T0, SettableClock, make_read, node_config, outbox_config

from edge.outbox.salvage import damaged_reason
from edge.outbox.store import JournalEntry, Outbox

NODE = node_config()
HASH = "ab" * 32


def entry(n: int) -> JournalEntry:
    return JournalEntry(n, json.dumps({"n": n, "kind": "read"}).encode() + b"\n", (n, HASH))


def fill(path: Path, n: int) -> list[str]:
    """An outbox of ``n`` reads numbered 0.., each with its audit entry, and one read rejected (a counter)."""
    with Outbox(path, outbox_config(), SettableClock()) as box:
        for seq in range(n):
            box.put(make_read(NODE, seq, base=T0, pad=64), seq=seq, journal=[entry(seq)])
        box.reject(make_read(NODE, 0, base=T0).message_id, "a test")
        return [m.message_id for m in box.pending(10 * n)]


def overwrite_page(path: Path, page: int) -> None:
    size = sqlite3.connect(path).execute("PRAGMA page_size").fetchone()[0]
    with path.open("r+b") as f:
        f.seek((page - 1) * size + 8)
        f.write(random.Random(page).randbytes(size - 8))


def index_root(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'messages_capture_order'").fetchone()[0])
    finally:
        db.close()


def test_a_sound_outbox_is_not_damaged_and_one_quick_check_faults_is(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    fill(path, 50)
    assert damaged_reason(path) is None
    overwrite_page(path, index_root(path))
    reason = damaged_reason(path)
    assert reason is not None and "quick_check" in reason


def test_a_damaged_index_loses_nothing_every_row_goes_into_the_new_outbox(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "outbox.sqlite"
    ids = fill(path, 120)
    overwrite_page(path, index_root(path))  # the table's own pages are sound: every row is readable
    with Outbox(path, outbox_config(), SettableClock()) as box:
        assert [m.message_id for m in box.pending(1000)] == ids, "same messages, same capture order"
        assert box.recorded().next_seq == 120
        assert box.journal() == [entry(n).line for n in range(120)], "audit entries not yet in the log go on"
        assert box.recorded().audit_head == (119, HASH)
        assert box.dropped.rejected == 1, "counters carried over"
        assert len(box.set_aside_files()) == 1
        assert box.size_bytes() > 0
    assert "119 unsent message(s) and 120 audit entries recovered" in caplog.text
    assert damaged_reason(path) is None


@pytest.mark.parametrize("damage", ["cut to half its size", "20 blocks of random bytes past 4096"])
def test_a_cut_or_scribbled_outbox_opens_with_the_reads_sqlite_can_still_read(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "outbox.sqlite"
    ids = fill(path, 300)
    size = path.stat().st_size
    if damage.startswith("cut"):
        os.truncate(path, size // 2)
    else:
        rnd = random.Random(19)
        with path.open("r+b") as f:
            for _ in range(20):
                f.seek(rnd.randrange(4096, size - 64))
                f.write(rnd.randbytes(64))
    with Outbox(path, outbox_config(), SettableClock()) as box:  # was: "cannot be opened: ... malformed", exit 6
        kept = [m.message_id for m in box.pending(1000)]
        assert kept and set(kept) <= set(ids)
        assert box.recorded().next_seq >= max(ids.index(k) for k in kept) + 1
        assert box.set_aside_files()[0].startswith("outbox.sqlite.damaged-")


def test_a_crash_before_the_salvaged_outbox_is_renamed_into_place_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    ids = fill(path, 40)
    overwrite_page(path, index_root(path))
    Outbox(path, outbox_config(), SettableClock()).open().close()
    os.replace(path, path.with_name("outbox.sqlite.salvaged"))  # as left by a crash after setting the damaged aside
    with Outbox(path, outbox_config(), SettableClock()) as box:
        assert [m.message_id for m in box.pending(1000)] == ids
        assert len(box.set_aside_files()) == 1
    assert not path.with_name("outbox.sqlite.salvaged").exists()


def test_a_salvaged_file_left_beside_the_damaged_outbox_is_made_again(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    ids = fill(path, 40)
    overwrite_page(path, index_root(path))
    path.with_name("outbox.sqlite.salvaged").write_bytes(b"half made")  # a crash while it was being written
    with Outbox(path, outbox_config(), SettableClock()) as box:
        assert [m.message_id for m in box.pending(1000)] == ids
    assert not path.with_name("outbox.sqlite.salvaged").exists()
