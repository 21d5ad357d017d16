"""``check-config``, ``selftest`` and ``run`` refuse the same things, in the same words: a config that passes
``check-config`` on the unit does not then stop the service at start. What the node survives (an expired hotlist,
damage it sets aside) is a warning in the first two and a health field in the third."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.broker import free_port
from support.field import NodeFiles, make_node, run_cli
from support.reads import SettableClock, make_read, node_config, outbox_config

from edge.cli import main
from edge.outbox.store import Outbox
from edge.privacy.hotlist import write_hotlist

ROOT = Path(__file__).resolve().parents[2]


def edit(node: NodeFiles, change: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load(node.config.read_text())
    change(data)
    node.config.write_text(yaml.safe_dump(data))


def hotlist(node: NodeFiles, *, valid_for: timedelta, tamper: bool = False) -> Path:
    path = node.state / "incoming-hotlist.json"
    node.state.mkdir(parents=True, exist_ok=True)
    write_hotlist(path, ["AB12CDE"], list_id="op", valid_until=datetime.now(UTC) + valid_for)
    if tamper:
        path.write_text(path.read_text().replace("AB12CDE", "AB12CDF"))
    return path


def _formats(node: NodeFiles) -> None:
    edit(node, lambda d: d["read"].update(formats=["uk_current", "klingon"]))


def _model(node: NodeFiles) -> None:
    edit(node, lambda d: d["read"].update(model=str(node.root / "missing.tflite")))


def _state_file(node: NodeFiles) -> None:
    node.state.parent.mkdir(parents=True, exist_ok=True)
    node.state.write_text("not a directory")


def _audit_outside(node: NodeFiles) -> None:
    edit(node, lambda d: d.setdefault("privacy", {}).update(audit_file="../audit.jsonl"))


def _bad_hotlist(node: NodeFiles) -> None:
    path = hotlist(node, valid_for=timedelta(hours=2), tamper=True)
    edit(node, lambda d: d.setdefault("privacy", {}).update(hotlist_file=str(path)))


def _audit_link(node: NodeFiles) -> None:
    node.state.mkdir(parents=True, exist_ok=True)
    elsewhere = node.root / "elsewhere.log"
    elsewhere.write_text("someone else's file\n")
    (node.state / "audit.jsonl").symlink_to(elsewhere)


def _seq_file(node: NodeFiles) -> None:
    node.state.mkdir(parents=True, exist_ok=True)
    (node.state / "seq").write_text("1" * 31)


REFUSED = {  # case: (set-up, run's exit code, what both say)
    "unknown format name": (_formats, 2, "klingon"),
    "model path that does not resolve": (_model, 4, "missing.tflite' does not exist"),
    "state dir that is a file": (_state_file, 6, "is a file, not a directory"),
    "audit file outside the state dir": (_audit_outside, 2, "must be a file inside node.state_dir"),
    "bad hotlist": (_bad_hotlist, 2, "does not match the content"),
    "audit log that is a symbolic link": (_audit_link, 6, "audit.jsonl' is a symbolic link"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_check_config_and_selftest_refuse_what_start_up_refuses(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = make_node(tmp_path, broker_port=free_port())
    setup, run_code, needle = REFUSED[case]
    setup(node)
    assert main(["check-config", str(node.config)]) == 2
    assert needle in capsys.readouterr().err
    assert main(["selftest", "--config", str(node.config), "--skip", "camera", "--skip", "broker",
                 "--skip", "clock"]) == run_code, "selftest fails where run would, with run's exit code"
    capsys.readouterr()
    done = run_cli("run", "--config", str(node.config), timeout=60)
    assert done.returncode == run_code, done.stderr[-2000:]
    assert needle in done.stderr
    assert "Traceback" not in done.stderr


def test_check_config_names_every_problem_in_one_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A newcomer fixed the two problems named, ran it again and met two more: each check goes on past a problem."""
    node = make_node(tmp_path, broker_port=None)
    gone = tmp_path / "gone"
    edit(node, lambda d: d["read"].update(model=str(gone / "ocr.tflite"), manifest=str(gone / "manifest.json")))
    edit(node, lambda d: d.update(mqtt={"host": "broker.example.net", "tls": {
        "ca_file": str(gone / "ca.crt"), "cert_file": str(gone / "node.crt"), "key_file": str(gone / "node.key")}}))
    assert main(["check-config", str(node.config)]) == 2
    err = capsys.readouterr().err
    problems = [line for line in err.splitlines() if line.startswith("  - ")]
    for needle in ("read.model", "manifest", "mqtt.tls.ca_file", "mqtt.tls.cert_file", "mqtt.tls.key_file"):
        assert sum(needle in line for line in problems) >= 1, (needle, err)
    assert len(problems) == 5, err


def test_a_manifest_two_models_share_is_named_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    node = make_node(tmp_path, broker_port=None)
    gone = str(tmp_path / "gone" / "manifest.json")
    edit(node, lambda d: d["read"].update(manifest=gone))
    edit(node, lambda d: d.update(detect={"backend": "wpod", "model": str(node.models / "ocr.tflite"),
                                          "manifest": gone}))
    assert main(["check-config", str(node.config)]) == 2
    assert capsys.readouterr().err.count(gone) == 1


def test_a_sequence_file_run_refuses_fails_selftest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    node = make_node(tmp_path, broker_port=free_port())
    _seq_file(node)
    assert main(["selftest", "--config", str(node.config), "--skip", "camera", "--skip", "broker",
                 "--skip", "clock"]) == 6
    assert "not a sequence number" in capsys.readouterr().out
    done = run_cli("run", "--config", str(node.config), timeout=60)
    assert done.returncode == 6
    assert "not a sequence number" in done.stderr


def test_an_expired_hotlist_is_a_warning_and_the_node_runs_without_it_saying_so_in_health(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = make_node(tmp_path, broker_port=free_port(), extra="health: {interval_s: 1}\n")
    path = hotlist(node, valid_for=timedelta(hours=-30))  # past valid_until + the 24 h grace
    edit(node, lambda d: d.setdefault("privacy", {}).update(hotlist_file=str(path)))
    assert main(["check-config", str(node.config)]) == 0
    assert "warning: hotlist" in capsys.readouterr().out
    assert main(["selftest", "--config", str(node.config), "--skip", "camera", "--skip", "broker",
                 "--skip", "clock"]) == 0
    assert "WARNING: hotlist" in capsys.readouterr().out
    done = run_cli("run", "--config", str(node.config), timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]  # the old node exited 2, which systemd never retries
    assert "running WITHOUT a hotlist" in done.stderr
    health = json.loads((node.state / "health.json").read_text())
    assert "expired" in health["hotlist_problem"]
    assert not path.exists(), "an expired plain-text list is deleted, not kept"


def test_a_plain_text_hotlist_the_service_could_not_delete_is_refused_everywhere(tmp_path: Path) -> None:
    """On a read-only mount (as /etc is under ProtectSystem=strict): refused by check-config (as by start-up),
    whoever runs it. The mount is made in a private user and mount namespace."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("needs unshare(1)")
    node = make_node(tmp_path, broker_port=free_port())
    folder = tmp_path / "etc-like"
    folder.mkdir()
    write_hotlist(folder / "hotlist.json", ["AB12CDE"], list_id="op", valid_until=datetime.now(UTC) + timedelta(1))
    edit(node, lambda d: d.setdefault("privacy", {}).update(hotlist_file=str(folder / "hotlist.json")))
    script = (f"mount --bind {folder} {folder} && mount -o remount,ro,bind {folder} || exit 90; "
              f"exec {sys.executable} -m edge check-config {node.config}")
    done = subprocess.run([unshare, "-Urm", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)
    if done.returncode == 90 or "unshare:" in done.stderr:
        pytest.skip(f"cannot make a read-only mount here: {done.stderr.strip()}")
    assert done.returncode == 2, done.stderr
    assert "holds plate text, which must not stay on the node's disk" in done.stderr
    assert (folder / "hotlist.json").exists()


def test_a_damaged_outbox_is_a_warning_and_the_node_sets_it_aside_and_runs_saying_so_in_health(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = make_node(tmp_path, broker_port=free_port(), extra="health: {interval_s: 1}\n")
    node.state.mkdir(parents=True)
    outbox = node.state / "outbox.sqlite"
    with Outbox(outbox, outbox_config(), SettableClock()) as box:
        for seq in range(200):
            box.put(make_read(node_config(), seq, pad=64), seq=seq)
    os.truncate(outbox, outbox.stat().st_size // 2)
    assert main(["check-config", str(node.config)]) == 0
    out = capsys.readouterr().out
    assert "warning: outbox" in out and "is damaged" in out, out  # it said OK, then run exited 6 on every start
    done = run_cli("run", "--config", str(node.config), timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "recovered" in done.stderr
    health = json.loads((node.state / "health.json").read_text())
    assert health["outbox_set_aside"].startswith("outbox.sqlite.damaged-")
