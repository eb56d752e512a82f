"""The SPARQL query worker: a child process that holds the graph briefly.

Why a process: Oxigraph cannot interrupt a running query, and a thread
cannot be stopped; a process can. The server kills the worker when a query
goes over the time limit (`chute.web.queries`), which also frees the graph's
lock at once.

Why briefly: the on-disk graph takes an exclusive lock per process, and a
`chute put` elsewhere waits for it (up to 30 s). Opening the graph costs
about 35-45 ms here (2,000 files, 4 snapshots, 39k triples) against well
under 1 ms for a small query, so opening per query would dominate; the
worker keeps it open while queries keep coming and closes it after
`graph_idle` seconds (default 2) without one.

Protocol over a pipe: the parent sends `QueryRequest`; the worker answers
`("open",)` once the graph is open, then `("ok", media_type, body)` or
`("error", error_class_name, message)`.

On a server that holds repositories for other nodes, the worker also keeps
the graph's description of them current (`chute.web.held`): it rewrites it
whenever it opens the graph and whenever a request carries a newer
`held_version` than the one it wrote.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from itertools import islice
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pyoxigraph as ox

from chute import errors
from chute.graph import PREFIXES, History, bind_variables
from chute.graph_remote import RemoteGraph, open_remote
from chute.web.held import apply_held, held_quads

RESULT_TYPES: dict[str, ox.QueryResultsFormat] = {
    "application/sparql-results+json": ox.QueryResultsFormat.JSON,
    "application/json": ox.QueryResultsFormat.JSON,
    "application/sparql-results+xml": ox.QueryResultsFormat.XML,
    "application/xml": ox.QueryResultsFormat.XML,
    "text/xml": ox.QueryResultsFormat.XML,
    "text/csv": ox.QueryResultsFormat.CSV,
    "text/tab-separated-values": ox.QueryResultsFormat.TSV,
}
GRAPH_TYPES: dict[str, ox.RdfFormat] = {
    "text/turtle": ox.RdfFormat.TURTLE,
    "application/x-turtle": ox.RdfFormat.TURTLE,
    "application/n-triples": ox.RdfFormat.N_TRIPLES,
    "text/plain": ox.RdfFormat.N_TRIPLES,
    "application/rdf+xml": ox.RdfFormat.RDF_XML,
    "application/xml": ox.RdfFormat.RDF_XML,
    "application/ld+json": ox.RdfFormat.JSON_LD,
    "application/json": ox.RdfFormat.JSON_LD,
}
RESULT_DEFAULT = "application/sparql-results+json"
GRAPH_DEFAULT = "text/turtle"


class NotAcceptable(errors.ChuteError):
    """No media type the client accepts fits this kind of query result."""

    exit_code = 2
    http_status = 406
    code = "not-acceptable"


@dataclass(frozen=True)
class QueryRequest:
    """One query, as the worker receives it."""

    text: str
    accept: tuple[str, ...] = ()  # media types, most preferred first; "*/*" allowed
    default_graphs: tuple[str, ...] = ()
    named_graphs: tuple[str, ...] = ()
    bindings: dict[str, str] = field(default_factory=dict)
    max_rows: int = 100_000
    held_version: int = 0


def choose(accept: tuple[str, ...], table: dict[str, Any], default: str) -> str:
    """Pick the first acceptable media type of a table (406 when none fits)."""
    if not accept:
        return default
    for media in accept:
        if media in table:
            return media
        if media in ("*/*", "application/*", "text/*") and (
            media == "*/*" or default.startswith(media[:-1])
        ):
            return default
        if media.endswith("/*"):
            fits = [m for m in table if m.startswith(media[:-1])]
            if fits:
                return fits[0]
    raise NotAcceptable(f"none of {', '.join(accept)} fits this query's result")


def run_query(store: ox.Store, request: QueryRequest) -> tuple[str, bytes]:
    """Run one query on an open store; return (media type, body)."""
    text = bind_variables(request.text, request.bindings)
    options: dict[str, Any] = {}
    if request.default_graphs:
        options["default_graph"] = [ox.NamedNode(g) for g in request.default_graphs]
    if request.named_graphs:
        options["named_graphs"] = [ox.NamedNode(g) for g in request.named_graphs]
    try:
        result = store.query(text, prefixes=PREFIXES, **options)
    except SyntaxError as exc:
        raise errors.UsageError(f"SPARQL syntax error: {' '.join(str(exc).split())}") from exc
    buffer = io.BytesIO()
    if isinstance(result, ox.QueryTriples):
        media = choose(request.accept, GRAPH_TYPES, GRAPH_DEFAULT)
        triples = list(islice(result, request.max_rows + 1))
        _check_rows(len(triples), request.max_rows)
        ox.serialize(triples, buffer, GRAPH_TYPES[media], prefixes=PREFIXES)
        return media, buffer.getvalue()
    media = choose(request.accept, RESULT_TYPES, RESULT_DEFAULT)
    if isinstance(result, ox.QueryBoolean):
        result.serialize(buffer, RESULT_TYPES[media])
        return media, buffer.getvalue()
    names = [v.value for v in result.variables]
    rows = list(islice(result, request.max_rows + 1))
    _check_rows(len(rows), request.max_rows)
    # Oxigraph serialises only its own result objects: go through TSV, which is lossless.
    lines = ["\t".join(f"?{n}" for n in names)]
    for row in rows:
        lines.append("\t".join("" if row[n] is None else str(row[n]) for n in names))
    limited = ox.parse_query_results(("\n".join(lines) + "\n").encode(), ox.QueryResultsFormat.TSV)
    limited.serialize(buffer, RESULT_TYPES[media])
    return media, buffer.getvalue()


def _check_rows(count: int, limit: int) -> None:
    if count > limit:
        raise errors.LimitExceeded(f"the answer has more than {limit} rows; narrow the query")


def main(
    conn: Connection,
    graph_path: str,
    base: str,
    idle: float,
    held_dir: str | None = None,
    remote: RemoteGraph | None = None,
) -> None:
    """Serve queries from the parent until the pipe closes."""
    history: History | None = None
    held_written: int | None = None
    try:
        while True:
            if history is not None and not conn.poll(idle):
                history.close()
                history = None
                held_written = None
                continue
            try:
                request = conn.recv()
            except EOFError:
                return
            try:
                if history is None:
                    history = History(Path(graph_path), base, open_remote(remote))
                if held_dir is not None and held_written != request.held_version:
                    apply_held(history.store, held_quads(Path(held_dir), base))
                    held_written = request.held_version
                conn.send(("open",))
                media, body = run_query(history.store, request)
                conn.send(("ok", media, body))
            except errors.ChuteError as exc:
                conn.send(("error", type(exc).__name__, exc.message))
            except ValueError as exc:  # a bad IRI in default-graph-uri, named-graph-uri
                conn.send(("error", "UsageError", f"bad query parameter: {exc}"))
            except OSError as exc:
                conn.send(("error", "StorageError", f"query failed: {exc}"))
    finally:
        if history is not None:
            history.close()
