"""Several `edge-anpr listen` processes on one MQTT 5 shared subscription, into a real PostgreSQL.

Three listeners share the stream; one is SIGKILLed mid-stream and restarted under its client id (as systemd's
Restart=always does): every read is a row, none is stored twice, and each listener took a share.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.broker import MosquittoBroker

from edge.central.bench import run_once
from edge.central.store import open_store, parse_store
from edge.cli import main as cli_main

pytestmark = pytest.mark.integration


def _migrated(url: str, tmp_path: Path) -> str:
    open_store(parse_store(url, images=tmp_path / "images")).close()
    return url


def test_three_listeners_share_the_stream_and_one_killed_mid_stream_loses_nothing_and_stores_nothing_twice(
    mosquitto: MosquittoBroker, postgres_url: str, tmp_path: Path
) -> None:
    url = _migrated(postgres_url, tmp_path)
    result = run_once(mosquitto.host, mosquitto.port, url, tmp_path, listeners=3, reads=3000, kill=True,
                      timeout_s=120)
    assert result.killed == 1
    assert (result.lost, result.stored_twice) == (0, 0)
    assert all(n > 0 for n in result.per_listener_stored)  # the restarted one counts from its restart


def test_three_listeners_on_one_shared_subscription_each_store_a_share_once(
    mosquitto: MosquittoBroker, postgres_url: str, tmp_path: Path
) -> None:
    url = _migrated(postgres_url, tmp_path)
    result = run_once(mosquitto.host, mosquitto.port, url, tmp_path, listeners=3, reads=900, kill=False,
                      timeout_s=60)
    assert (result.lost, result.stored_twice) == (0, 0)
    assert sum(result.per_listener_stored) == 900
    assert min(result.per_listener_stored) > 0


def test_bench_central_prints_reads_per_second_and_losses_as_json(
    mosquitto: MosquittoBroker, postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _migrated(postgres_url, tmp_path)
    code = cli_main(["bench", "central", "--host", mosquitto.host, "--port", str(mosquitto.port), "--store", url,
                     "--reads", "300", "--listeners", "1", "--no-kill", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (run,) = out["runs"]
    assert (run["listeners"], run["reads"], run["lost"], run["stored_twice"]) == (1, 300, 0, 0)
    assert run["reads_per_s"] > 0
