"""Loading a snapshot's triples ahead of its transaction.

`BulkLoader` feeds Oxigraph's bulk loader (no transaction, several times
faster than one; it releases the GIL) from a thread of its own, so the
walk that makes the next batch runs meanwhile. What goes ahead is
reachable only once the snapshot's transaction commits: see
`chute.graph_write` for why that is safe after a crash.
"""

from __future__ import annotations

import queue
import threading

import pyoxigraph as ox

from chute.errors import StorageError

# Lines per bulk load. Each load is a few MiB of text and about twice that inside
# Oxigraph while it runs; halving 50k to 25k cut a 50k-file put's peak RSS by ~27 MiB
# at no measurable cost in time (fewer lines per load means more files to compact).
BULK_BATCH = 25_000
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


class BulkLoader:
    """Load batches of N-Triples into an embedded store from threads of its own.

    Oxigraph's bulk loader releases the GIL, so the walk making the next
    batch runs while `LOADERS` batches load. One more batch waits (memory
    stays flat); `close` waits for all of them and raises what a load raised.
    What goes ahead is a set of triples, so the order of the loads does not
    matter.
    """

    def __init__(self, store: ox.Store) -> None:
        self._store: ox.Store | None = store  # dropped by close: the store closes with History
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=1)
        self._threads: list[threading.Thread] = []
        self._error: BaseException | None = None

    def __call__(self, ntriples: str) -> None:
        if self._error is not None:
            raise self._error
        if self._store is None:
            raise RuntimeError("the bulk loader is closed")
        if not self._threads:
            self._threads = [
                threading.Thread(
                    target=self._run, args=(self._store,), name=f"chute-graph-load-{n}", daemon=True
                )
                for n in range(LOADERS)
            ]
            for thread in self._threads:
                thread.start()
        self._queue.put(ntriples)

    def _run(self, store: ox.Store) -> None:
        while (data := self._queue.get()) is not None:
            if self._error is None:
                try:
                    store.bulk_load(data, format=ox.RdfFormat.N_TRIPLES, lenient=LENIENT)
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
        self._store = None
        if self._error is not None:
            raise self._error


def graph_write_error(exc: OSError) -> StorageError:
    """The error of a failed write to the embedded graph (RocksDB's text names the file)."""
    error = StorageError(f"cannot write the graph: {exc}")
    error.__cause__ = exc  # also when it is raised later, from the writer's thread
    return error
