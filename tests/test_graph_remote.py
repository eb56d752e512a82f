"""The remote graph store: update rewriting, and the ox.Store interface on real SPARQL servers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pyoxigraph as ox
import pytest
from conftest import Run
from graphutil import GraphBackend, backend_for

from chute.errors import StorageError, UsageError
from chute.graph_remote import RemoteGraph, RemoteStore
from chute.sparql_client import SparqlClient
from chute.sparql_rewrite import BLOCK, target

G = "urn:chute:graph:test"
EX = "urn:ex:"


def _n(local: str) -> ox.NamedNode:
    return ox.NamedNode(EX + local)


# --- rewriting (no server) -------------------------------------------------------


@pytest.mark.parametrize(
    ("update", "expected"),
    [
        (
            'INSERT DATA {\n<urn:a> <urn:p> "x { } . ;" .\n}',
            'INSERT DATA {\nGRAPH <urn:g> {\n<urn:a> <urn:p> "x { } . ;" .\n}\n}',
        ),
        (
            "DELETE DATA { <urn:a> <urn:p> 1.5 } ; INSERT DATA { <urn:a> <urn:p> 2 }",
            "DELETE DATA {\nGRAPH <urn:g> {\n<urn:a> <urn:p> 1.5 .\n}\n} ;\n"
            "INSERT DATA {\nGRAPH <urn:g> {\n<urn:a> <urn:p> 2 .\n}\n}",
        ),
        (
            "DELETE { ?s ?p ?o } WHERE { ?s a ?graph ; ?p ?o }",
            "WITH <urn:g> DELETE { ?s ?p ?o } WHERE { ?s a ?graph ; ?p ?o }",
        ),
        (
            "DELETE WHERE { ?s <urn:p> ?o }",
            "WITH <urn:g> DELETE { ?s <urn:p> ?o } WHERE { ?s <urn:p> ?o }",
        ),
        ("CLEAR SILENT DEFAULT", "CLEAR SILENT GRAPH <urn:g>"),
        ("DROP ALL", "CLEAR GRAPH <urn:g>"),
        ("CLEAR GRAPH <urn:other>", "CLEAR GRAPH <urn:other>"),
        (
            "INSERT DATA { GRAPH <urn:h> { <urn:a> <urn:b> <urn:c> } }",
            "INSERT DATA { GRAPH <urn:h> { <urn:a> <urn:b> <urn:c> } }",
        ),
        (
            "PREFIX ex: <urn:e#>\nINSERT DATA { ex:a ex:graph ex:b.c . ex:a ex:p '''a\n. }''' }",
            "PREFIX ex: <urn:e#>\nINSERT DATA {\nGRAPH <urn:g> {\nex:a ex:graph ex:b.c .\n"
            "ex:a ex:p '''a\n. }''' .\n}\n}",
        ),
    ],
)
def test_updates_are_aimed_at_the_named_graph(update: str, expected: str) -> None:
    assert target(update, "urn:g") == expected


def test_large_data_is_split_into_blocks_of_one_operation() -> None:
    lines = [f'<urn:s{i}> <urn:p> "v {i} ." .' for i in range(BLOCK * 2 + 5)]
    out = target("INSERT DATA {\n" + "\n".join(lines) + "\n}", "urn:g")
    assert out.count("INSERT DATA") == 1
    assert out.count("GRAPH <urn:g>") == 3
    assert all(line in out for line in lines)


# --- the store on real servers -----------------------------------------------------


@pytest.fixture(params=[pytest.param("oxigraph"), pytest.param("virtuoso")])
def server(request: pytest.FixtureRequest) -> GraphBackend:
    return backend_for(request.param, request)


class CountingClient(SparqlClient):
    """The real client, counting the update requests it sends."""

    updates = 0

    def update(self, text: str) -> None:
        self.updates += 1
        super().update(text)


def _store(server: GraphBackend, graph: str | None = None) -> tuple[RemoteStore, CountingClient]:
    assert server.query_url and server.update_url
    config = RemoteGraph(server.query_url, server.update_url, graph or f"urn:chute:{uuid.uuid4()}")
    client = CountingClient(config)
    return RemoteStore(config, client), client


pytestmark = pytest.mark.slow


def test_store_interface(server: GraphBackend) -> None:
    store, client = _store(server)
    assert len(store) == 0
    quads = [
        ox.Quad(_n("a"), _n("p"), ox.Literal("x")),
        ox.Quad(_n("a"), _n("p"), ox.Literal(5)),
        ox.Quad(_n("a"), _n("q"), _n("b")),
        ox.Quad(_n("b"), _n("p"), ox.Literal("brace } and dot .", language="en")),
    ]
    store.extend(quads)
    assert client.updates == 1
    assert len(store) == 4
    assert set(store.quads_for_pattern(_n("a"), _n("p"), None)) == set(quads[:2])
    assert set(store.quads_for_pattern(None, None, _n("b"))) == {quads[2]}
    assert list(store.quads_for_pattern(_n("a"), _n("q"), _n("b"))) == [quads[2]]
    assert list(store.quads_for_pattern(_n("z"), None, None)) == []
    store.remove(quads[0])
    store.add(ox.Quad(_n("c"), _n("p"), ox.Literal(True)))
    assert len(store) == 4
    solutions = store.query("SELECT ?o WHERE { ex:a ex:p ?o }", prefixes={"ex": EX})
    assert isinstance(solutions, ox.QuerySolutions)
    assert [row["o"] for row in solutions] == [ox.Literal(5)]
    boolean = store.query("ASK { ?s ?p true }")
    assert isinstance(boolean, ox.QueryBoolean) and bool(boolean)
    triples = store.query("CONSTRUCT WHERE { ?s <urn:ex:q> ?o }")
    assert isinstance(triples, ox.QueryTriples)
    assert list(triples) == [ox.Triple(_n("a"), _n("q"), _n("b"))]
    store.update("DELETE WHERE { ?s <urn:ex:q> ?o }")
    assert len(store) == 3
    store.clear()
    assert len(store) == 0
    store.flush()


def test_graphs_are_apart_and_errors_are_clear(server: GraphBackend) -> None:
    one, _ = _store(server)
    two, _ = _store(server)
    one.extend([ox.Quad(_n("a"), _n("p"), _n("b"))])
    assert len(two) == 0 and len(one) == 1
    with pytest.raises(UsageError, match="SPARQL"):
        one.query("SELEKT nothing")
    with pytest.raises(UsageError, match="SPARQL"):
        one.update("INSERT DATUM { }")


def test_a_large_update_is_one_request(server: GraphBackend) -> None:
    store, client = _store(server)
    quads = [ox.Quad(_n(f"s{i}"), _n("p"), ox.Literal(f"value {i}")) for i in range(12_000)]
    store.update("INSERT DATA {\n" + "\n".join(f"{q} ." for q in quads) + "\n}")
    assert client.updates == 1
    assert len(store) == 12_000


def test_lines_go_in_one_request_each_as_they_are(server: GraphBackend) -> None:
    store, client = _store(server)
    # More than a block (Virtuoso's parser limit), and text a rewrite would have to scan.
    lines = [f'<urn:ex:s{i}> <urn:ex:p> "v {i} . }} GRAPH" .' for i in range(BLOCK * 2 + 5)]
    store.insert_lines(lines)
    assert client.updates == 1 and len(store) == len(lines)
    store.apply_data(lines[:10], ["<urn:ex:a> <urn:ex:q> <urn:ex:b> ."])
    assert client.updates == 2 and len(store) == len(lines) - 10 + 1
    assert list(store.quads_for_pattern(_n("a"), None, None)) == [
        ox.Quad(_n("a"), _n("q"), _n("b"))
    ]
    store.insert_lines([])
    store.apply_data([], [])
    assert client.updates == 2  # nothing to send: no request


def test_inserts_may_go_before_deletes(server: GraphBackend) -> None:
    store, client = _store(server)
    same = ["<urn:ex:a> <urn:ex:p> <urn:ex:b> ."]
    store.apply_data(same, same)  # deleted (it was not there), then inserted
    assert len(store) == 1
    store.apply_data(same, same, inserts_first=True)  # inserted (it was there), then deleted
    assert len(store) == 0 and client.updates == 2


def test_unreachable_server_is_a_storage_error() -> None:
    slept: list[float] = []
    config = RemoteGraph("http://127.0.0.1:9/q", "http://127.0.0.1:9/u", G)
    store = RemoteStore(config, SparqlClient(config, sleep=slept.append))
    with pytest.raises(StorageError, match="graph server"):
        len(store)
    assert slept == [0.5, 1.0, 2.0]
    with pytest.raises(UsageError):
        RemoteGraph("ftp://x", "http://y", G)


def test_virtuoso_digest_authentication(request: pytest.FixtureRequest) -> None:
    virtuoso = backend_for("virtuoso", request)
    base = (virtuoso.query_url or "").rsplit("/", 1)[0]
    config = RemoteGraph(base + "/sparql-auth", base + "/sparql-auth", G, "dba", "dba")
    store = RemoteStore(config)
    store.extend([ox.Quad(_n("x"), _n("p"), _n("y"))])
    assert len(store) == 1
    wrong = RemoteStore(RemoteGraph(config.query_url, config.update_url, G, "dba", "nope"))
    with pytest.raises(Exception, match="refused"):
        len(wrong)


def test_history_on_the_server_is_readable_by_rdflib(
    chute: Callable[..., Run],
    tmp_path: Path,
    server: GraphBackend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What chute writes is plain SPARQL data: rdflib's SPARQLStore reads the same graph."""
    from rdflib import Graph
    from rdflib.plugins.stores.sparqlstore import SPARQLStore

    assert server.query_url and server.update_url
    monkeypatch.setenv("CHUTE_GRAPH", server.query_url)
    monkeypatch.setenv("CHUTE_GRAPH_UPDATE", server.update_url)
    monkeypatch.setenv("CHUTE_GRAPH_NAME", f"urn:chute:{uuid.uuid4()}")
    chute("init", "--generate-key")
    src = tmp_path / "docs"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    uri = chute("put", str(src)).out.strip()
    store = SPARQLStore(server.query_url, returnFormat="json")
    graph = Graph(store=store, identifier=os.environ["CHUTE_GRAPH_NAME"])
    rows = list(graph.query("SELECT ?s WHERE { ?s a <https://w3id.org/chute/ns#Snapshot> }"))
    assert [str(row[0]) for row in rows] == [uri]


def test_rdflib_api_of_history_on_the_server(server: GraphBackend, tmp_path: Path) -> None:
    """`History.graph` and `History.query` (rdflib) work on a remote graph too."""
    from rdflib import URIRef

    from chute.graph import History
    from chute.graph_remote import open_remote

    store, _ = _store(server)
    store.extend([ox.Quad(_n("a"), _n("p"), ox.Literal(i)) for i in range(3)])
    history = History(tmp_path / "unused", "https://example.com", open_remote(store.config))
    try:
        rows = list(history.query("SELECT ?o WHERE { ?s <urn:ex:p> ?o } ORDER BY ?o"))
        assert [int(row[0]) for row in rows] == [0, 1, 2]
        assert len(list(history.graph.triples((URIRef(EX + "a"), None, None)))) == 3
        with pytest.raises(UsageError):  # no protocol form: bind in the query text
            history.graph.query("SELECT ?o { ?s ?p ?o }", initBindings={"s": URIRef(EX + "a")})
        assert history.triple_count() == 3
    finally:
        history.close()
    assert not (tmp_path / "unused").exists()
