"""Writing big objects past the page cache (`O_DIRECT`), from page-aligned buffers.

A put writes its whole blob once and reads none of it back, so the page
cache only costs it: every byte is copied into freshly allocated cache
pages, later written back, and pushes out pages other programs use. With
`O_DIRECT` the kernel writes straight from the caller's memory, which must
be aligned (address, length and file offset) to the device's block size;
`ALIGN` (a page) covers every common one.

`Buffers` hands out page-aligned buffers of one size and takes them back,
so the windows of a blob are built in the same few pages over and over
(a fresh 8 MiB object per window is 2,048 new pages to fault in and zero).
`write_all` writes the aligned head of such a buffer directly and the rest
through the cache; a file system that refuses `O_DIRECT` (EINVAL) gets the
whole write through the cache instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import mmap
import os
import threading

ALIGN = mmap.PAGESIZE
# Smaller writes go through the cache: a direct write waits for the device, which
# only pays off when it moves a lot at once (windows are 8 MiB).
DIRECT_MIN = 1 << 20
O_DIRECT: int = getattr(os, "O_DIRECT", 0)


def is_aligned(data: bytes | memoryview) -> bool:
    """Tell whether `data` starts on a page boundary (read-only bytes never count)."""
    try:
        view = memoryview(data)
        if view.readonly or not view.c_contiguous or not view.nbytes:
            return False
        address = ctypes.addressof(ctypes.c_char.from_buffer(view))
    except (TypeError, ValueError):
        return False
    return address % ALIGN == 0


def wants_direct(data: bytes | memoryview) -> bool:
    """Tell whether `data` is big and aligned enough to be written with `O_DIRECT`."""
    return bool(O_DIRECT) and len(data) >= DIRECT_MIN and is_aligned(data)


def write_all(fd: int, data: bytes | memoryview, direct: bool) -> bool:
    """Write `data` to `fd` (opened with `O_DIRECT` if `direct`); return whether it went direct.

    The aligned head goes directly, the tail (and everything, if the file
    system refuses at the first write) through the page cache.
    """
    view = memoryview(data).cast("B")
    done = 0
    if direct:
        head = len(view) - len(view) % ALIGN
        try:
            while done < head and done % ALIGN == 0:
                done += os.write(fd, view[done:head])
        except OSError as exc:
            if exc.errno != errno.EINVAL or done:
                raise
            direct = False  # not on this file system: through the cache, from the start
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~O_DIRECT)
    while done < len(view):
        done += os.write(fd, view[done:])
    return direct


class Buffers:
    """Page-aligned buffers of `size` bytes, handed out and taken back (thread-safe).

    Buffers are made as needed and kept while taken back; whoever takes
    them bounds how many are out at once. `close` unmaps the free ones.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()

    def take(self) -> mmap.mmap:
        """Return a free buffer, or a new one."""
        with self._lock:
            if self._free:
                return self._free.pop()
        # Private: a process forked later gets a copy, never this process's writes.
        return mmap.mmap(-1, self.size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)

    def give(self, buffer: mmap.mmap) -> None:
        """Take a buffer back for reuse."""
        with self._lock:
            self._free.append(buffer)

    def close(self) -> None:
        """Unmap the free buffers (their pages go back to the system at once)."""
        with self._lock:
            free, self._free = self._free, []
        for buffer in free:
            # A view of it still alive (in a traceback, say): unmapped when that goes.
            with contextlib.suppress(BufferError):
                buffer.close()
