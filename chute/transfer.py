"""What push and pull share: plans, counts, and the worker pool that moves windows.

`Transfer.mirror` is the order both keep: list both sides, check that they
hold one repository (`_control`), plan the blobs the target lacks (`_plan`),
move prune's packs, then the snapshots' blobs, then forget's tombstones. A
transfer is a list of `BlobPlan`s (a blob's public index and the windows to
move) run by `Transfer.run_blobs`: `inflight` workers each take the next k
consecutive windows of the current plan when they are free (k from the
adaptive size of `chute.adapt` at that moment), move them in one request,
and go on; a plan is committed (its index.json written) once all its windows
are done and every plan before it is committed. Requests that fail in a way
that may pass are retried by the caller's `send` through `Transfer._failed`
(backoff, a smaller size, a StorageError after `attempts` failures in a
row).
"""

from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from chute.adapt import Sizer
from chute.errors import IntegrityError, StorageError
from chute.layout import PACKS, TOMBSTONE, BlobFiles, Layout, scan
from chute.store.base import BlobStore
from chute.store.http import MAX_BACKOFF, HttpStore, Transient

Progress = Callable[[int, int], None]


@dataclass
class TransferStats:
    """What a push or pull did (the `--json` summary)."""

    direction: str
    peer: str
    bytes: int = 0
    bytes_planned: int = 0
    windows_sent: int = 0
    windows_skipped: int = 0
    windows_resumed: int = 0
    blobs_sent: int = 0
    blobs_skipped: int = 0
    objects_sent: int = 0
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    window_size_start: int = 0
    window_size: int = 0
    window_sizes: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, count in counts.items():
                setattr(self, name, getattr(self, name) + count)

    def as_dict(self) -> dict[str, Any]:
        done = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        done["resumed"] = self.windows_resumed > 0
        done["throughput"] = round(self.bytes / self.seconds) if self.seconds > 0 else 0
        return done


@dataclass
class BlobPlan:
    """One blob to transfer: its public index and which windows go."""

    path: str
    index: bytes
    window: int
    hashes: tuple[str, ...]
    size: int
    present: frozenset[int]  # windows the sending side has
    send: list[int] = field(default_factory=list)

    @classmethod
    def parse(cls, path: str, index: bytes, present: frozenset[int]) -> BlobPlan:
        try:
            public = json.loads(index)
            hashes = tuple(str(h) for h in public["windows"])
            return cls(path, index, int(public["window"]), hashes, int(public["size"]), present)
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"the index of {path} is malformed") from exc

    def window_name(self, m: int) -> str:
        return f"{self.path}/0/{self.window}/{m}"

    def window_size(self, m: int) -> int:
        return min(self.window, self.size - m * self.window)

    @property
    def pruned(self) -> list[int]:
        return [m for m in range(len(self.hashes)) if m not in self.present]


def runs(numbers: list[int]) -> Iterator[list[int]]:
    """Split sorted window numbers into runs of consecutive ones."""
    run: list[int] = []
    for number in numbers:
        if run and number != run[-1] + 1:
            yield run
            run = []
        run.append(number)
    if run:
        yield run


def ordered_blobs(layout: Layout) -> list[BlobFiles]:
    """Blobs with an index.json in transfer order: packs first, then snapshots by time."""
    indexed = layout.indexed()
    return [b for b in indexed if b.is_pack] + [b for b in indexed if not b.is_pack]


class Transfer(ABC):
    """What push and pull share: the pool, the sizer, retries and counts."""

    def __init__(
        self,
        remote: HttpStore,
        sizer: Sizer,
        stats: TransferStats,
        inflight: int,
        progress: Progress | None = None,
        attempts: int = 6,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.remote = remote
        self.client = remote.client
        self.sizer = sizer
        self.stats = stats
        self.inflight = inflight
        self.progress = progress
        self.attempts = attempts
        self.backoff = backoff
        self.sleep = sleep
        self._done = 0
        self._done_lock = threading.Lock()

    def mirror(
        self,
        source: BlobStore,
        target: BlobStore,
        move: Callable[[BlobPlan, list[int]], None],
        only: set[str] | None = None,
    ) -> TransferStats:
        """Copy to `target` what it lacks of `source` (only the blobs in `only`, if given).

        `move` moves a plan's windows; the subclass checks both sides
        (`_control`), plans (`_plan`) and commits each blob (`_commit`).
        """
        started = time.monotonic()
        source_layout = scan(source.list())
        target_names = set(target.list())
        self._control(source_layout, target_names)
        blobs = [b for b in ordered_blobs(source_layout) if only is None or b.path in only]
        plans = self._plan(blobs, scan(target_names), target_names)
        self.stats.bytes_planned = sum(p.window_size(m) for p in plans for m in p.send)
        packs = [p for p in plans if p.path.startswith(PACKS + "/")]
        self.run_blobs(packs, move, self._commit)
        self.run_blobs([p for p in plans if p not in packs], move, self._commit)
        for blob in source_layout.forgotten():
            name = f"{blob.path}/{TOMBSTONE}"
            if (only is None or blob.path in only) and name not in target_names:
                target.put(name, source.get(name))
                self.stats.add(objects_sent=1)
        self.stats.seconds = time.monotonic() - started
        self.finish()
        return self.stats

    @abstractmethod
    def _control(self, source: Layout, target_names: set[str]) -> None:
        """Check that both sides hold one repository; copy its config and keys first."""

    @abstractmethod
    def _plan(
        self, blobs: list[BlobFiles], target: Layout, target_names: set[str]
    ) -> list[BlobPlan]:
        """Return the plans of the `blobs` the target has no index.json of."""

    @abstractmethod
    def _commit(self, plan: BlobPlan) -> None:
        """Write a plan's index.json on the target, once its windows are all there."""

    def finish(self) -> None:
        """Record the window sizes this run went through."""
        history = list(self.sizer.history)
        self.stats.window_sizes = history
        self.stats.window_size_start = history[0] if history else 0
        self.stats.window_size = self.sizer.size

    def _advance(self, nbytes: int) -> None:
        with self._done_lock:
            self._done += nbytes
            done = self._done
        if self.progress is not None:
            self.progress(done, self.stats.bytes_planned)

    def _failed(self, attempt: int, exc: Transient) -> None:
        """Count a failure; wait before the next attempt, or give up."""
        self.sizer.failed()
        self.stats.add(retries=1)
        if attempt >= self.attempts:
            raise StorageError(
                f"peer {self.client.url}: {exc} (gave up after {self.attempts} attempts)"
            )
        self.sleep(min(self.backoff * 2 ** (attempt - 1), MAX_BACKOFF))

    def run_blobs(
        self,
        plans: list[BlobPlan],
        send: Callable[[BlobPlan, list[int]], None],
        commit: Callable[[BlobPlan], None],
    ) -> None:
        """Send every plan's windows, `inflight` requests at once; commit the plans in order.

        Workers take the next k windows when they are free, k from the size
        at that moment, so a change of size applies to the very next
        request. A plan is committed once its windows are all acknowledged
        and every plan before it is committed: the other side never lists a
        blob before the older ones it may use.
        """
        cursor = Cursor(plans)
        commits = Commits(plans, commit, self.stats)
        commits.ready()  # plans with nothing left to send

        def work() -> None:
            while True:
                item = cursor.take(self.sizer)
                if item is None:
                    return
                plan, batch = item
                try:
                    send(plan, batch)
                    if cursor.finished(plan, len(batch)):
                        commits.ready(plan)
                except BaseException:
                    cursor.stop()
                    raise

        with ThreadPoolExecutor(self.inflight, thread_name_prefix="chute-transfer") as pool:
            workers = [pool.submit(work) for _ in range(self.inflight)]
            try:
                for future in workers:
                    future.result()
            except BaseException:  # also Ctrl-C: the requests in flight finish, no more start
                cursor.stop()
                raise
        commits.ready()
        if not commits.all_done():
            raise StorageError("the transfer stopped before every blob was committed")


class Cursor:
    """Hands out the windows still to send, in plan order, k consecutive ones at a time."""

    def __init__(self, plans: list[BlobPlan]) -> None:
        self._queue: deque[tuple[BlobPlan, list[int]]] = deque(
            (plan, run) for plan in plans for run in runs(plan.send)
        )
        self._left = {plan.path: len(plan.send) for plan in plans}
        self._stopped = False
        self._lock = threading.Lock()

    def take(self, sizer: Sizer) -> tuple[BlobPlan, list[int]] | None:
        """The next batch (None when everything is handed out, or after `stop`)."""
        with self._lock:
            while self._queue and not self._stopped:
                plan, run = self._queue[0]
                if not run:
                    self._queue.popleft()
                    continue
                k = sizer.windows(plan.window)
                batch = run[:k]
                del run[:k]
                return plan, batch
            return None

    def stop(self) -> None:
        """Hand out nothing more (a worker met a fatal error)."""
        with self._lock:
            self._stopped = True

    def finished(self, plan: BlobPlan, count: int) -> bool:
        """Count `count` windows of a plan as done; True when it has none left."""
        with self._lock:
            self._left[plan.path] -= count
            return self._left[plan.path] == 0


class Commits:
    """Commit plans in their order, each once all its windows are done."""

    def __init__(
        self, plans: list[BlobPlan], commit: Callable[[BlobPlan], None], stats: TransferStats
    ) -> None:
        self._plans = plans
        self._done = {plan.path for plan in plans if not plan.send}
        self._next = 0
        self._commit = commit
        self._stats = stats
        self._lock = threading.Lock()

    def ready(self, plan: BlobPlan | None = None) -> None:
        """Note a plan whose windows are all done; commit every plan whose turn it is."""
        with self._lock:
            if plan is not None:
                self._done.add(plan.path)
            while self._next < len(self._plans) and self._plans[self._next].path in self._done:
                self._commit(self._plans[self._next])
                self._stats.add(blobs_sent=1)
                self._next += 1

    def all_done(self) -> bool:
        return self._next == len(self._plans)
