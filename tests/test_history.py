"""The history graph: queries from the shell, SHACL conformance, rebuild."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pyshacl
import pytest
from conftest import ROOT, Run
from graphutil import GraphBackend, assert_a_rebuild_gives_the_same_graph, export_graph
from rdflib import Graph
from treeutil import make_every_kind_tree

import chute.graph as graph_module
import chute.graph_changes as graph_changes
import chute.graph_load as graph_load
import chute.graph_remote as graph_remote
from chute.errors import UsageError
from chute.graph import History

# Every test here runs on the embedded graph and on each SPARQL server (chute.graph_remote).
pytestmark = pytest.mark.usefixtures("graph_backend")

QUERIES = ROOT / "examples" / "queries"


@pytest.fixture
def two_snapshots(tmp_path: Path, chute: Callable[..., Run], repo_ready: None) -> list[str]:
    src = tmp_path / "docs"
    (src / "sub").mkdir(parents=True)
    (src / "keep.txt").write_text("same\n")
    (src / "grow.txt").write_text("small\n")
    (src / "gone.txt").write_text("bye\n")
    os.utime(src / "grow.txt", ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    first = chute("put", str(src)).out.strip()
    (src / "grow.txt").write_text("much bigger now\n" * 10)
    (src / "gone.txt").unlink()
    (src / "sub" / "new.txt").write_text("hello\n")
    second = chute("put", str(src)).out.strip()
    return [first, second]


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_every_version_of_a_path(chute: Callable[..., Run], two_snapshots: list[str]) -> None:
    out = chute(
        "query",
        "-f",
        str(QUERIES / "versions-of-path.rq"),
        "--bind",
        "path=docs/grow.txt",
        "--format",
        "csv",
    ).out
    rows = _csv(out)
    assert [r["snapshot"] for r in rows] == two_snapshots
    assert [int(r["size"]) for r in rows] == [6, 160]
    assert rows[0]["modified"].startswith("2023-11-14T22:13:20")


def test_unchanged_file_is_one_node_in_both_snapshots(
    chute: Callable[..., Run], two_snapshots: list[str]
) -> None:
    out = chute(
        "query",
        "-f",
        str(QUERIES / "versions-of-path.rq"),
        "--bind",
        "path=docs/keep.txt",
        "--format",
        "json",
    ).out
    bindings = json.loads(out)["results"]["bindings"]
    assert [b["snapshot"]["value"] for b in bindings] == two_snapshots
    assert len({b["sha256"]["value"] for b in bindings}) == 1


def test_files_changed_between_two_snapshots(
    chute: Callable[..., Run], two_snapshots: list[str]
) -> None:
    old, new = two_snapshots
    out = chute(
        "query",
        "-f",
        str(QUERIES / "changed-between.rq"),
        "--bind",
        f"old=<{old}>",
        "--bind",
        f"new=<{new}>",
        "--format",
        "csv",
    ).out
    rows = {(r["path"], r["change"], r["oldSize"], r["newSize"]) for r in _csv(out)}
    assert rows == {
        ("docs/gone.txt", "deleted", "4", ""),
        ("docs/grow.txt", "changed", "6", "160"),
        ("docs/sub/new.txt", "added", "", "6"),
    }


@pytest.mark.parametrize(
    "fmt,marker",
    [("table", "(1 row)"), ("json", '"head"'), ("tsv", "?n"), ("xml", "<sparql"), ("csv", "n\r\n")],
)
def test_query_formats(
    chute: Callable[..., Run], two_snapshots: list[str], fmt: str, marker: str
) -> None:
    out = chute(
        "query", "SELECT (COUNT(?s) AS ?n) WHERE { ?s a chute:Snapshot }", "--format", fmt
    ).out
    assert marker in out and "2" in out


def test_construct_as_turtle(chute: Callable[..., Run], two_snapshots: list[str]) -> None:
    out = chute(
        "query",
        "CONSTRUCT { ?s chute:tag ?t } WHERE { ?s a chute:Snapshot ; chute:timestamp ?t }",
        "--format",
        "turtle",
    ).out
    g = Graph().parse(data=out, format="turtle")
    assert len(g) == 2


def test_syntax_error_is_one_line(chute: Callable[..., Run], two_snapshots: list[str]) -> None:
    result = chute("query", "SELEKT nothing", ok=False)
    assert result.code == 2 and result.err.count("\n") == 1 and "SPARQL" in result.err


def test_snapshot_graphs_conform_to_shapes(
    tmp_path: Path, chute: Callable[..., Run], repo_ready: None
) -> None:
    src = tmp_path / "all"
    make_every_kind_tree(src)
    chute("put", "--tag", "t1", "--meta", "k=v", str(src))
    (src / "extra.txt").write_text("more")
    chute("put", str(src))
    data = export_graph(chute)
    shapes = Graph().parse(ROOT / "ontology" / "shapes.ttl")
    ontology = Graph().parse(ROOT / "ontology" / "chute.ttl")
    conforms, _, report = pyshacl.validate(
        data, shacl_graph=shapes, ont_graph=ontology, inference="rdfs"
    )
    assert conforms, report


def test_graph_rebuild_recreates_the_same_graph(
    chute: Callable[..., Run], two_snapshots: list[str], isolated_home: Path
) -> None:
    before = export_graph(chute)
    out = chute("graph", "rebuild").out
    assert "2 snapshots" in out
    after = export_graph(chute)
    assert len(before) == len(after) and before.isomorphic(after)


def test_a_put_written_in_many_bulk_loads_gives_the_graph_a_rebuild_gives(
    tmp_path: Path,
    chute: Callable[..., Run],
    repo_ready: None,
    graph_backend: GraphBackend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Batches of three lines: a put's triples reach the graph in many bulk loads (the
    # embedded store, which trims the heaps after every `TRIM_EVERY`-th) or requests
    # (a server) ahead of its transaction; a rebuild reads the listings back.
    monkeypatch.setattr(graph_load, "BULK_BATCH", 3)
    batches: list[int] = []
    trims: list[int] = []
    real = graph_load.BulkLoader.__call__

    def counted(self: graph_load.BulkLoader, text: str) -> None:
        batches.append(len(text.splitlines()))
        real(self, text)

    monkeypatch.setattr(graph_load.BulkLoader, "__call__", counted)
    monkeypatch.setattr(graph_load, "release_free_memory", lambda: trims.append(len(batches)))
    src = tmp_path / "all"
    make_every_kind_tree(src)
    chute("put", str(src))
    assert len(batches) > 2 * graph_load.TRIM_EVERY and max(batches) == 3
    assert len(trims) == (0 if graph_backend.remote else len(batches) // graph_load.TRIM_EVERY)
    (src / "extra.txt").write_text("more")
    chute("put", str(src))
    assert_a_rebuild_gives_the_same_graph(chute)


def test_a_put_asks_a_server_about_directories_in_groups(
    tmp_path: Path,
    chute: Callable[..., Run],
    repo_ready: None,
    graph_backend: GraphBackend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A put changing 81 directories asks a SPARQL server a few times, not per directory.

    The previous versions of the changed directories (their children, the
    paths of their subdirectories) and the new subdirectories the graph may
    know are read a group at a time; what the put writes equals a rebuild.
    So does forgetting the first snapshot, whose directories are read the
    same way.
    """
    src = tmp_path / "wide"
    for i in range(40):
        (src / f"d{i}" / "sub").mkdir(parents=True)
        (src / f"d{i}" / "sub" / "f.txt").write_text(str(i))
        (src / f"d{i}" / "same.txt").write_text("unchanged")
    first = chute("put", str(src)).out.strip()
    for i in range(40):
        (src / f"d{i}" / "sub" / "f.txt").write_text(f"changed {i}")
    shutil.rmtree(src / "d0" / "sub")
    (src / "d1" / "sub" / "new").mkdir()
    (src / "d1" / "sub" / "new" / "n.txt").write_text("new")
    (src / "d2" / "sub").rename(src / "d2" / "moved")
    asked: list[str] = []
    real = graph_remote.RemoteStore.query

    def counted(self: graph_remote.RemoteStore, query: str, **kwargs: object) -> object:
        asked.append(query)
        return real(self, query, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(graph_remote.RemoteStore, "query", counted)
    chute("put", str(src))
    if graph_backend.remote:
        assert 0 < len(asked) <= 40  # 19 here; 294 when each directory was asked alone
    assert_a_rebuild_gives_the_same_graph(chute)
    asked.clear()
    chute("forget", first)
    if graph_backend.remote:
        assert 0 < len(asked) <= 60  # 30 here; 182 when each directory was asked alone
    assert_a_rebuild_gives_the_same_graph(chute)


def test_a_graph_without_directories_is_not_asked_about_them(
    tmp_path: Path, chute: Callable[..., Run], repo_ready: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first snapshot asks nothing per directory; a later one stops at the versions it finds."""
    asked: list[list[str]] = []
    found: list[str] = []
    real = History.known

    def counted(self: History, iris: list[str]) -> set[str]:
        asked.append(iris)
        known = real(self, iris)
        found.extend(known)
        return known

    monkeypatch.setattr(History, "known", counted)
    src = tmp_path / "all"
    make_every_kind_tree(src)
    chute("put", str(src))
    assert asked == []
    chute("put", "--label", "again", str(src))  # the same directory versions, another mount
    assert asked and found == [i for batch in asked for i in batch]
    assert_a_rebuild_gives_the_same_graph(chute)


def test_forget_leaves_the_graph_a_rebuild_gives(
    tmp_path: Path,
    chute: Callable[..., Run],
    repo_ready: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Small batches: the spans that start at the forgotten snapshot move in many updates,
    # and the versions only it held go in many more.
    monkeypatch.setattr(graph_changes, "QUERY_BATCH", 2)
    monkeypatch.setattr(graph_module, "REMOVE_BATCH", 3)
    monkeypatch.setattr(graph_module, "SPAN_BATCH", 2)
    src = tmp_path / "all"
    make_every_kind_tree(src)
    first = chute("put", str(src)).out.strip()
    (src / "extra.txt").write_text("more")
    for path in sorted(src.rglob("*"))[:3]:
        if path.is_file() and not path.is_symlink():
            path.write_text("changed")
    chute("put", str(src))
    chute("forget", first)
    assert_a_rebuild_gives_the_same_graph(chute)


def test_a_removal_the_graph_refuses_fails_forget_and_the_next_sync_heals_it(
    chute: Callable[..., Run], two_snapshots: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    count = "SELECT (COUNT(?s) AS ?n) WHERE { ?s a chute:Snapshot }"
    with monkeypatch.context() as patch:

        def refuse(self: History, deletes: object, inserts: object, **_: object) -> None:
            raise UsageError("graph server http://g/update refused the SPARQL request: too big")

        patch.setattr(History, "_apply", refuse)
        failed = chute("forget", two_snapshots[0], ok=False)
    assert failed.code == 2 and "refused the SPARQL request" in failed.err
    assert len(failed.err.strip().splitlines()) == 1
    # The tombstone is written: the next command that syncs the graph removes the snapshot.
    assert chute("query", count, "--format", "csv").out.split() == ["n", "1"]


# The versions the later of two snapshots holds by their mount's spans: a span began at
# one of them and did not end at either. (Not with `chute:previous*`: Virtuoso answered
# that form with one version of the five in most runs.)
HELD = """
SELECT DISTINCT ?version WHERE {
  VALUES ?since { <%s> <%s> }
  ?span chute:version ?version ; chute:since ?since .
  OPTIONAL { ?span chute:until ?until }
  FILTER (!BOUND(?until) || (?until != <%s> && ?until != <%s>))
}"""


def _held(chute: Callable[..., Run], first: str, second: str) -> list[str]:
    query = HELD % (first, second, first, second)
    return sorted(row["version"] for row in _csv(chute("query", query, "--format", "csv").out))


def test_a_forget_stopped_while_spans_move_leaves_the_next_snapshot_whole(
    chute: Callable[..., Run], two_snapshots: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = two_snapshots
    held = _held(chute, first, second)
    assert len(held) > 4
    with monkeypatch.context() as patch:
        patch.setattr(graph_module, "SPAN_BATCH", 2)
        applied: list[int] = []
        apply = History._apply

        def stop_after_two(
            self: History, deletes: list[str], inserts: list[str], inserts_first: bool = False
        ) -> None:
            if len(applied) == 2:
                raise UsageError("graph server http://g/update refused the SPARQL request")
            applied.append(len(deletes))
            apply(self, deletes, inserts, inserts_first)

        patch.setattr(History, "_apply", stop_after_two)
        failed = chute("forget", first, ok=False)
    assert failed.code == 2 and len(failed.err.strip().splitlines()) == 1
    assert len(applied) == 2  # two updates of two spans each went in, then one was refused
    count = "SELECT (COUNT(?s) AS ?n) WHERE { ?s a chute:Snapshot }"
    with monkeypatch.context() as patch:  # the graph as the forget left it: part moved
        patch.setattr(History, "sync", lambda self, repo: [])
        assert chute("query", count, "--format", "csv").out.split() == ["n", "2"]
        assert _held(chute, first, second) == held
    # The next command that syncs the graph (this query) finishes the removal.
    assert chute("query", count, "--format", "csv").out.split() == ["n", "1"]
    assert _held(chute, first, second) == held
    assert_a_rebuild_gives_the_same_graph(chute)


def test_a_forget_whose_spans_the_graph_keeps_stops_with_an_error(
    chute: Callable[..., Run], two_snapshots: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(History, "_apply", lambda self, deletes, inserts, **_: None)
    failed = chute("forget", two_snapshots[0], ok=False)
    assert failed.code != 0 and "kept the spans" in failed.err
    assert len(failed.err.strip().splitlines()) == 1


def test_graph_heals_after_it_is_deleted(
    chute: Callable[..., Run],
    two_snapshots: list[str],
    isolated_home: Path,
    graph_backend: GraphBackend,
) -> None:
    graph_backend.wipe(isolated_home)
    out = chute(
        "query", "SELECT (COUNT(?s) AS ?n) WHERE { ?s a chute:Snapshot }", "--format", "csv"
    ).out
    assert out.split() == ["n", "2"]
