"""Giving freed memory back to the operating system between phases.

glibc keeps what a thread frees in that thread's arena. After a put, the
workers' read, compression and window buffers sit there unused while the
graph phase, on the main thread, allocates afresh: the process's peak is
the sum of both. `malloc_trim` returns the free pages of every arena (it
takes a few ms). With another C library this does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    import ctypes  # here: only a put pays for it
    import ctypes.util

    try:
        trim: Callable[[int], int] = ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    return trim


def release_free_memory() -> None:
    """Return freed heap pages to the operating system, where the C library can."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
