"""Run SPARQL queries in the worker process, under a time limit.

One worker per app process, started on the first query (`spawn`, so it is
safe under threads and pre-forking servers). Queries go to it one at a
time: the graph's lock is per process anyway. Waiting for the worker counts
against the time limit. When the answer does not come in time the worker is
killed (its graph lock goes with it) and the query is answered with the
`limit-exceeded` error; the next query starts a fresh worker.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

from chute import errors
from chute.graph import LOCK_WAIT
from chute.graph_remote import RemoteGraph
from chute.web import queryworker
from chute.web.queryworker import QueryRequest


class QueryRunner:
    """The parent side of the query worker."""

    def __init__(
        self,
        graph_path: Path,
        base: str,
        time_limit: float,
        idle: float,
        held_dir: Path | None = None,
        remote: RemoteGraph | None = None,
    ) -> None:
        self.graph_path = graph_path
        self.base = base
        self.time_limit = time_limit
        self.idle = idle
        self.held_dir = held_dir
        self.remote = remote  # a graph on a SPARQL server (chute.graph_remote), or None
        self.held_version = 0
        self._lock = threading.Lock()
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None

    def _start(self) -> Connection:
        if self._process is not None and self._process.is_alive() and self._conn is not None:
            return self._conn
        self._stop()
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=queryworker.main,
            args=(
                child,
                str(self.graph_path),
                self.base,
                self.idle,
                None if self.held_dir is None else str(self.held_dir),
                self.remote,
            ),
            name="chute-query",
            daemon=True,
        )
        process.start()
        child.close()
        self._process, self._conn = process, parent
        return parent

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join()
        if self._conn is not None:
            self._conn.close()
        self._process = self._conn = None

    def run(self, request: QueryRequest) -> tuple[str, bytes]:
        """Run one query; return (media type, body) or raise the error it met."""
        started = time.monotonic()
        request = dataclasses.replace(request, held_version=self.held_version)
        if not self._lock.acquire(timeout=self.time_limit):
            raise errors.LimitExceeded("the server is busy with other queries; try again")
        try:
            conn = self._start()
            conn.send(request)
            reply = self._wait(conn, LOCK_WAIT + self.time_limit)
            if reply[0] == "open":
                left = self.time_limit - (time.monotonic() - started)
                reply = self._wait(conn, max(left, 0.0))
            return self._answer(reply)
        finally:
            self._lock.release()

    def _wait(self, conn: Connection, timeout: float) -> tuple[object, ...]:
        try:
            if conn.poll(timeout):
                reply: tuple[object, ...] = conn.recv()
                return reply
        except (EOFError, OSError):
            self._stop()
            raise errors.StorageError("the query worker died; try again") from None
        self._stop()
        raise errors.LimitExceeded(
            f"the query ran longer than {self.time_limit:g} s and was stopped"
        )

    @staticmethod
    def _answer(reply: tuple[object, ...]) -> tuple[str, bytes]:
        if reply[0] == "ok":
            return str(reply[1]), bytes(reply[2])  # type: ignore[call-overload]
        kind, message = str(reply[1]), str(reply[2])
        cls = getattr(errors, kind, None) or getattr(queryworker, kind, None)
        if not (isinstance(cls, type) and issubclass(cls, errors.ChuteError)):
            cls = errors.StorageError
        raise cls(message)

    def held_changed(self) -> None:
        """Note that a held repository changed: the next query rewrites its triples first."""
        self.held_version += 1

    def close(self) -> None:
        """Stop the worker."""
        with self._lock:
            self._stop()
