"""What health says of over-the-air updates: read from update.json and the links alone (no python-tuf), valid
against anpr.health/1 in every state the updater leaves."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from edge.node.update_state import Failure, UpdateState, health_fields, write_state
from edge.publish.schema import Schemas


def _message(update: dict[str, object]) -> dict[str, object]:
    return {"schema": "anpr.health/1", "site": "site1", "camera": "cam1", "time": "2026-12-08T09:00:00.000Z",
            "update": update}


def _layout(root: Path, current: str, stable: str) -> None:
    for version in {current, stable}:
        (root / "releases" / version).mkdir(parents=True)
    os.symlink(f"releases/{current}", root / "current")
    os.symlink(f"releases/{stable}", root / "stable")


def test_health_names_the_running_release_and_an_update_in_flight(tmp_path: Path) -> None:
    _layout(tmp_path, "0.3.0", "0.2.0")
    write_state(tmp_path, UpdateState("confirming", "0.3.0", "0.2.0", "c" * 64, "2026-12-08T09:00:00.000Z", 1))
    body = health_fields(tmp_path)
    assert body == {"running": "0.3.0", "confirmed": "0.2.0",
                    "pending": {"step": "confirming", "version": "0.3.0", "since": "2026-12-08T09:00:00.000Z"}}
    Schemas().validate("health", _message(body))


def test_health_carries_the_last_failed_and_refused_update_with_their_reasons(tmp_path: Path) -> None:
    _layout(tmp_path, "0.2.0", "0.2.0")
    failed = Failure("0.3.0", "selftest_failed", "selftest exit 1", "2026-12-08T09:00:00.000Z", "c" * 64)
    refused = Failure("?", "expired", "metadata expired: timestamp.json", "2026-12-08T10:00:00.000Z")
    write_state(tmp_path, UpdateState(failed=failed, refused=refused))
    body = health_fields(tmp_path)
    assert body["failed"] == {"version": "0.3.0", "reason": "selftest_failed", "detail": "selftest exit 1",
                              "time": "2026-12-08T09:00:00.000Z"}, "no sha256 in health"
    assert body["refused"]["reason"] == "expired" and "pending" not in body
    Schemas().validate("health", _message(body))


def test_a_node_without_the_release_layout_reports_an_empty_update(tmp_path: Path) -> None:
    assert health_fields(tmp_path) == {}
    Schemas().validate("health", _message({}))


def test_health_reads_the_update_state_without_importing_python_tuf() -> None:
    import subprocess

    code = ("import sys, edge.node.update_state, edge.cli.commands; "
            "sys.exit(1 if any(m == 'tuf' or m.startswith('tuf.') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
