"""How much to send per request: a transfer size that adapts, learned per peer.

Stored windows have a fixed size n per blob (`0/<n>/<m>`, 8 MiB by
default); what adapts is the *transfer* size: a request carries k
consecutive windows of one blob (`Chute-Windows` on a PUT, `count` on a
GET), k = max(1, size // n). Windows are never cut or re-windowed, so what
the peer stores is byte for byte what the owner has, every window is
verified on its own, and a broken request loses at most the window in
flight. The price is that one stored window is the smallest unit: a link
too slow for one window per timeout needs a repository with smaller
windows.

The rule, per round of completed requests (throughput = bytes of the round
over its wall time, so requests in flight count together):

* grow: while a round at twice the size is at least 10% faster than the
  best so far, double the size;
* hold: when doubling did not pay, go back to the best size and keep it;
  every `PROBE_EVERY` rounds try doubling once more (the link may have
  improved);
* shrink: on an error or a timeout, halve the size at once (and hold).

The size reached is saved per peer and direction under
`$XDG_STATE_HOME/chute/peers/<peer>.json`, and the next run starts there
(the seed's "use timing of previous sessions").
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIN_SIZE = 4 << 10
MAX_SIZE = 64 << 20
START_SIZE = 0  # no size learned yet: one stored window per request to begin with
GAIN = 1.10
PROBE_EVERY = 8


def state_dir() -> Path:
    """`$XDG_STATE_HOME/chute/peers` (default `~/.local/state/chute/peers`)."""
    value = os.environ.get("XDG_STATE_HOME")
    base = Path(value) if value else Path.home() / ".local" / "state"
    return base / "chute" / "peers"


@dataclass(frozen=True)
class Learned:
    """What a previous run learned about a peer in one direction."""

    size: int
    rate: float
    updated: float


def load_learned(peer: str, direction: str) -> Learned | None:
    """Return the size learned for a peer and direction (`push` or `pull`), if any."""
    try:
        doc = json.loads((state_dir() / f"{peer}.json").read_text())
        entry = doc[direction]
        return Learned(int(entry["size"]), float(entry["rate"]), float(entry["updated"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_learned(peer: str, direction: str, learned: Learned) -> None:
    """Record what this run learned (written atomically; other directions kept)."""
    path = state_dir() / f"{peer}.json"
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
        if not isinstance(doc, dict):
            doc = {}
    except (OSError, ValueError):
        doc = {}
    doc[direction] = {"size": learned.size, "rate": learned.rate, "updated": learned.updated}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)


def forget_learned(peer: str) -> None:
    """Drop what was learned about a peer (when it is removed)."""
    (state_dir() / f"{peer}.json").unlink(missing_ok=True)


@dataclass
class Sizer:
    """The adaptive transfer size (thread-safe)."""

    size: int = START_SIZE
    round_requests: int = 4
    minimum: int = MIN_SIZE
    maximum: int = MAX_SIZE
    clock: Callable[[], float] = time.monotonic
    history: list[int] = field(default_factory=list)
    best_rate: float = 0.0
    _growing: bool = True
    _best_size: int = 0
    _held_rounds: int = 0
    _round_bytes: int = 0
    _round_count: int = 0
    _round_start: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.size > 0:  # else: set by the first window size asked about
            self.size = min(max(self.size, self.minimum), self.maximum)
            self.history.append(self.size)
        self._best_size = self.size

    def windows(self, window: int) -> int:
        """How many stored windows of `window` bytes one request carries now.

        A size below one window is raised to it: growing from there is what
        can pay, doubling a size that still means one window cannot.
        """
        with self._lock:
            if self.size < window:
                self._set(max(self.minimum, min(window, self.maximum)))
                self._best_size = max(self._best_size, self.size)
            return max(1, self.size // window)

    def started(self) -> int:
        """Note that a request is about to be sent; return the size it is sent at."""
        with self._lock:
            if self._round_start is None:
                self._round_start = self.clock()
            return self.size

    def done(self, nbytes: int, size: int | None = None) -> None:
        """Count a request that completed; decide at the end of a round.

        A request sent at another size than the current one (still in flight
        when the size changed) does not count, nor does one that carried less
        than half of it (the last windows of a blob): either would blur the
        comparison.
        """
        with self._lock:
            if size is not None and (size != self.size or nbytes < size // 2):
                return
            if self._round_start is None:
                self._round_start = self.clock()
            self._round_bytes += nbytes
            self._round_count += 1
            if self._round_count < self.round_requests:
                return
            elapsed = max(self.clock() - self._round_start, 1e-6)
            self._decide(self._round_bytes / elapsed)
            self._round_bytes = self._round_count = 0
            self._round_start = self.clock()

    def failed(self) -> None:
        """An error or a timeout: halve the size and hold it."""
        with self._lock:
            self._set(max(self.minimum, self.size // 2))
            self._best_size = self.size
            self._growing = False
            self._held_rounds = 0
            self._round_bytes = self._round_count = 0
            self._round_start = None

    def _decide(self, rate: float) -> None:
        if self._growing:
            if rate > self.best_rate * GAIN:
                self.best_rate, self._best_size = rate, self.size
                if self.size < self.maximum:
                    self._set(min(self.size * 2, self.maximum))
                    return
            else:
                self._set(self._best_size)
            self._growing = False
            self._held_rounds = 0
            return
        self._held_rounds += 1
        self.best_rate = rate  # the held size's throughput now: what a probe must beat
        if self._held_rounds >= PROBE_EVERY and self.size < self.maximum:
            self._growing = True
            self._set(min(self.size * 2, self.maximum))

    def _set(self, size: int) -> None:
        if size != self.size or not self.history:
            self.size = size
            self.history.append(size)

    def learned(self) -> Learned | None:
        """What to keep for the next run (None if this run measured nothing)."""
        with self._lock:
            if (self.best_rate <= 0 and len(self.history) < 2) or self._best_size <= 0:
                return None
            return Learned(self._best_size, self.best_rate, time.time())
