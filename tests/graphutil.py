"""Run a graph test against every store: embedded Oxigraph, and real SPARQL 1.1 servers.

    pytestmark = pytest.mark.usefixtures("graph_backend")  # conftest loads this plugin

`graph_backend` is parametrized over `embedded` (the default store),
`oxigraph` (`oxigraph serve`) and `virtuoso` (Virtuoso from Debian); for a
server it sets `CHUTE_GRAPH` / `CHUTE_GRAPH_UPDATE` for the test, so the
same CLI commands reach it. Each server is started once per session, on
free ports, with its data in a temp dir; every test has its own repository
and so its own named graph. A server whose program is missing skips its
tests with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Run
from rdflib import Graph
from servers import Unavailable, oxigraph_server, virtuoso_server

# (query path, update path) of each server
PATHS = {"oxigraph": ("/query", "/update"), "virtuoso": ("/sparql", "/sparql")}

# Tests a server cannot pass because of a bug of its own (strict: a fixed server fails them).
SERVER_BUGS: dict[tuple[str, str], str] = {}  # (server, test name) -> the bug


@dataclass(frozen=True)
class GraphBackend:
    """The graph store a test runs against."""

    name: str
    query_url: str | None = None
    update_url: str | None = None

    @property
    def remote(self) -> bool:
        return self.query_url is not None

    def wipe(self, home: Path) -> None:
        """Lose the whole graph (every repository's), as a crash or an operator might."""
        if self.update_url is None:
            import shutil

            shutil.rmtree(home / "data" / "chute" / "graph")
            return
        import urllib.request

        request = urllib.request.Request(
            self.update_url,
            data=_clear_chute_graphs(self.query_url or ""),
            headers={"Content-Type": "application/sparql-update"},
        )
        urllib.request.urlopen(request, timeout=60).close()


def _clear_chute_graphs(query_url: str) -> bytes:
    """An update that clears chute's graphs (CLEAR ALL would also drop Virtuoso's own)."""
    import json
    import urllib.parse
    import urllib.request

    query = (
        "SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } "
        "FILTER(STRSTARTS(STR(?g), 'urn:chute:')) }"
    )
    url = f"{query_url}?{urllib.parse.urlencode({'query': query})}"
    request = urllib.request.Request(url, headers={"Accept": "application/sparql-results+json"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        rows = json.load(reply)["results"]["bindings"]
    clears = [f"CLEAR GRAPH <{row['g']['value']}>" for row in rows]
    return (" ;\n".join(clears) or "CLEAR SILENT GRAPH <urn:chute:none>").encode()


def _serve(kind: str, factory: pytest.TempPathFactory) -> Iterator[str]:
    start = oxigraph_server if kind == "oxigraph" else virtuoso_server
    try:
        with start(factory.mktemp(kind)) as url:
            yield url
    except Unavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def oxigraph_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An Oxigraph SPARQL server for the whole session."""
    yield from _serve("oxigraph", tmp_path_factory)


@pytest.fixture(scope="session")
def virtuoso_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Virtuoso server for the whole session."""
    yield from _serve("virtuoso", tmp_path_factory)


def backend_for(kind: str, request: pytest.FixtureRequest) -> GraphBackend:
    """The backend `kind`, its server started if need be."""
    if kind == "embedded":
        return GraphBackend("embedded")
    base = request.getfixturevalue(f"{kind}_url")
    query, update = PATHS[kind]
    return GraphBackend(kind, base + query, base + update)


@pytest.fixture(
    params=[
        "embedded",
        pytest.param("oxigraph", marks=pytest.mark.slow),
        pytest.param("virtuoso", marks=pytest.mark.slow),
    ]
)
def graph_backend(
    request: pytest.FixtureRequest, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> GraphBackend:
    """The graph store this test runs on (the CLI reaches it through CHUTE_GRAPH)."""
    bug = SERVER_BUGS.get((request.param, request.node.originalname))
    if bug:
        request.applymarker(pytest.mark.xfail(reason=bug, strict=True))
    backend = backend_for(request.param, request)
    if backend.query_url and backend.update_url:
        monkeypatch.setenv("CHUTE_GRAPH", backend.query_url)
        monkeypatch.setenv("CHUTE_GRAPH_UPDATE", backend.update_url)
    return backend


def export_graph(chute: Callable[..., Run]) -> Graph:
    """Return every triple of the repository's graph, read through `chute query`."""
    out = chute("query", "CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o }", "--format", "ntriples").out
    return Graph().parse(data=out, format="nt")


def assert_a_rebuild_gives_the_same_graph(chute: Callable[..., Run]) -> None:
    """The graph as chute left it equals the one `chute graph rebuild` makes from the blobs."""
    before = export_graph(chute)
    chute("graph", "rebuild")
    after = export_graph(chute)
    assert len(before) == len(after) and before.isomorphic(after)
