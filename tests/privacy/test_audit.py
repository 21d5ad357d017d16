"""The audit chain: every entry verifies; altering, deleting or reordering any entry is detected."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.privacy import audit
from edge.privacy.audit import AuditLog, entry_hash, verify

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
POLICY = "ab" * 32
N = 6


def fill(path: Path, n: int = N, start: datetime = T0) -> AuditLog:
    log = AuditLog(path)
    for i in range(n):
        log.append(read_id=f"depot-1.gate-a.{i}.0000abcd", fields=["camera", "id", "seq", "site", "time"],
                   image=i % 2 == 0, policy_version=POLICY, time=start + timedelta(minutes=i))
    return log


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def rewrite(path: Path, new: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in new))


def test_an_untouched_log_verifies_and_each_entry_names_what_left(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path)
    assert verify(path) == (True, None)
    first = json.loads(lines(path)[0])
    assert (first["n"], first["prev"], first["image"], first["policy"]) == (0, "0" * 64, True, POLICY)
    assert first["fields"] == ["camera", "id", "seq", "site", "time"]
    assert path.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("k", range(N))
def test_altering_any_entry_is_detected_at_that_line(tmp_path: Path, k: int) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path)
    content = lines(path)
    entry = json.loads(content[k])
    entry["image"] = not entry["image"]
    content[k] = json.dumps(entry)
    rewrite(path, content)
    assert verify(path) == (False, k + 1)


@pytest.mark.parametrize("k", range(N - 1))
def test_altering_an_entry_and_its_hash_is_detected_at_the_next_line(tmp_path: Path, k: int) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path)
    content = lines(path)
    entry = json.loads(content[k])
    entry["fields"] = [*entry["fields"], "plate"]
    entry["hash"] = entry_hash(entry)
    content[k] = json.dumps(entry)
    rewrite(path, content)
    assert verify(path) == (False, k + 2)


@pytest.mark.parametrize("k", range(N))
def test_deleting_any_entry_is_detected(tmp_path: Path, k: int) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path)
    content = lines(path)
    del content[k]
    rewrite(path, content)
    assert verify(path) == (False, k + 1)


def test_reordering_entries_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path)
    content = lines(path)
    content[2], content[3] = content[3], content[2]
    rewrite(path, content)
    assert verify(path) == (False, 3)


def test_the_chain_continues_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    first = fill(path, 3)
    second = fill(path, 3, start=T0 + timedelta(hours=1))
    assert second.head[0] == 5
    assert second.head[1] != first.head[1]
    assert verify(path) == (True, None)


def test_purge_keeps_a_verifiable_chain_behind_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = fill(path)
    assert log.oldest() == T0
    assert log.purge_before(T0 + timedelta(minutes=4)) == 4
    assert verify(path) == (True, None)
    assert log.oldest() == T0 + timedelta(minutes=4)
    assert json.loads(lines(path)[0])["kind"] == "checkpoint"
    log.append(read_id="x.y.6.00000000", fields=["id"], image=False, policy_version=POLICY, time=T0)
    assert log.purge_before(T0 + timedelta(minutes=5)) == 1
    assert json.loads(lines(path)[0])["purged"] == 5
    assert verify(path) == (True, None)
    assert log.purge_before(T0 + timedelta(days=1)) == 2
    assert log.oldest() is None
    assert verify(path) == (True, None)
    assert AuditLog(path).head == log.head
    assert log.purge_before(T0 + timedelta(days=2)) == 0


def test_a_forged_checkpoint_anywhere_but_the_first_line_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = fill(path)
    log.purge_before(T0 + timedelta(minutes=2))
    content = lines(path)
    rewrite(path, [content[1], content[0], *content[2:]])
    assert verify(path)[0] is False


def test_cli_verify_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path)
    parser = argparse.ArgumentParser()
    audit.configure_parser(parser)
    assert audit.main(parser.parse_args([str(path), "--json"])) == 0
    assert json.loads(capsys.readouterr().out) == {"file": str(path), "ok": True, "first_bad_line": None,
                                                   "entries": N, "detail": None, "breaks": []}
    rewrite(path, lines(path)[1:])
    assert audit.main(parser.parse_args([str(path)])) == 1
    assert "BROKEN at line 1" in capsys.readouterr().out
    assert audit.main(parser.parse_args([str(tmp_path / "missing.jsonl")])) == 6
