"""Where the central subscriber keeps what it receives: PostgreSQL, SQLite (the embedded default) or JSON lines.

A store takes a batch of judged records (:mod:`edge.central.records`) and returns one outcome per record:
``stored``, ``duplicate`` (the id, or the same status/health message, is already kept) or ``rejected``
(kept as a dead letter with its reason). It returns only once the batch is durable; the subscriber
acknowledges the messages after that. ``StoreUnavailableError`` means nothing of the batch was kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from edge.central.images import ImageFiles
from edge.central.records import Outcome, Record
from edge.central.store.db import Db
from edge.central.store.sql import StoreUnavailableError
from edge.errors import ConfigError

StoreKind = Literal["postgresql", "sqlite", "jsonl"]

__all__ = ["CentralStore", "StoreSpec", "StoreUnavailableError", "open_store", "parse_store", "without_password"]


class CentralStore(Protocol):
    def write(self, records: Sequence[Record]) -> list[Outcome]: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class StoreSpec:
    kind: StoreKind
    target: str  # a postgresql:// URL, or a file path
    images: Path

    def describe(self) -> str:
        if self.kind == "postgresql":
            return f"PostgreSQL {without_password(self.target)}"
        return f"{self.kind} {self.target}"


def without_password(url: str) -> str:
    head, sep, tail = url.partition("@")
    if not sep or "://" not in head:
        return url
    scheme, _, userinfo = head.partition("://")
    return f"{scheme}://{userinfo.split(':', 1)[0]}@{tail}"


def parse_store(text: str, *, fmt: str | None = None, images: Path | None = None) -> StoreSpec:
    """``postgresql://...`` (or ``postgres://``), ``sqlite:PATH``, ``jsonl:PATH``, or a file path whose format is
    ``fmt`` or, failing that, its suffix (``.sqlite``/``.db``: SQLite, anything else JSON lines)."""
    if text.startswith(("postgresql://", "postgres://")):
        if images is None:
            raise ConfigError("a PostgreSQL store needs --images DIR: images are kept as files the rows refer to")
        return StoreSpec("postgresql", text, images)
    kind: StoreKind
    if text.startswith("sqlite:"):
        kind, path = "sqlite", Path(text.removeprefix("sqlite:").removeprefix("//"))
    elif text.startswith("jsonl:"):
        kind, path = "jsonl", Path(text.removeprefix("jsonl:"))
    else:
        path = Path(text)
        if fmt in ("sqlite", "jsonl"):
            kind = "sqlite" if fmt == "sqlite" else "jsonl"
        elif fmt is not None:
            raise ConfigError(f"output format {fmt!r} is not supported; use 'jsonl' or 'sqlite'")
        else:
            kind = "sqlite" if path.suffix in (".sqlite", ".sqlite3", ".db") else "jsonl"
    if not path.parent.is_dir():
        raise ConfigError(f"output directory {path.parent} does not exist")
    return StoreSpec(kind, str(path), images or path.with_name(f"{path.stem}-images"))


def open_store(spec: StoreSpec) -> CentralStore:
    """Open (and migrate) the store; raises StoreUnavailableError when the database cannot be reached."""
    images = ImageFiles(spec.images)
    if spec.kind == "jsonl":
        from edge.central.store.jsonl import JsonLinesStore

        return JsonLinesStore(Path(spec.target), images)
    from edge.central.store.sql import SqlStore

    if spec.kind == "sqlite":
        from edge.central.store.db import SqliteDb

        store = SqlStore(lambda: SqliteDb(Path(spec.target)), images)
    else:
        store = SqlStore(lambda: _postgres(spec.target), images)
    try:
        _ = store.db  # connect and migrate now: a wrong URL is said at start, not at the first message
    except Exception as exc:
        raise StoreUnavailableError(f"central store: cannot open {spec.describe()}: {exc}") from exc
    return store


def _postgres(url: str) -> Db:
    from edge.central.store.db import PostgresDb

    try:
        return PostgresDb(url)
    except ModuleNotFoundError as exc:
        raise ConfigError("a PostgreSQL store needs psycopg: pip install 'edge-anpr[central]'") from exc
