"""The ledger: a read, its sequence number and its audit entry commit together; every crash window between the
writes leaves a state the next start turns into a complete, verifiable log with no sequence number used twice;
damage to the audit log or the outbox is kept aside, recorded, and survived."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sqlite3
from pathlib import Path

import pytest
from support.reads import T0, SettableClock, make_read, node_config, outbox_config

from edge.domain import AuditNote, OutgoingMessage
from edge.errors import StateError
from edge.node.sequence import MAX_SEQ, SequenceFile
from edge.outbox.ledger import Ledger, journal_entry
from edge.outbox.store import Outbox, recorded_audit_head
from edge.privacy import audit as audit_cli
from edge.privacy.audit import AuditLog, check, verify

NODE = node_config()
POLICY = "ab" * 32


def read(seq: int) -> OutgoingMessage:
    message = make_read(NODE, seq, base=T0)
    return dataclasses.replace(message, seq=seq, audit=AuditNote(("camera", "id", "seq", "site", "time"), False,
                                                                 POLICY))


class Node:
    """The state directory as a node opens it: outbox, audit log, sequence file, ledger."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.clock = SettableClock()
        self.outbox = Outbox(state / "outbox.sqlite", outbox_config(), self.clock).open()
        self.audit = AuditLog(state / "audit.jsonl")
        self.seq = SequenceFile(state / "seq")
        self.ledger = Ledger(self.outbox, sequence=self.seq, audit=self.audit, clock=self.clock)
        self.next_seq = self.ledger.open()

    def put(self, n: int) -> list[int]:
        seqs = list(range(self.next_seq, self.next_seq + n))
        for seq in seqs:
            self.ledger.put(read(seq))
        self.next_seq += n
        return seqs

    def close(self) -> None:
        self.outbox.close()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


def audited(state: Path) -> list[str]:
    return [json.loads(line)["read_id"] for line in (state / "audit.jsonl").read_text().splitlines()
            if json.loads(line)["kind"] == "read"]


def stored(state: Path) -> list[str]:
    with Outbox(state / "outbox.sqlite", outbox_config(), SettableClock()) as box:
        return [m.message_id for m in box.pending(1000)]


def test_a_read_its_sequence_number_and_its_audit_entry_commit_together(state: Path) -> None:
    node = Node(state)
    node.put(3)
    recorded = node.outbox.recorded()
    assert recorded.next_seq == 3
    assert recorded.audit_head == node.audit.head
    assert audited(state) == stored(state) == [read(s).message_id for s in range(3)]
    assert (state / "seq").read_text() == "3"
    assert check(state / "audit.jsonl", recorded_audit_head(state / "outbox.sqlite")).clean
    node.close()
    assert Node(state).next_seq == 3


def test_killed_after_reserving_the_number_before_the_commit_leaves_a_gap_not_a_repeat(state: Path) -> None:
    node = Node(state)
    node.put(2)
    node.seq.reserve(3)  # the ledger's first write for seq 2; the kill comes before the transaction
    node.close()
    again = Node(state)
    assert again.next_seq == 3
    assert audited(state) == stored(state) == [read(s).message_id for s in range(2)]


def test_killed_after_the_commit_before_the_audit_append_the_entry_is_written_at_the_next_start(state: Path) -> None:
    node = Node(state)
    node.put(2)
    message = read(2)
    node.seq.reserve(3)
    assert message.audit is not None
    draft = node.audit.draft(read_id=message.message_id, fields=message.audit.fields, image=False,
                             policy_version=POLICY, time=T0)
    node.outbox.put(message, seq=2, journal=[journal_entry(draft)])  # committed; killed before the append
    node.close()
    assert audited(state) == [read(s).message_id for s in range(2)]
    again = Node(state)
    assert again.next_seq == 3, "seq 2 was committed: never used again"
    assert audited(state) == stored(state) == [read(s).message_id for s in range(3)]
    assert check(state / "audit.jsonl").clean
    assert again.audit.faults.breaks == 0


def test_a_torn_audit_append_is_set_aside_and_rewritten_from_the_outbox_without_a_break(state: Path) -> None:
    node = Node(state)
    node.put(2)
    message = read(2)
    assert message.audit is not None
    draft = node.audit.draft(read_id=message.message_id, fields=message.audit.fields, image=False,
                             policy_version=POLICY, time=T0)
    node.outbox.put(message, seq=2, journal=[journal_entry(draft)])
    with (state / "audit.jsonl").open("ab") as f:
        f.write(draft.line[: len(draft.line) // 2])  # the power went during the write
    node.close()
    again = Node(state)
    assert audited(state) == [read(s).message_id for s in range(3)]
    assert check(state / "audit.jsonl").clean
    assert len(again.audit.faults.set_aside) == 1
    assert Path(again.audit.faults.set_aside[0]).read_bytes() == draft.line[: len(draft.line) // 2]


def test_a_damaged_last_line_is_kept_aside_and_rewritten_from_the_outbox(state: Path) -> None:
    node = Node(state)
    node.put(5)
    node.close()
    lines = (state / "audit.jsonl").read_bytes().splitlines(keepends=True)
    (state / "audit.jsonl").write_bytes(b"".join(lines[:-1]) + lines[-1][:40] + b"\x00" * 20)  # power cut, full disk
    again = Node(state)  # the old node stopped here with exit 6, reads stuck in its outbox
    again.put(1)
    assert check(state / "audit.jsonl", recorded_audit_head(state / "outbox.sqlite")).clean
    assert audited(state) == [read(s).message_id for s in range(6)]
    assert len(list(state.glob("audit.jsonl.damaged-*"))) == 1


def test_a_damaged_last_line_no_one_can_restore_is_kept_aside_recorded_as_a_break_and_the_node_carries_on(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = Node(state)
    node.put(5)
    node.close()
    with sqlite3.connect(state / "outbox.sqlite") as db:
        db.execute("DELETE FROM journal")  # its entry already forgotten by the outbox: nothing can restore it
    lines = (state / "audit.jsonl").read_bytes().splitlines(keepends=True)
    (state / "audit.jsonl").write_bytes(b"".join(lines[:-1]) + b'{"kind":"read","n":4,"fie\x00\x00\n')
    again = Node(state)  # the old node stopped here with exit 6, reads stuck in its outbox
    again.put(2)
    report = check(state / "audit.jsonl", recorded_audit_head(state / "outbox.sqlite"))
    assert report.ok, report
    assert len(report.breaks) == 1
    assert "set aside" in report.breaks[0].reason
    assert again.outbox.recorded().audit_breaks == 1
    assert audited(state) == [read(s).message_id for s in (0, 1, 2, 3, 5, 6)]
    aside = list(state.glob("audit.jsonl.damaged-*"))
    assert len(aside) == 1
    assert aside[0].read_bytes().startswith(b'{"kind":"read","n":4')
    parser = argparse.ArgumentParser()
    audit_cli.configure_parser(parser)
    assert audit_cli.main(parser.parse_args([str(state / "audit.jsonl")])) == 1
    out = capsys.readouterr().out
    assert "chain intact" in out
    assert "1 recorded break" in out
    assert "BREAK at line 5" in out


def test_deleting_head_together_with_the_last_lines_is_detected_by_verify_and_recorded_at_start(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = Node(state)
    node.put(5)
    node.put(1)
    node.close()
    lines = (state / "audit.jsonl").read_text().splitlines(keepends=True)
    (state / "audit.jsonl").write_text("".join(lines[:-2]))
    (state / "audit.jsonl.head").unlink()
    assert verify(state / "audit.jsonl") == (True, None), "the file alone cannot tell"
    report = check(state / "audit.jsonl", recorded_audit_head(state / "outbox.sqlite"))
    assert not report.ok
    assert "cut from the end" in report.detail
    parser = argparse.ArgumentParser()
    audit_cli.configure_parser(parser)
    assert audit_cli.main(parser.parse_args([str(state / "audit.jsonl")])) == 1  # finds outbox.sqlite beside it
    assert "cut from the end" in capsys.readouterr().out
    again = Node(state)
    report = check(state / "audit.jsonl", recorded_audit_head(state / "outbox.sqlite"))
    assert report.ok
    assert [b.reason for b in report.breaks] == ["entry 4 is missing before entry 5"]
    assert audited(state) == [read(s).message_id for s in (0, 1, 2, 3, 5)], "entry 5 came back from the outbox"
    assert again.next_seq == 6


def test_a_sequence_file_beyond_the_schema_bound_or_not_a_number_is_refused(state: Path) -> None:
    seq = state / "seq"
    for bad in ("1" * 31, str(MAX_SEQ + 1), "12a", "", "-4", "٣"):
        seq.write_text(bad)
        with pytest.raises(StateError, match="not a sequence number"):
            SequenceFile(seq).load()
    seq.write_text(f"{MAX_SEQ}\n")
    assert SequenceFile(seq).load() == MAX_SEQ
    with pytest.raises(StateError, match="cannot number more reads"):
        SequenceFile(seq).reserve(MAX_SEQ + 2)


def test_the_next_number_is_the_larger_of_the_sequence_file_and_the_outbox(state: Path) -> None:
    node = Node(state)
    node.put(3)
    node.close()
    (state / "seq").unlink()  # either record alone is enough
    assert Node(state).next_seq == 3
    (state / "seq").write_text("10")
    assert Node(state).next_seq == 10


@pytest.mark.parametrize("damage", [b"", b"not a database at all\n" * 10])
def test_a_truncated_or_overwritten_outbox_is_set_aside_loudly_and_numbering_goes_on(
    state: Path, damage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    node = Node(state)
    node.put(3)
    node.close()
    (state / "outbox.sqlite").write_bytes(damage)
    again = Node(state)
    assert "is damaged" in caplog.text
    assert again.outbox.set_aside_files() and again.outbox.set_aside_files()[0].startswith("outbox.sqlite.damaged-")
    assert again.outbox.depth() == 0
    assert again.next_seq == 3, "the sequence file carries the numbering over"
    again.put(1)
    assert check(state / "audit.jsonl").clean


@pytest.mark.parametrize("damage", ["cut to half its size", "20 blocks of random bytes past 4096"])
def test_an_outbox_sqlite_cannot_read_is_set_aside_its_readable_reads_kept_numbered_and_audited_once(
    state: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    node = Node(state)
    sent = node.put(200)
    node.close()
    path = state / "outbox.sqlite"
    size = path.stat().st_size
    if damage.startswith("cut"):
        os.truncate(path, size // 2)
    else:
        rnd = random.Random(6)
        with path.open("r+b") as f:
            for _ in range(20):
                f.seek(rnd.randrange(4096, size - 64))
                f.write(rnd.randbytes(64))
    again = Node(state)  # was: StateError "cannot be opened: database disk image is malformed" on every start
    assert "is damaged" in caplog.text and "recovered" in caplog.text
    assert again.outbox.set_aside_files()[0].startswith("outbox.sqlite.damaged-")
    kept = stored(state)
    assert kept and set(kept) <= {read(seq).message_id for seq in sent}
    assert again.next_seq == 200, "no number is used twice"
    again.put(1)
    assert check(state / "audit.jsonl", recorded_audit_head(state / "outbox.sqlite")).clean
    assert audited(state) == [read(seq).message_id for seq in range(201)], "each read audited once"


@pytest.mark.parametrize("name", ["audit.jsonl", "audit.jsonl.head", "outbox.sqlite", "outbox.sqlite-wal",
                                  "outbox.sqlite-shm", "seq"])
def test_a_state_file_that_is_a_symbolic_link_is_refused_and_the_file_it_points_to_is_left_alone(
    state: Path, tmp_path: Path, name: str
) -> None:
    node = Node(state)
    node.put(2)
    node.close()
    target = tmp_path / "elsewhere.txt"
    target.write_bytes(b"someone else's file\n")
    target.chmod(0o644)
    (state / name).unlink(missing_ok=True)
    (state / name).symlink_to(target)  # was: audit.jsonl's target rewritten as the audit log and set 0600
    with pytest.raises(StateError, match=rf"{name}' is a symbolic link"):
        Node(state)
    assert target.read_bytes() == b"someone else's file\n"
    assert target.stat().st_mode & 0o777 == 0o644


def test_a_new_outbox_never_exists_half_made(state: Path) -> None:
    (state / "outbox.sqlite.new").write_bytes(b"")  # a crash while an earlier start was creating it
    with Outbox(state / "outbox.sqlite", outbox_config(), SettableClock()) as box:
        assert box.depth() == 0
        assert box.set_aside_files() == []
    assert not (state / "outbox.sqlite.new").exists()
    assert (state / "outbox.sqlite").read_bytes()[:16] == b"SQLite format 3\x00"


def test_every_state_file_is_for_the_node_only_whatever_the_umask(state: Path) -> None:
    old = os.umask(0o022)
    try:
        node = Node(state)
        node.put(2)
        (state / "outbox.sqlite").write_bytes(b"")
        node.close()
        Node(state).put(1)
    finally:
        os.umask(old)
    files = [p for p in state.iterdir() if p.is_file()]
    assert {p.name.split(".damaged-")[0] for p in files} >= {"outbox.sqlite", "outbox.sqlite-wal", "outbox.sqlite-shm",
                                                            "audit.jsonl", "audit.jsonl.head", "seq"}
    loose = {p.name: oct(p.stat().st_mode & 0o777) for p in files if p.stat().st_mode & 0o077}
    assert loose == {}


def test_a_failed_commit_leaves_no_audit_entry_and_is_counted(state: Path) -> None:
    node = Node(state)
    node.put(1)
    db = sqlite3.connect(state / "outbox.sqlite")
    db.execute("CREATE TRIGGER refuse BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'database or disk is "
               "full'); END")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="disk is full"):
        node.ledger.put(read(1))
    assert node.ledger.failures == 1
    assert node.ledger.last_error is not None
    assert audited(state) == [read(0).message_id]
    assert node.audit.head[0] == 0


def test_entries_cut_from_the_end_with_head_deleted_are_recorded_from_the_outbox_witness(state: Path) -> None:
    node = Node(state)
    node.put(6)
    node.close()
    with sqlite3.connect(state / "outbox.sqlite") as db:
        db.execute("DELETE FROM journal")
    lines = (state / "audit.jsonl").read_text().splitlines(keepends=True)
    (state / "audit.jsonl").write_text("".join(lines[:-2]))
    (state / "audit.jsonl.head").unlink()
    assert not check(state / "audit.jsonl", recorded_audit_head(state / "outbox.sqlite")).ok
    Node(state).put(1)
    report = check(state / "audit.jsonl", recorded_audit_head(state / "outbox.sqlite"))
    assert report.ok
    assert [b.reason for b in report.breaks] == ["entries 4..5 are cut from the end (recorded head: entry 5)"]


def test_verify_sees_the_last_line_cut_with_head_even_while_the_outbox_still_holds_it(state: Path) -> None:
    node = Node(state)
    node.put(4)
    node.close()
    lines = (state / "audit.jsonl").read_text().splitlines(keepends=True)
    (state / "audit.jsonl").write_text("".join(lines[:-1]))
    (state / "audit.jsonl.head").unlink()
    report = check(state / "audit.jsonl", recorded_audit_head(state / "outbox.sqlite"))
    assert not report.ok
    assert "entry 3 is cut from the end" in report.detail
    Node(state)  # the next start restores it from the outbox's journal
    assert check(state / "audit.jsonl", recorded_audit_head(state / "outbox.sqlite")).clean
