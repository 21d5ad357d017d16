"""The process's memory allocator: fewer glibc malloc arenas for a node's many threads.

glibc gives each thread that allocates under contention an arena of its own (up to eight a core), and each
arena keeps what was freed in it for reuse. A node frees 6 MB frames on threads other than those that
allocated them (capture, the finders, the frame loop, redaction), so several arenas each keep frames' worth of
free memory: about 20-30 MB of the peak with two workers (``bench pipeline``). With at most
:data:`MALLOC_ARENAS` arenas the frames freed by one thread are reused by the others. Measured on two cores, the
frame rate did not change (see the README, Four cores).
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

log = logging.getLogger(__name__)

MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's malloc.h


def limit_malloc_arenas(count: int = MALLOC_ARENAS) -> bool:
    """Allow at most ``count`` malloc arenas from now on (glibc's ``mallopt(M_ARENA_MAX)``); True when set.

    Does nothing where the C library is not glibc, or where ``MALLOC_ARENA_MAX`` in the environment already
    says how many (an operator's choice wins). Call it before the threads start: arenas already made stay.
    """
    if count < 1:
        raise ValueError(f"malloc arenas {count!r} must be at least 1")
    if os.environ.get("MALLOC_ARENA_MAX") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_ARENA_MAX, count))
    log.debug("malloc arenas limited to %d: %s", count, done)
    return done
