"""Giving freed memory back to the operating system.

glibc keeps what a thread frees in that thread's arena. After a put, the
workers' read, compression and window buffers sit there unused while the
graph phase, on the main thread, allocates afresh: the process's peak is
the sum of both. `malloc_trim` returns the free pages of every arena (it
takes a few ms).

Blocks of at least glibc's mmap threshold are mapped on their own and
unmapped when freed; smaller ones come from the arenas. The threshold starts
at 128 KiB but rises to the size of each mapped block freed (up to 32 MiB),
so after the first of Oxigraph's bulk loads its big buffers (several MiB a
load) come from the arenas, where what they leave between other blocks
stays. `map_big_blocks` fixes the threshold. With another C library these
do nothing.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

M_MMAP_THRESHOLD = -3  # mallopt's parameter number (glibc's malloc.h)
# Big blocks in the graph phase: at 256 KiB, a put's peak RSS was 9 MiB lower on
# `mixed` and 7 MiB lower on 50,000 small files, for 1.00-1.02x the wall time
# (8-10 pairs each); at 128 KiB, 7-10 MiB lower for 1.00-1.04x; at 1 MiB, 4 MiB.
BIG_BLOCK = 256 << 10


@lru_cache(maxsize=1)
def _libc() -> Any:
    import ctypes  # here: only a put pays for it
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.malloc_trim  # noqa: B018 - glibc, or nothing here applies
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def release_free_memory() -> None:
    """Return freed heap pages to the operating system, where the C library can."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def map_big_blocks(threshold: int = BIG_BLOCK) -> None:
    """Have blocks of `threshold` bytes or more mapped on their own, from now on, process-wide."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, threshold)
