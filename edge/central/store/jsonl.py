"""JSON lines: the lab and demo store (one process; no retention: use SQLite or PostgreSQL for a deployment).

``<out>`` gets one line per read (the payload, its image replaced by the image file's path), ``<out
stem>.rejected.jsonl`` one line per dead letter, ``<out stem>.nodes.jsonl`` status and health messages.
Each batch is flushed and fsynced before its messages are acknowledged. Read ids already in ``<out>`` are
known at start, so a redelivered read is a duplicate across restarts. A last line left half written (power
cut, kill mid-write) is moved aside to ``<out>.damaged-<UTC time>`` and cut off, so appends start on a line
of their own; the message it held was never acknowledged and comes again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from edge.central.images import ImageFiles
from edge.central.records import HealthRecord, Outcome, ReadRecord, Record, StatusRecord
from edge.central.store.sql import DEAD_LETTER_KEEP, StoreUnavailableError
from edge.clock import iso_ms

log = logging.getLogger(__name__)


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(f"{path.stem}.{suffix}.jsonl")


class JsonLinesStore:
    def __init__(self, path: Path, images: ImageFiles) -> None:
        self.path = path
        self.images = images
        self.damaged_lines = 0
        self._seen: set[str] = set()
        if path.exists():
            self._load()
        self._reads = path.open("a", encoding="utf-8")
        self._rejected: IO[str] | None = None
        self._nodes: IO[str] | None = None

    def _load(self) -> None:
        data = self.path.read_bytes()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):
            aside = self.path.with_name(f"{self.path.name}.damaged-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}")
            aside.write_bytes(data[complete:])
            with self.path.open("r+b") as f:
                f.truncate(complete)
                os.fsync(f.fileno())
            log.warning("listen: %s ended in a half-written line (%d bytes); moved to %s, appending after the last"
                        " whole line", self.path, len(data) - complete, aside)
        for number, line in enumerate(data[:complete].splitlines(), start=1):
            if not line.strip():
                continue
            try:
                self._seen.add(str(json.loads(line)["id"]))
            except (ValueError, KeyError, TypeError):
                self.damaged_lines += 1
                log.warning("listen: %s line %d is not a stored read; skipped", self.path, number)

    def write(self, records: Sequence[Record]) -> list[Outcome]:
        before = set(self._seen)
        try:
            return self._write(records)
        except OSError as exc:
            self._seen = before  # nothing of this batch counts as kept: it is written again, then acknowledged
            raise StoreUnavailableError(f"listen: cannot write {self.path}: {exc}") from exc

    def _write(self, records: Sequence[Record]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        touched: set[IO[str]] = set()
        for r in records:
            if isinstance(r, ReadRecord):
                if r.id in self._seen:
                    outcomes.append("duplicate")
                    continue
                self._reads.write(json.dumps(self._line(r), separators=(",", ":")) + "\n")
                self._seen.add(r.id)
                touched.add(self._reads)
                outcomes.append("stored")
            elif isinstance(r, StatusRecord | HealthRecord):
                f = self._nodes = self._nodes or _sibling(self.path, "nodes").open("a", encoding="utf-8")
                kind = "status" if isinstance(r, StatusRecord) else "health"
                f.write(json.dumps({"kind": kind, "received_at": iso_ms(r.received_at), "topic": r.topic,
                                    "message": json.loads(r.payload)}, separators=(",", ":")) + "\n")
                touched.add(f)
                outcomes.append("stored")
            else:
                f = self._rejected = self._rejected or _sibling(self.path, "rejected").open("a", encoding="utf-8")
                f.write(json.dumps({
                    "received_at": iso_ms(r.received_at), "topic": r.topic, "reason": r.reason,
                    "payload_bytes": len(r.payload), "payload_sha256": hashlib.sha256(r.payload).hexdigest(),
                    "payload_base64": base64.b64encode(r.payload[:DEAD_LETTER_KEEP]).decode(),
                }, separators=(",", ":")) + "\n")
                touched.add(f)
                outcomes.append("rejected")
        for f in touched:
            f.flush()
            os.fsync(f.fileno())
        return outcomes

    def _line(self, r: ReadRecord) -> dict[str, Any]:
        line = dict(r.document)
        if r.image is not None:
            line["image"] = {
                "kind": r.image.kind, "content_type": r.image.content_type, "width": r.image.width,
                "height": r.image.height, "path": self.images.save(r), "sha256": r.image.sha256,
                "redaction": {"detector": r.image.detector, "model_sha256": r.image.model_sha256,
                              "threshold": r.image.threshold, "regions": r.image.regions, "second_pass_faces": 0},
            }
        return line

    def close(self) -> None:
        for f in (self._reads, self._rejected, self._nodes):
            if f is not None:
                f.close()
