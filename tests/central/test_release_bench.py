"""``edge-anpr bench update``: a node goes from release N to N+1 and back through a TUF repository served over
HTTPS with client certificates, and the bench says the time and bytes of each step."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from support.field import run_cli

from edge.central.release_bench import package_wheel


def test_bench_update_goes_n_to_n_plus_1_and_back_and_counts_what_each_step_fetched() -> None:
    done = run_cli("bench", "update", "--no-models", "--json", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] is True
    steps = {s["step"]: s for s in result["steps"]}
    assert list(steps) == ["install 1.0.0", "1.0.0 -> 1.1.0", "check, nothing new", "1.1.0 -> 1.0.0 (withdrawn)"]
    bundles = {r["version"]: r["bundle_bytes"] for r in result["releases"]}
    assert steps["install 1.0.0"]["bytes_fetched"] > bundles["1.0.0"]  # the bundle and the metadata
    assert steps["1.0.0 -> 1.1.0"]["bytes_fetched"] > bundles["1.1.0"]
    assert steps["check, nothing new"]["bytes_fetched"] < 2_000  # timestamp.json alone
    assert steps["1.1.0 -> 1.0.0 (withdrawn)"]["bytes_fetched"] < 20_000  # N was kept on disk: metadata only
    assert all(s["seconds"] > 0 for s in result["steps"])
    assert result["restarts"] == 3


def test_the_bench_wheel_is_this_package_at_the_version_asked_with_a_complete_record(tmp_path: Path) -> None:
    wheel = package_wheel(tmp_path, "2.0.0")
    assert wheel.name == "edge_anpr-2.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        record = zf.read("edge_anpr-2.0.0.dist-info/RECORD").decode()
        assert "Version: 2.0.0" in zf.read("edge_anpr-2.0.0.dist-info/METADATA").decode()
    assert "edge/central/release_bench.py" in names
    assert not any("__pycache__" in n for n in names)
    assert {line.split(",")[0] for line in record.splitlines()} == names
