"""The history graph on a SPARQL 1.1 server, behind the interface History uses on Oxigraph.

`History` talks to its store through a handful of `pyoxigraph.Store`
methods (`query`, `update`, `quads_for_pattern`, `extend`, `len`, `flush`,
and for rdflib's `History.graph` also `add`, `remove`, `named_graphs`).
`RemoteStore` implements exactly those over the SPARQL 1.1 Protocol, so
History, its span index and the web app's query worker run unchanged on a
remote server, and keep pyoxigraph's native result types: SELECT and ASK
answers are parsed with `pyoxigraph.parse_query_results`, CONSTRUCT and
DESCRIBE answers become a genuine `QueryTriples` (through a small
in-memory store).

Configuration (see `chute.config`): `CHUTE_GRAPH` is the query endpoint;
`CHUTE_GRAPH_UPDATE` the update endpoint (default: the query endpoint, as
Virtuoso and Fuseki's `/sparql` take both); `CHUTE_GRAPH_USER` and
`CHUTE_GRAPH_PASSWORD` credentials (HTTP Basic, or Digest when the server
asks for it, as Virtuoso's `/sparql-auth` does); `CHUTE_GRAPH_NAME` the
named graph (default `urn:chute:graph:<repository id>`, so one server holds
many repositories, and every node of one repository shares one graph).

Why a named graph: the server's default graph is shared (Virtuoso has none
you can write to, and its union default graph holds its own system
triples). Queries name the graph with the protocol's `default-graph-uri`;
updates are rewritten to write into it (`chute.sparql_rewrite`).

Atomicity: every `update` is one HTTP request, and History makes a
snapshot visible with one request (`apply_data`), so a server that runs a
request as one transaction (Oxigraph, Fuseki, GraphDB) holds all of a
snapshot or none. A big snapshot's entry versions go ahead in batches
(`insert_lines`, one request each), which no snapshot reaches until that
last request commits, as on the embedded store (`chute.graph_write`).
Virtuoso commits each operation of a request on its own; a new snapshot
(the usual case, inserts only) is one operation there too, so it is also
all or none; a rewrite of spans (a snapshot added between others, or
forgotten) is a DELETE DATA then an INSERT DATA, and a crash between the
two leaves spans that `History.repair` recomputes at the next sync. The
spans a forgotten snapshot hands on to the next one are inserted before
the old ones are deleted: a crash between the two leaves both, and the
next sync, which removes the snapshot again, deletes the old ones.

Why not rdflib's `SPARQLUpdateStore` underneath: its connector turns every
HTTP error into a bare `ValueError` (or returns a tuple instead of a
result for POSTed queries), parses every answer into rdflib terms, and has
neither keep-alive, Digest authentication nor retries. rdflib is still the
API on top (`History.graph` wraps this store with oxrdflib), and any rdflib
`SPARQLStore` or SPARQLWrapper client reads the same named graph.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import pyoxigraph as ox

from chute.config import Settings
from chute.errors import StorageError, UsageError
from chute.sparql_rewrite import data, target

if TYPE_CHECKING:
    from chute.sparql_client import SparqlClient


@dataclass(frozen=True)
class RemoteGraph:
    """Where a remote graph lives and how to reach it (picklable: the query worker gets it)."""

    query_url: str
    update_url: str
    graph: str
    user: str | None = None
    password: str | None = None
    timeout: float = 300.0

    def __post_init__(self) -> None:
        for url in (self.query_url, self.update_url):
            if not url.startswith(("http://", "https://")):
                raise UsageError(f"the graph endpoint must be an http(s) URL: {url}")


def default_graph_name(repo_id: str) -> str:
    """The named graph of a repository when CHUTE_GRAPH_NAME does not say."""
    return f"urn:chute:graph:{repo_id}"


def _prologue(prefixes: dict[str, str] | None) -> str:
    return "".join(f"PREFIX {p}: <{ns}>\n" for p, ns in (prefixes or {}).items())


def _term(term: Any) -> str:
    return str(term) if term is not None else ""


class RemoteStore:
    """A graph in one named graph of a SPARQL 1.1 server, with pyoxigraph's Store interface."""

    def __init__(self, config: RemoteGraph, client: SparqlClient | None = None) -> None:
        self.config = config
        self.graph = ox.NamedNode(config.graph)
        if client is None:
            from chute.sparql_client import SparqlClient  # requests: imported when used

            client = SparqlClient(config)
        self.client = client

    # --- queries ---------------------------------------------------------

    def query(
        self,
        query: str,
        *,
        base_iri: str | None = None,
        prefixes: dict[str, str] | None = None,
        use_default_graph_as_union: bool = False,
        default_graph: Any = None,
        named_graphs: list[ox.NamedNode] | None = None,
        substitutions: dict[ox.Variable, Any] | None = None,
        **unsupported: Any,
    ) -> ox.QuerySolutions | ox.QueryBoolean | ox.QueryTriples:
        """Run a query on the server; the default graph is this store's named graph.

        This store is one graph, so its default graph, a blank-node graph name
        (rdflib's default) and the union of its graphs all mean that graph.
        Substitutions (rdflib's initBindings) and custom functions have no
        SPARQL Protocol form: bind values in the query text instead.
        """
        if unsupported or substitutions:
            raise UsageError("substitutions and custom functions need the embedded graph")
        text = (f"BASE <{base_iri}>\n" if base_iri else "") + _prologue(prefixes) + query
        graphs = default_graph if isinstance(default_graph, list) else [default_graph]
        named = [g for g in graphs if isinstance(g, ox.NamedNode)]
        if use_default_graph_as_union or len(named) < len(graphs):
            named.append(self.graph)
        params = [("default-graph-uri", g.value) for g in dict.fromkeys(named)]
        params += [("named-graph-uri", g.value) for g in named_graphs or []]
        media, body = self.client.query(text, params)
        return _parse_answer(media, body)

    def quads_for_pattern(
        self,
        subject: Any,
        predicate: Any,
        object: Any,  # the name of ox.Store's parameter
        graph_name: Any = None,
    ) -> Iterator[ox.Quad]:
        """Yield the quads that match a pattern (all in this store's graph)."""
        terms = (subject, predicate, object)
        names = ("s", "p", "o")
        pattern = " ".join(_term(t) or f"?{v}" for t, v in zip(terms, names, strict=True))
        free = [v for t, v in zip(terms, names, strict=True) if t is None]
        text = f"SELECT {' '.join('?' + v for v in free) or '*'} WHERE {{ {pattern} }}"
        if not free:
            text = f"ASK {{ {pattern} }}"
        graph = graph_name if isinstance(graph_name, ox.NamedNode) else self.graph
        result = self.query(text, default_graph=graph)
        if isinstance(result, ox.QueryBoolean):
            if bool(result):
                yield ox.Quad(subject, predicate, object)
            return
        assert isinstance(result, ox.QuerySolutions)
        for row in result:
            s = subject if subject is not None else row["s"]
            p = predicate if predicate is not None else row["p"]
            o = object if object is not None else row["o"]
            yield ox.Quad(s, p, o)

    def named_graphs(self) -> Iterator[ox.NamedNode | ox.BlankNode]:
        """No named graphs: everything is in this store's (default) graph."""
        return iter(())

    def __len__(self) -> int:
        result = self.query("SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }")
        assert isinstance(result, ox.QuerySolutions)
        for row in result:
            count = row["n"]
            return int(count.value) if count is not None else 0
        return 0

    # --- updates -----------------------------------------------------------

    def update(
        self,
        update: str,
        *,
        base_iri: str | None = None,
        prefixes: dict[str, str] | None = None,
        **unsupported: Any,
    ) -> None:
        """Apply an update in one request, aimed at this store's named graph."""
        if unsupported:
            raise UsageError("custom functions need the embedded graph")
        head = (f"BASE <{base_iri}>\n" if base_iri else "") + _prologue(prefixes)
        self.client.update(head + target(update, self.config.graph))

    def extend(self, quads: Iterable[ox.Quad]) -> None:
        """Insert quads (of the default graph) in one request."""
        self._data("INSERT", list(quads))

    def add(self, quad: ox.Quad) -> None:
        self._data("INSERT", [quad])

    def remove(self, quad: ox.Quad) -> None:
        self._data("DELETE", [quad])

    def _data(self, verb: str, quads: list[ox.Quad]) -> None:
        if quads:
            triples = "\n".join(f"{q.triple} ." for q in quads)
            self.update(f"{verb} DATA {{\n{triples}\n}}")

    def insert_lines(self, lines: list[str]) -> None:
        """Insert N-Triples lines (chute's own) in one request, without rewriting them."""
        if lines:
            self.client.update(data("INSERT", self.config.graph, lines))

    def apply_data(
        self, deletes: list[str], inserts: list[str], inserts_first: bool = False
    ) -> None:
        """Delete, then insert, N-Triples lines in one request (Virtuoso: two transactions).

        `inserts_first` swaps the two, for lines that share no triple.
        """
        order = (("DELETE", deletes), ("INSERT", inserts))
        parts = [
            data(verb, self.config.graph, lines)
            for verb, lines in (order[::-1] if inserts_first else order)
            if lines
        ]
        if parts:
            self.client.update(" ;\n".join(parts))

    def clear(self) -> None:
        """Remove every triple of this store's graph."""
        self.client.update(f"CLEAR SILENT GRAPH <{self.config.graph}>")

    def flush(self) -> None:
        """Nothing to do: the server has applied every update already."""


def _parse_answer(media: str, body: bytes) -> ox.QuerySolutions | ox.QueryBoolean | ox.QueryTriples:
    results = ox.QueryResultsFormat.from_media_type(media) if media else None
    if results is not None:
        return ox.parse_query_results(body, results)
    rdf = ox.RdfFormat.from_media_type(media) if media else None
    if rdf is None:
        raise StorageError(f"the graph server answered with an unknown media type {media!r}")
    scratch = ox.Store()  # gives the triples pyoxigraph's own QueryTriples type
    scratch.extend(ox.parse(body, rdf))
    return scratch.query("CONSTRUCT WHERE { ?s ?p ?o }")


def open_remote(config: RemoteGraph | None) -> ox.Store | None:
    """A store for History on the remote graph `config`, or None (the embedded graph)."""
    if config is None:
        return None
    # ox.Store is final, so RemoteStore cannot say it is one; it implements the part of its
    # interface that History, its helpers and oxrdflib call (see the module docstring).
    return cast(ox.Store, RemoteStore(config))


def remote_graph(settings: Settings, repo_id: str) -> RemoteGraph | None:
    """The remote graph the settings name for a repository, or None for the embedded one."""
    if not settings.graph:
        return None
    return RemoteGraph(
        query_url=settings.graph,
        update_url=settings.graph_update or settings.graph,
        graph=settings.graph_name or default_graph_name(repo_id),
        user=settings.graph_user,
        password=settings.graph_password,
    )


def graph_store(settings: Settings, repo_id: str) -> ox.Store | None:
    """The store History should use for a repository: remote, or None for the embedded one."""
    return open_remote(remote_graph(settings, repo_id))
