"""What this server process has verified already, so a commit need not read a blob again.

Committing an index.json checks every window it lists and the SHA-256 of
the whole stream. Read back from the store, that is a second pass over
every byte the client just sent (a fifth of the server's time on a large
push). Instead, as each verified window is stored:

* its SHA-256 and size are remembered (a window is immutable: the name
  holds those bytes until it is deleted, and deletions through this
  process forget it);
* the stream's SHA-256 is carried forward over the windows received in
  order; a window that arrives early waits in the store and is read when
  its turn comes (requests in flight arrive a little out of order).

A commit then checks each window by a `size` call (the object is still
there) and the remembered hash, and takes the stream checksum as carried;
whatever is not remembered (another process stored it, or this one
restarted or forgot it) is read and hashed as before. Both tables are
bounded: the oldest entries go first.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_WINDOWS = 1 << 16
MAX_STREAMS = 256


@dataclass
class _Stream:
    """The running SHA-256 of one blob's stream, over windows 0 .. next-1."""

    window: int
    next: int = 0
    sha: Any = field(default_factory=hashlib.sha256)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Verified:
    """Window hashes and stream checksums this process computed (thread-safe, bounded)."""

    def __init__(self) -> None:
        self._windows: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self._streams: OrderedDict[str, _Stream] = OrderedDict()
        self._lock = threading.Lock()

    def stored(
        self,
        blob: str,
        n: int,
        m: int,
        data: bytes,
        sha: str,
        read: Callable[[int], bytes | None],
    ) -> None:
        """Note a verified window just stored; `read(k)` returns stored window k, None if absent."""
        with self._lock:
            self._remember(f"{blob}/0/{n}/{m}", sha, len(data))
            stream = self._streams.get(blob)
            if stream is None or stream.window != n:
                if m != 0:
                    return  # the stream was not followed from its start: a commit reads it
                stream = self._streams[blob] = _Stream(n)
                while len(self._streams) > MAX_STREAMS:
                    self._streams.popitem(last=False)
            self._streams.move_to_end(blob)
        with stream.lock:
            if m != stream.next:
                return  # early: read when its turn comes
            stream.sha.update(data)
            stream.next += 1
            while True:
                found = read(stream.next)
                if found is None:
                    return
                stream.sha.update(found)
                stream.next += 1

    def _remember(self, name: str, sha: str, size: int) -> None:
        self._windows[name] = (sha, size)
        self._windows.move_to_end(name)
        while len(self._windows) > MAX_WINDOWS:
            self._windows.popitem(last=False)

    def window(self, name: str) -> tuple[str, int] | None:
        """The SHA-256 and size of a window this process stored, if it remembers it."""
        with self._lock:
            return self._windows.get(name)

    def checksum(self, blob: str, n: int, count: int) -> str | None:
        """The stream's SHA-256 if all `count` windows of `n` bytes were followed in order."""
        with self._lock:
            stream = self._streams.get(blob)
        if stream is None or stream.window != n:
            return None
        with stream.lock:
            return stream.sha.hexdigest() if stream.next == count else None

    def forget(self, blob: str) -> None:
        """Drop what is remembered of a blob (it is deleted, or committed)."""
        with self._lock:
            self._streams.pop(blob, None)
            prefix = f"{blob}/0/"
            for name in [k for k in self._windows if k.startswith(prefix)]:
                del self._windows[name]
