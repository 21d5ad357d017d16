"""The one commit point of a read: its outbox row, its sequence number and its audit entry, together.

``Ledger.put`` reserves the sequence number in the sequence file, then commits in one SQLite transaction
the message, the next sequence number and the read's audit entry (the outbox's journal), and only then
appends the entry to the audit log. A crash anywhere leaves one of: nothing (the read was never stored,
its number never used outside), or a stored read whose audit entry the outbox holds and the audit log
receives at the next start. So the audit log records exactly what was queued to leave, and no sequence
number is used twice.

``Ledger.open`` brings the audit log up to what the outbox committed (recording a break in the chain for
what cannot be recovered) and says where the sequence numbers continue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from edge.clock import Clock
from edge.domain import OutgoingMessage
from edge.errors import StateError
from edge.outbox.store import JournalEntry, Outbox

log = logging.getLogger(__name__)


class ChainEntry(Protocol):
    """A drafted audit entry (``edge.privacy.audit.AuditDraft``)."""

    @property
    def n(self) -> int: ...

    @property
    def line(self) -> bytes: ...

    @property
    def is_break(self) -> bool: ...

    def resumes_at(self) -> tuple[int, str]: ...


E = TypeVar("E", bound=ChainEntry)


class AuditChain(Protocol[E]):
    """The audit log as the ledger uses it (``edge.privacy.audit.AuditLog``)."""

    @property
    def written(self) -> int: ...

    def draft(self, *, read_id: str, fields: Sequence[str], image: bool, policy_version: str,
              time: datetime) -> E: ...

    def commit(self, draft: E) -> None: ...

    def write(self) -> bool: ...

    def reconcile(self, pending: Sequence[bytes], witness: tuple[int, str] | None,
                  now: datetime) -> Sequence[E]: ...


class SequenceReserve(Protocol):
    """The sequence file (``edge.node.sequence.SequenceFile``)."""

    def load(self) -> int: ...

    def reserve(self, next_seq: int) -> None: ...


def journal_entry(draft: ChainEntry) -> JournalEntry:
    return JournalEntry(draft.n, draft.line, draft.resumes_at(), draft.is_break)


class Ledger(Generic[E]):
    """The pipeline's ``MessageStore``: a message is durable, numbered and audited once ``put`` returns.

    Thread-safe (the privacy worker and the clock hold's release both put). ``on_commit`` runs after each
    stored message (wakes the publisher). A failed commit raises :class:`StateError` and is counted.
    """

    def __init__(self, outbox: Outbox, *, sequence: SequenceReserve, audit: AuditChain[E] | None, clock: Clock,
                 on_commit: Callable[[], None] | None = None) -> None:
        self._outbox = outbox
        self._sequence = sequence
        self._audit = audit
        self._clock = clock
        self.on_commit = on_commit
        self._lock = threading.Lock()
        self.failures = 0
        self.last_error: str | None = None

    def open(self) -> int:
        """Reconcile the audit log with the outbox; returns the next sequence number (refuses a damaged file)."""
        recorded = self._outbox.recorded()
        if self._audit is not None:
            breaks = self._audit.reconcile(self._outbox.journal(), recorded.audit_head, self._clock.now())
            try:
                if breaks:
                    self._outbox.commit_journal([journal_entry(b) for b in breaks])
                if self._audit.write():
                    self._outbox.commit_journal([], forget_upto=self._audit.written)
            except StateError as exc:  # a full disk: the node still starts, to deliver what it holds
                log.error("audit: %s; retried with the next read", exc)
        next_seq = max(self._sequence.load(), recorded.next_seq)
        if next_seq > 0:
            log.info("sequence numbers continue at %d", next_seq)
        return next_seq

    def put(self, message: OutgoingMessage) -> None:
        with self._lock:
            try:
                stored = self._commit(message)
            except StateError as exc:
                self.failures += 1
                self.last_error = str(exc)
                raise
            self.last_error = None
        if stored and self.on_commit is not None:
            self.on_commit()

    def _commit(self, message: OutgoingMessage) -> bool:
        if message.seq is not None:
            self._sequence.reserve(message.seq + 1)  # before the commit: a crash between leaves a gap, no repeat
        draft = None
        if self._audit is not None and message.audit is not None:
            note = message.audit
            draft = self._audit.draft(read_id=message.message_id, fields=note.fields, image=note.image,
                                      policy_version=note.policy_version, time=self._clock.now())
        stored = self._outbox.put(
            message, seq=message.seq, journal=[journal_entry(draft)] if draft is not None else (),
            forget_journal_upto=self._audit.written if self._audit is not None else None,
        )
        if stored and draft is not None and self._audit is not None:
            self._audit.commit(draft)
            self._audit.write()  # a refusal is logged and counted there; the outbox keeps the entry
        return stored
