"""Bounds on the times a config or a recording may give: pure checks, no I/O.

A time is accepted from 2000-01-01 up to (not including) 2100-01-01 UTC. Later dates broke the node far from the
cause (``9999-12-31T23:59:55Z`` passed check-config, then the first seconds of a replay overflowed Python's
datetime); earlier ones name no recording this node could have made. The bound leaves decades of headroom for
any arithmetic on a time (retention cut-offs, frame times of long recordings).
"""

from __future__ import annotations

from datetime import UTC, datetime

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)  # exclusive


def check_time(value: datetime, what: str, hint: str = "give the UTC time of the recording's first frame, for "
               "example 2026-03-14T08:00:00Z") -> datetime:
    """``value`` when it lies in the years 2000 to 2099 (a time without a zone is taken as UTC); a ValueError naming
    it, the bound and ``hint`` otherwise."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if not EARLIEST <= aware < LATEST:
        raise ValueError(f"{what} {value.isoformat()} is outside the years {EARLIEST.year} to {LATEST.year - 1} "
                         f"(UTC) this node accepts; {hint}")
    return value
