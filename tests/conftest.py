"""Shared fixtures: a real Mosquitto broker on loopback (skipped when it is not installed)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.broker import MOSQUITTO, MosquittoBroker


def _need_mosquitto() -> None:
    if not MOSQUITTO.exists():
        pytest.skip(f"{MOSQUITTO} is not installed: broker tests need a real Mosquitto (apt install mosquitto)")


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A plain (anonymous, no persistence) broker on a free 127.0.0.1 port."""
    _need_mosquitto()
    broker = MosquittoBroker(tmp_path / "broker")
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., MosquittoBroker]]:
    """Start brokers with custom listener lines (TLS, ACLs, persistence); all killed at teardown."""
    _need_mosquitto()
    brokers: list[MosquittoBroker] = []

    def make(**kwargs: object) -> MosquittoBroker:
        broker = MosquittoBroker(tmp_path / f"broker{len(brokers)}", **kwargs)  # type: ignore[arg-type]
        brokers.append(broker)
        broker.start()
        return broker

    try:
        yield make
    finally:
        for broker in brokers:
            broker.kill()
