"""The outbox benchmark runs end to end and reports the figures the issue asks for."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from support.broker import MosquittoBroker

from edge.publish.bench import configure_parser, main, run_bench

pytestmark = pytest.mark.integration


def test_bench_against_a_given_broker_reports_rate_and_drain(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    result = run_bench(mosquitto.host, mosquitto.port, tmp_path, reads=100, backlog=300)
    assert result.reads_per_s > 0
    assert result.backlog == 300
    assert result.backlog_10000_drain_s > 0


def test_bench_cli_starts_its_own_loopback_broker_and_prints_json(
    mosquitto: MosquittoBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    assert main(parser.parse_args(["outbox", "--json", "--reads", "50", "--backlog", "100"])) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"reads_per_s", "backlog_10000_drain_s"} <= set(out)
