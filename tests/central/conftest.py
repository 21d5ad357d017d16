"""A real PostgreSQL (Debian's server, started on a free loopback port for the test session), fresh databases, and
a central store on each of SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge.central.pgtemp import TempPostgres, server_bindir
from edge.central.store import open_store, parse_store
from edge.central.store.sql import SqlStore

_names = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TempPostgres]:
    if server_bindir() is None:
        if os.environ.get("CI"):
            pytest.fail("the PostgreSQL server is not installed: scripts/setup.sh installs Debian's postgresql")
        pytest.skip("the PostgreSQL server is not installed (apt-get install postgresql; scripts/setup.sh does)")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[central]')")
    with TempPostgres(fsync=False) as server:
        yield server


@pytest.fixture
def new_postgres_url(postgres_server: TempPostgres) -> Callable[[], str]:
    """Makes a new, empty database on the session's server; returns its URL."""

    def make() -> str:
        import psycopg

        name = f"t{os.getpid()}_{next(_names)}"
        with psycopg.connect(postgres_server.url, autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        return postgres_server.url.rsplit("/", 1)[0] + "/" + name

    return make


@pytest.fixture
def postgres_url(new_postgres_url: Callable[[], str]) -> str:
    """A new, empty database on the session's server."""
    return new_postgres_url()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    """An empty, migrated central store, once on SQLite and once on a new PostgreSQL database."""
    if request.param == "sqlite":
        spec = parse_store(str(tmp_path / "central.sqlite"), images=tmp_path / "images")
    else:
        url = request.getfixturevalue("postgres_url")
        spec = parse_store(url, images=tmp_path / "images")
    opened = open_store(spec)
    assert isinstance(opened, SqlStore)
    try:
        yield opened
    finally:
        opened.close()
