"""Counts read as English: one pass, two passes."""

from __future__ import annotations

from edge.wording import counted


def test_one_is_singular_and_every_other_count_plural() -> None:
    assert counted(1, "pass") == "1 pass"
    assert counted(0, "pass") == "0 passes"
    assert counted(2, "face region") == "2 face regions"
    assert counted(1, "face region") == "1 face region"
    assert counted(3, "box") == "3 boxes"
    assert counted(2, "entry", "entries") == "2 entries"
