"""`/chute/sparql` under real waitress, with real clients: SPARQLWrapper, rdflib's SPARQLStore."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from rdflib import Graph, URIRef
from rdflib.plugins.stores.sparqlstore import SPARQLStore
from SPARQLWrapper import CSV, JSON, JSONLD, N3, RDFXML, TSV, TURTLE, XML, SPARQLWrapper
from webutil import Node, make_node, request

SNAPSHOTS = "SELECT ?s ?t WHERE { ?s a chute:Snapshot ; prov:generatedAtTime ?t } ORDER BY ?t"
CONSTRUCT = "CONSTRUCT { ?s a chute:Snapshot } WHERE { ?s a chute:Snapshot }"
SLOW = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i . ?j ?k ?l }"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Node:
    home = tmp_path_factory.mktemp("sparql") / "home"
    found = make_node(home)
    tree = home.parent / "docs"
    (tree / "sub").mkdir(parents=True)
    for i in range(30):
        (tree / "sub" / f"f{i}.txt").write_text(f"file {i}\n")
    found.run("put", str(tree))
    (tree / "new.txt").write_text("new\n")
    found.run("put", str(tree))
    found.add_token("reader", "read")
    found.add_token("writer", "write")
    return found


@pytest.fixture(scope="module")
def server(node: Node) -> Iterator[str]:
    with node.serve(
        "--setting", "query_time_limit", "2", "--setting", "query_row_limit", "60"
    ) as base:
        yield base


def wrapper(server: str, token: str, query: str, fmt: str) -> SPARQLWrapper:
    client = SPARQLWrapper(f"{server}/chute/sparql")
    client.addCustomHttpHeader("Authorization", f"Bearer {token}")
    client.setQuery(query)
    client.setReturnFormat(fmt)
    return client


def test_sparqlwrapper_select_in_every_format(node: Node, server: str) -> None:
    token = node.tokens["reader"]
    query = SNAPSHOTS
    as_json = wrapper(server, token, query, JSON).query().convert()
    uris = [b["s"]["value"] for b in as_json["results"]["bindings"]]  # type: ignore[index]
    assert len(uris) == 2 and all("/chute/blob/example.com/node1/" in u for u in uris)
    as_xml = wrapper(server, token, query, XML).query().convert()
    found = [n.firstChild.data for n in as_xml.getElementsByTagName("uri")]  # type: ignore[union-attr]
    assert found == uris
    as_csv = wrapper(server, token, query, CSV).query().convert()
    rows = list(csv.DictReader(io.StringIO(as_csv.decode())))  # type: ignore[union-attr]
    assert [r["s"] for r in rows] == uris
    as_tsv = wrapper(server, token, query, TSV).query().convert()
    lines = as_tsv.decode().splitlines()  # type: ignore[union-attr]
    assert lines[0] == "?s\t?t" and [line.split("\t")[0] for line in lines[1:]] == [
        f"<{u}>" for u in uris
    ]
    ask = wrapper(server, token, "ASK { ?s a chute:Snapshot }", JSON).query().convert()
    assert ask["boolean"] is True  # type: ignore[index]


def test_sparqlwrapper_construct(node: Node, server: str) -> None:
    token = node.tokens["reader"]
    for fmt in (TURTLE, N3, RDFXML, JSONLD):
        result = wrapper(server, token, CONSTRUCT, fmt).query()
        converted = result.convert()
        graph = (
            converted
            if isinstance(converted, Graph)
            else Graph().parse(
                data=converted, format={TURTLE: "turtle", N3: "turtle", JSONLD: "json-ld"}[fmt]
            )
        )
        assert len(graph) == 2, fmt


def test_rdflib_sparqlstore(node: Node, server: str) -> None:
    store = SPARQLStore(
        f"{server}/chute/sparql", headers={"Authorization": f"Bearer {node.tokens['reader']}"}
    )
    graph = Graph(store=store)
    rows = list(graph.query(SNAPSHOTS))
    assert len(rows) == 2
    snapshot = rows[0][0]
    assert isinstance(snapshot, URIRef)
    triples = list(graph.triples((snapshot, None, None)))
    assert len(triples) > 10
    constructed = graph.query(CONSTRUCT)
    assert len(constructed.graph or []) == 2  # type: ignore[arg-type]


def test_protocol_forms(node: Node, server: str) -> None:
    token = node.tokens["reader"]
    accept = {"Accept": "application/sparql-results+json"}
    form = urlencode({"query": SNAPSHOTS, "format": "json", "output": "json"}).encode()
    by_form = request(
        server,
        "POST",
        "/chute/sparql",
        form,
        {**accept, "Content-Type": "application/x-www-form-urlencoded"},
        token,
    )
    direct = request(
        server,
        "POST",
        "/chute/sparql",
        SNAPSHOTS.encode(),
        {**accept, "Content-Type": "application/sparql-query"},
        token,
    )
    by_get = request(
        server,
        "GET",
        f"/chute/sparql?query={quote(SNAPSHOTS)}&format=json",
        headers=accept,
        token=token,
    )
    assert by_form.status == direct.status == by_get.status == 200
    assert by_form.json() == direct.json() == by_get.json()
    assert by_get.header("Content-Type") == "application/sparql-results+json"
    graph = quote("https://example.com/nothing")
    empty = request(
        server,
        "GET",
        f"/chute/sparql?query={quote(SNAPSHOTS)}&default-graph-uri={graph}",
        headers=accept,
        token=token,
    )
    assert empty.json()["results"]["bindings"] == []
    turtle_only = request(
        server,
        "GET",
        f"/chute/sparql?query={quote(SNAPSHOTS)}",
        headers={"Accept": "text/turtle"},
        token=token,
    )
    assert turtle_only.status == 406 and turtle_only.json()["error"] == "not-acceptable"


@pytest.mark.parametrize(
    ("method", "body", "headers", "path", "status"),
    [
        ("GET", None, {}, "/chute/sparql?query=SELEKT%20*", 400),
        ("GET", None, {}, "/chute/sparql", 400),
        (
            "GET",
            None,
            {},
            "/chute/sparql?query=INSERT%20DATA%20%7B%3Ca%3E%20%3Cb%3E%20%3Cc%3E%7D",
            400,
        ),
        ("GET", None, {}, "/chute/sparql?update=DROP%20ALL", 403),
        ("POST", b"DROP ALL", {"Content-Type": "application/sparql-update"}, "/chute/sparql", 403),
        (
            "POST",
            b"update=DROP+ALL",
            {"Content-Type": "application/x-www-form-urlencoded"},
            "/chute/sparql",
            403,
        ),
        ("POST", b"SELECT * {}", {"Content-Type": "text/plain"}, "/chute/sparql", 415),
        ("POST", b"\xff\xfe", {"Content-Type": "application/sparql-query"}, "/chute/sparql", 400),
        (
            "GET",
            None,
            {},
            "/chute/sparql?query=SELECT%20*%20%7B%7D&default-graph-uri=not%20an%20iri",
            400,
        ),
    ],
)
def test_bad_queries_and_updates_are_refused(
    node: Node,
    server: str,
    method: str,
    body: bytes | None,
    headers: dict[str, str],
    path: str,
    status: int,
) -> None:
    resp = request(server, method, path, body, headers, node.tokens["reader"])
    assert resp.status == status, resp.body
    assert set(resp.json()) == {"error", "status", "message"}


def test_scopes(node: Node, server: str) -> None:
    path = f"/chute/sparql?query={quote(SNAPSHOTS)}"
    assert request(server, "GET", path).status == 401
    assert request(server, "GET", path, token="chute_not-a-token").status == 401
    assert request(server, "GET", path, token=node.tokens["writer"]).status == 403


def test_limits_stop_the_query_and_the_server_goes_on(node: Node, server: str) -> None:
    token = node.tokens["reader"]
    slow = request(server, "GET", f"/chute/sparql?query={quote(SLOW)}", token=token)
    assert slow.status == 400 and slow.json()["error"] == "limit-exceeded"
    assert "stopped" in slow.json()["message"]
    many = request(
        server, "GET", f"/chute/sparql?query={quote('SELECT * { ?s ?p ?o }')}", token=token
    )
    assert many.status == 400 and "rows" in many.json()["message"]
    fine = request(server, "GET", f"/chute/sparql?query={quote(SNAPSHOTS)}", token=token)
    assert fine.status == 200 and len(fine.json()["results"]["bindings"]) == 2


def test_a_put_runs_while_the_server_is_up(node: Node, server: str, tmp_path: Path) -> None:
    """The server releases the graph when idle, so `chute put` in another process gets it."""
    token = node.tokens["reader"]
    assert (
        request(server, "GET", f"/chute/sparql?query={quote(SNAPSHOTS)}", token=token).status == 200
    )
    tree = tmp_path / "more"
    tree.mkdir()
    (tree / "a.txt").write_text("a\n")
    uri = node.run("put", str(tree)).stdout.strip()
    count = request(server, "GET", f"/chute/sparql?query={quote(SNAPSHOTS)}", token=token).json()
    assert uri in [b["s"]["value"] for b in count["results"]["bindings"]]
    assert json.loads(node.run("ls", "--json").stdout)[-1]["uri"] == uri
