"""Counts in words for people: ``counted(1, "pass")`` is "1 pass", ``counted(3, "pass")`` "3 passes"."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and the noun, singular for exactly one; the plural is ``plural`` or the noun with -s (-es after
    s, x, z, ch, sh)."""
    if n == 1:
        return f"{n} {noun}"
    if plural is None:
        plural = noun + ("es" if noun.endswith(("s", "x", "z", "ch", "sh")) else "s")
    return f"{n} {plural}"
