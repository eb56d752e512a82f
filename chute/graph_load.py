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


class BulkLoader:
    """Load batches of N-Triples into an embedded store on a thread of its own.

    Oxigraph's bulk loader releases the GIL, so the walk making the next
    batch runs while one loads. One batch waits while one loads (memory stays
    flat); `close` waits for all of them and raises what a load raised.
    """

    def __init__(self, store: ox.Store) -> None:
        self._store: ox.Store | None = store  # dropped by close: the store closes with History
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=1)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def __call__(self, ntriples: str) -> None:
        if self._error is not None:
            raise self._error
        if self._store is None:
            raise RuntimeError("the bulk loader is closed")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, args=(self._store,), name="chute-graph-load", daemon=True
            )
            self._thread.start()
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
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._store = None
        if self._error is not None:
            raise self._error


def graph_write_error(exc: OSError) -> StorageError:
    """The error of a failed write to the embedded graph (RocksDB's text names the file)."""
    error = StorageError(f"cannot write the graph: {exc}")
    error.__cause__ = exc  # also when it is raised later, from the writer's thread
    return error
