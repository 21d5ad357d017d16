"""The allocator setting the composition root makes: at most two glibc malloc arenas, unless the operator said."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from edge.node.memory import limit_malloc_arenas

GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="the arena limit is glibc's")
def test_the_arena_limit_is_set_where_the_c_library_is_glibc() -> None:
    # in a child process, so this one's allocator is left as it was
    code = "from edge.node.memory import limit_malloc_arenas; print(limit_malloc_arenas())"
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "True"


def test_an_arena_count_in_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False


def test_fewer_than_one_arena_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        limit_malloc_arenas(0)
