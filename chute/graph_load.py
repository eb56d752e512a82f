"""Loading a snapshot's triples ahead of its transaction.

`BulkLoader` hands batches of N-Triples text to a load function from
threads of its own, so the walk that makes the next batch runs meanwhile:
into the embedded store through Oxigraph's bulk loader (no transaction,
several times faster than one; it releases the GIL), into a graph on a
SPARQL server as one `INSERT DATA` request per batch (a first snapshot of
50,000 files as one request was 155 MB: more than Oxigraph's server takes,
and over 1 GiB of memory to make). What goes ahead is reachable only once
the snapshot's transaction commits: see `chute.graph_write` for why that
is safe after a crash.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable

import pyoxigraph as ox

from chute.errors import StorageError
from chute.graph_remote import RemoteStore
from chute.memory import map_big_blocks, release_free_memory

# Lines per batch. Each load is a few MiB of text and about twice that inside
# Oxigraph while it runs; halving 50k to 25k cut a 50k-file put's peak RSS by ~27 MiB
# at no measurable cost in time (fewer lines per load means more files to compact).
# Halving again to 12.5k cut another 28 MiB and cost 8% of the time of that put.
# 18k, once the graph phase (not the backup's) was a put's peak: 20-29 MiB lower than
# 25k on that put and 19 MiB on `mixed`, for 1.00-1.03x the time (A/Bs of 6-8 pairs).
BULK_BATCH = 18_000
# Every line chute loads is its own: made by `chute.graph_lines` (IRIs of hex ids,
# literals with JSON's escapes) or printed from pyoxigraph terms. So Oxigraph's
# parser may skip validating IRIs: that cut the bulk load of a 50k-file snapshot
# by a third, in wall and CPU time.
LENIENT = True


# Loads at once. One load parses its batch, then builds and ingests table files; a
# second one parses meanwhile. Two loaded a 50k-file snapshot into a store in 0.8x the
# time of one (2.1-2.6 s against 2.9 s), and the loads, not the walk that makes their
# batches, bound the graph phase. A whole put of those files: 0.89-0.94x the wall time
# (A/Bs of 12 and 10 pairs), for about 12 MiB more peak memory; a put of `mixed`
# (1 GiB, 21k files): 0.96-1.00x, for about 28 MiB more.
LOADERS = 2
# Requests at once to a SPARQL server: one, while the walk makes the next batch (the
# server applies each as a transaction of its own; more at once would contend there).
REMOTE_LOADERS = 1

# What the walk lets go (each listing once read) and what each load frees stay in
# glibc's heaps, between blocks still in use, and keep their pages until glibc is
# asked to give them back: at the end of a put of 50k small files 31 MiB of its ten
# heaps were free (17 MiB of the main one).
# Giving free pages back every 8 loads cut that put's peak RSS by 12 MiB (0.92x,
# 8 pairs) for 1.01x its wall time; after every load, by 17 MiB for 1.06x.
TRIM_EVERY = 8

Load = Callable[[str], None]  # N-Triples lines, joined


def loader_for(store: object) -> BulkLoader | None:
    """Return a loader for what may go ahead into `store`, if it takes batches."""
    if isinstance(store, ox.Store):
        map_big_blocks()  # each load's big buffers go back to the system when it ends
        return BulkLoader(_embedded_load(store), LOADERS)
    if isinstance(store, RemoteStore):
        return BulkLoader(lambda text: store.insert_lines(text.split("\n")), REMOTE_LOADERS)
    return None


def _embedded_load(store: ox.Store) -> Load:
    loads = itertools.count(1)  # next() on it is atomic: the loader threads share it

    def load(text: str) -> None:
        # As str: Oxigraph reads its UTF-8 in place, no bytes copy.
        store.bulk_load(text, format=ox.RdfFormat.N_TRIPLES, lenient=LENIENT)
        if next(loads) % TRIM_EVERY == 0:
            release_free_memory()

    return load


class BulkLoader:
    """Load batches of N-Triples text from threads of its own.

    The walk making the next batch runs while `threads` batches load. One
    more batch waits (memory stays flat); `close` waits for all of them and
    raises what a load raised. What goes ahead is a set of triples, so the
    order of the loads does not matter.
    """

    def __init__(self, load: Load, threads: int) -> None:
        self._load: Load | None = load  # dropped by close: the store closes with History
        self._count = threads
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=1)
        self._threads: list[threading.Thread] = []
        self._error: BaseException | None = None

    def __call__(self, text: str) -> None:
        if self._error is not None:
            raise self._error
        if self._load is None:
            raise RuntimeError("the bulk loader is closed")
        if not self._threads:
            self._threads = [
                threading.Thread(
                    target=self._run, args=(self._load,), name=f"chute-graph-load-{n}", daemon=True
                )
                for n in range(self._count)
            ]
            for thread in self._threads:
                thread.start()
        self._queue.put(text)

    def _run(self, load: Load) -> None:
        while (text := self._queue.get()) is not None:
            if self._error is None:
                try:
                    load(text)
                except OSError as exc:  # a full disk, say: one line, not a traceback
                    self._error = graph_write_error(exc)
                except BaseException as exc:  # handed to the writer's thread by close()
                    self._error = exc

    def close(self) -> None:
        """Wait until every batch is loaded, let go of the store; raise a load's error, if any."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []
        self._load = None
        if self._error is not None:
            raise self._error


def graph_write_error(exc: OSError) -> StorageError:
    """The error of a failed write to the embedded graph (RocksDB's text names the file)."""
    error = StorageError(f"cannot write the graph: {exc}")
    error.__cause__ = exc  # also when it is raised later, from the writer's thread
    return error
