"""Repository locks: leases under `locks/` that expire by themselves.

Why locks and not a lock-free scheme: prune deletes windows, and a put that
is running dedups against the chunk index it loaded when it started: a
chunk it did not store because "the repository has it" must still be there
when its index.json lands. A lock-free scheme has to make that safe with
time (delete only what has been unreferenced for longer than any put can
run, as Kopia does) or with a second phase that re-checks new snapshots,
which turns every prune into two runs separated by a grace period. Leases
are simpler to reason about, need only what every store offers (write,
list, read, delete) and, because they expire, never need a manual unlock.

* `put`, `forget`, `check`, `get`, `push` and `pull` take a *shared* lock,
  `prune` an *exclusive* one. Shared locks coexist; an exclusive lock
  excludes every other lock.
* Acquiring: write `locks/<random>`, then list `locks/`. If a live lock
  conflicts, delete ours, wait a random moment and retry (until `wait`
  seconds have passed: then `Locked`, exit code 11). Two acquirers that
  race both see each other and both back off, so at most one wins.
* A lock object holds its kind, the operation, an expiry time and who
  holds it: a hash of host name + boot id + pid namespace (the host name
  itself is not needed), the pid and the process's start time. It is
  public, like everything under the repository, and says no more than that.
* A lock is *stale* when its lease has run out, or when it belongs to this
  machine (same host hash) and its process is gone (no such pid, or a pid
  reused by a process that started at another time). So after a kill -9 the
  next command on the same machine goes on at once; a lock of a crashed
  process elsewhere expires after `LEASE` seconds. Acquirers delete the
  stale locks they meet.
* The holder renews its lease every `LEASE / 6` seconds from a thread, and
  trusts it only until a quarter of the lease before it runs out (room for clock
  skew between machines). Each renewal first reads the lock back: if another
  process deleted it as stale, the lock is lost. Every write and delete of
  a locked operation goes through `GuardedStore`, which refuses once the
  lock is lost or no longer trusted: a put that was suspended for longer
  than its lease cannot commit a snapshot whose chunks a prune may have
  removed meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chute.errors import ChuteError, Forbidden, Locked, NotFound, StorageError
from chute.store.base import BlobStore

SHARED = "shared"
EXCLUSIVE = "exclusive"
LEASE = 300.0
DEFAULT_WAIT = 60.0
PREFIX = "locks"

Clock = Callable[[], float]


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: a host hash, a pid and the process's start time."""

    host: str
    pid: int
    start: int | None

    @classmethod
    def me(cls) -> Holder:
        return cls(host_hash(), os.getpid(), process_start(os.getpid()))

    def gone(self) -> bool:
        """Tell whether this holder is a process of this machine that no longer runs."""
        if self.host != host_hash() or not Path("/proc/self/stat").exists():
            return False
        start = process_start(self.pid)
        return start is None or (self.start is not None and start != self.start)


def host_hash() -> str:
    """Identify this machine and pid namespace, without naming it."""
    parts = [socket.gethostname()]
    for source in ("/proc/sys/kernel/random/boot_id",):
        try:
            parts.append(Path(source).read_text().strip())
        except OSError:
            parts.append("")
    try:
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        parts.append("")
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def process_start(pid: int) -> int | None:
    """Return a process's start time (clock ticks after boot), None if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])  # field 22 of stat(5); fields[0] is field 3
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True)
class LockInfo:
    """One lock object as read from the store."""

    name: str
    kind: str
    op: str
    expires: float
    holder: Holder

    @classmethod
    def parse(cls, name: str, data: bytes) -> LockInfo | None:
        try:
            doc = json.loads(data)
            holder = Holder(str(doc["host"]), int(doc["pid"]), doc.get("start"))
            return cls(name, str(doc["kind"]), str(doc["op"]), float(doc["expires"]), holder)
        except (ValueError, KeyError, TypeError):
            return None

    def stale(self, now: float) -> bool:
        return self.expires < now or self.holder.gone()

    def conflicts(self, kind: str) -> bool:
        return kind == EXCLUSIVE or self.kind == EXCLUSIVE

    def describe(self, now: float) -> str:
        left = self.expires - now
        article = "an" if self.kind == EXCLUSIVE else "a"
        lease = f"its lease ends in {left:.0f} s"
        return f"a running {self.op} holds {article} {self.kind} lock ({lease})"


def read_locks(store: BlobStore) -> Iterator[LockInfo | str]:
    """Yield every lock object, parsed; the name of any that cannot be parsed."""
    for name in list(store.list(PREFIX)):
        try:
            data = store.get(name)
        except NotFound:
            continue  # released while we looked
        info = LockInfo.parse(name, data)
        yield info if info is not None else name


class Lock:
    """A lease on the repository, renewed by a thread while it is held."""

    def __init__(
        self,
        store: BlobStore,
        kind: str,
        op: str,
        lease: float = LEASE,
        clock: Clock = time.time,
    ) -> None:
        self.store = store
        self.kind = kind
        self.op = op
        self.lease = lease
        self.safety = lease / 4
        self.clock = clock
        self.name = f"{PREFIX}/{uuid.uuid4().hex[:16]}"
        self.holder = Holder.me()
        self._written = b""
        self._trusted_until = 0.0
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()

    # --- acquiring and releasing ---------------------------------------

    def acquire(self, wait: float = DEFAULT_WAIT) -> Lock:
        """Take the lock, retrying for up to `wait` seconds; Locked if it stays taken."""
        deadline = time.monotonic() + wait
        while True:
            self._write()
            blocking = self._conflicts()
            if blocking is None:
                self._start_renewal()
                return self
            self.store.delete(self.name)
            if time.monotonic() >= deadline:
                raise Locked(f"repository is locked: {blocking}")
            time.sleep(random.uniform(0.05, 0.5))

    def _conflicts(self) -> str | None:
        now = self.clock()
        for info in read_locks(self.store):
            if isinstance(info, str):
                continue  # unreadable: a lock is written whole, so this is damage, not a holder
            if info.name == self.name:
                continue
            if info.stale(now):
                self.store.delete(info.name)
                continue
            if info.conflicts(self.kind):
                return info.describe(now)
        return None

    def _write(self) -> None:
        now = self.clock()
        doc: dict[str, Any] = {
            "version": 1,
            "kind": self.kind,
            "op": self.op,
            "expires": round(now + self.lease, 3),
            "host": self.holder.host,
            "pid": self.holder.pid,
            "start": self.holder.start,
        }
        data = json.dumps(doc, sort_keys=True).encode() + b"\n"
        self.store.put(self.name, data, replace=True)
        self._written = data
        self._trusted_until = now + self.lease - self.safety

    def release(self) -> None:
        """Stop renewing and delete the lock object."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._mutex:
            if self._lost is None:
                self._lost = "released"
        with contextlib.suppress(ChuteError):  # if not, it expires by itself
            self.store.delete(self.name)

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # --- keeping it ----------------------------------------------------

    def _start_renewal(self) -> None:
        self._thread = threading.Thread(target=self._renew_loop, name="chute-lock", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease / 6):
            # A failed renewal is retried at the next tick; ensure() fails once it is too late.
            with contextlib.suppress(ChuteError):
                self.renew()

    def renew(self) -> None:
        """Extend the lease, unless another process has taken the lock away."""
        with self._mutex:
            if self._lost is not None:
                return
            if self.clock() >= self._trusted_until:
                self._lost = "its lease ran out before it could be renewed"
                return
            try:
                current = self.store.get(self.name)
            except NotFound:
                current = b""
            if current != self._written:
                self._lost = "another process removed it as stale"
                return
            self._write()

    def ensure(self) -> None:
        """Raise Locked unless the lock is still held and its lease trusted."""
        with self._mutex:
            if self._lost is None and self.clock() >= self._trusted_until:
                self._lost = "its lease ran out before it could be renewed"
            if self._lost is not None:
                raise Locked(f"lost the repository lock ({self._lost}); nothing more was written")

    # --- handing it to a forked copy of this process ------------------

    def pause(self) -> None:
        """Stop renewing from this process, so a copy forked next can renew instead."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._thread = None
        self._stop = threading.Event()

    def resume(self) -> None:
        """Renew from this process: a forked copy, while it holds the lease for its parent."""
        self._start_renewal()

    def take_back(self) -> None:
        """Adopt the lease as the copy that renewed it left it, and renew from here again."""
        with self._mutex:
            try:
                current = self.store.get(self.name)
            except NotFound:
                current = b""
            except ChuteError as exc:  # the store failed: trust the lease no longer
                current = b""
                self._lost = self._lost or f"it could not be read back: {exc}"
            if current != self._written:
                info = LockInfo.parse(self.name, current) if current else None
                if info is None or info.holder != self.holder or info.kind != self.kind:
                    self._lost = self._lost or "another process removed it as stale"
                else:  # renewed by the copy: as trusted as its last renewal made it
                    self._written = current
                    self._trusted_until = info.expires - self.safety
        self._start_renewal()

    def verify(self) -> None:
        """Read the lock object back and raise Locked unless it is still ours."""
        self.ensure()
        with self._mutex:  # not while a renewal rewrites it
            try:
                current = self.store.get(self.name)
            except NotFound:
                current = b""
            if current != self._written:
                self._lost = "another process removed it as stale"
        self.ensure()


class GuardedStore(BlobStore):
    """A store whose writes and deletes go through only while a lock is held."""

    def __init__(self, inner: BlobStore, lock: Lock) -> None:
        self.inner = inner
        self.lock = lock
        self.location = inner.location
        self.forkable = inner.forkable

    def put(self, name: str, data: bytes | memoryview, replace: bool = False) -> None:
        self.lock.ensure()
        self.inner.put(name, data, replace)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self.inner.get(name, offset, length)

    def size(self, name: str) -> int | None:
        return self.inner.size(name)

    def list(self, prefix: str = "") -> Iterator[str]:
        return self.inner.list(prefix)

    def delete(self, name: str) -> None:
        self.lock.ensure()
        self.inner.delete(name)


def lock(store: BlobStore, kind: str, op: str, wait: float = DEFAULT_WAIT) -> Lock:
    """Acquire a lock on the repository in `store` (use it as a context manager)."""
    return Lock(store, kind, op).acquire(wait)


def read_lock(store: BlobStore, op: str, wait: float = DEFAULT_WAIT) -> Lock:
    """Take the shared lock of a command that only reads, so no prune runs under it.

    A repository it cannot write to (read-only media, a token without
    `write`) fails with a one-line error that names `--no-lock`.
    """
    try:
        return lock(store, SHARED, op, wait)
    except (StorageError, Forbidden) as exc:
        raise type(exc)(
            f"cannot take a shared lock for {op}: {exc.message}"
            " (for a read-only repository, give --no-lock)"
        ) from exc
