"""The span index and the shared version nodes stay exact under every kind of change.

Histories come from the synthetic generator (`chute.bench.synthetic_history`),
written into a real repository through `History.add_snapshot`, as a put does.
The checks are independent of the code under test: which snapshots hold a
version is computed by walking each snapshot's tree (`chute:contains`), and
graphs reached by different routes (out of order, after removals) are
compared quad for quad with a graph written in order from scratch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pyoxigraph as ox
import pytest

import chute.graph_load
from chute.bench.synthetic_history import Params, SyntheticTree, write_snapshot
from chute.crypto import Secret
from chute.errors import StorageError
from chute.graph import History
from chute.graph_changes import recorded, root_of
from chute.graph_terms import CONTAINS, ROOT, SINCE, UNTIL, VERSION, A, c, n
from chute.ids import SnapshotName
from chute.repository import Repository
from chute.store.local import LocalStore

BASE = "https://example.com"
ENTRY_CLASSES = [c(k) for k in ("Directory", "File", "Symlink", "Special")]


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    key = tmp_path / "key"
    key.write_bytes(os.urandom(64))
    store = LocalStore(tmp_path / "repo")
    Repository.init(store, Secret.key_file(key))
    return Repository.open(store, Secret.key_file(key), tmp_path / "cache")


@pytest.fixture
def graphs(tmp_path: Path) -> Iterator[list[History]]:
    opened: list[History] = []
    yield opened
    for history in opened:
        history.close()


def _history(tmp_path: Path, graphs: list[History], name: str) -> History:
    history = History(tmp_path / name, BASE)
    graphs.append(history)
    return history


def _grow(repo: Repository, history: History, count: int, seed: int = 3) -> list[SnapshotName]:
    """Write `count` snapshots of a small, fast-changing tree; check the index after each."""
    tree = SyntheticTree(Params(files=60, snapshots=count, churn=0.25, seed=seed))
    names: list[SnapshotName] = []
    for i in range(count):
        if i:
            tree.advance()
        names.append(write_snapshot(repo, history, tree, names[-1] if names else None).name)
        check_spans(history)
    return names


def _reachable(history: History, root: str) -> set[str]:
    seen: set[str] = set()
    todo = [root]
    while todo:
        for quad in history.store.quads_for_pattern(n(todo.pop()), CONTAINS, None):
            child = quad.object.value
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def _spans(history: History) -> list[tuple[str, str, str | None]]:
    found = []
    for quad in history.store.quads_for_pattern(None, VERSION, None):
        span = quad.subject

        def one(p: ox.NamedNode, s: ox.NamedNode | ox.BlankNode | ox.Triple = span) -> str | None:
            return next((q.object.value for q in history.store.quads_for_pattern(s, p, None)), None)

        version, since = one(VERSION), one(SINCE)
        assert version and since, span
        found.append((version, since, one(UNTIL)))
    return found


def check_spans(history: History) -> None:
    """The spans say exactly which snapshots hold each version, and the series links agree."""
    spans = _spans(history)
    for mount, series in recorded(history.store, history.iris).items():
        assert [r.previous for r in series] == [None] + [r.iri for r in series[:-1]]
        assert {r.mount for r in series} == {mount}
        order = {r.iri: i for i, r in enumerate(series)}
        held = {r.iri: _reachable(history, str(root_of(history.store, r.iri))) for r in series}
        said: dict[str, set[str]] = {r.iri: set() for r in series}
        runs: dict[str, list[tuple[int, int]]] = {}
        for version, since, until in spans:
            if since not in order:
                continue
            end = order[until] if until else len(series)
            assert end > order[since], (version, since, until)
            runs.setdefault(version, []).append((order[since], end))
            for i in range(order[since], end):
                said[series[i].iri].add(version)
        assert said == held
        for version, parts in runs.items():  # runs are maximal: none ends where another begins
            starts = {a for a, _ in parts}
            assert not any(b in starts for _, b in parts), version
    snapshots = history.snapshot_iris()
    assert all(since in snapshots and until in (snapshots | {None}) for _, since, until in spans)


def check_no_orphans(history: History) -> None:
    """Every entry version in the graph is in some snapshot's tree."""
    entries = {
        q.subject.value
        for cls in ENTRY_CLASSES
        for q in history.store.quads_for_pattern(None, A, cls)
    }
    held: set[str] = set()
    for quad in history.store.quads_for_pattern(None, ROOT, None):
        held.add(quad.object.value)
        held |= _reachable(history, quad.object.value)
    assert entries == held


def _quads(history: History) -> set[str]:
    return {str(q) for q in history.store}


def test_spans_follow_every_snapshot(
    tmp_path: Path, repo: Repository, graphs: list[History]
) -> None:
    history = _history(tmp_path, graphs, "g")
    names = _grow(repo, history, 8)
    check_no_orphans(history)
    spans = _spans(history)
    assert len(names) == 8 and len({s for _, s, _ in spans}) == 8  # every snapshot adds some
    assert any(until for _, _, until in spans)


def test_graph_grows_with_change_not_with_snapshots(
    tmp_path: Path, repo: Repository, graphs: list[History]
) -> None:
    history = _history(tmp_path, graphs, "g")
    tree = SyntheticTree(Params(files=300, churn=0.0))
    first = write_snapshot(repo, history, tree, None)
    before = history.triple_count()
    write_snapshot(repo, history, _later(tree), first.name)
    # an unchanged tree costs the snapshot's own triples only, however large the tree
    assert history.triple_count() - before < 40 < before / 100
    check_spans(history)


def _later(tree: SyntheticTree) -> SyntheticTree:
    tree.now += 86_400
    return tree


def test_adding_a_snapshot_between_others_gives_the_same_graph(
    tmp_path: Path, repo: Repository, graphs: list[History]
) -> None:
    in_order = _history(tmp_path, graphs, "in-order")
    names = _grow(repo, in_order, 6)
    shuffled = _history(tmp_path, graphs, "shuffled")
    for i in (0, 1, 3, 5, 4, 2):
        shuffled.add_snapshot(repo, repo.read_index(names[i]))
        check_spans(shuffled)
    assert _quads(shuffled) == _quads(in_order)


@pytest.mark.parametrize("gone", [(2,), (0,), (5,), (1, 2, 3), (0, 5)])
def test_removing_snapshots_gives_the_graph_of_those_left(
    tmp_path: Path, repo: Repository, graphs: list[History], gone: tuple[int, ...]
) -> None:
    history = _history(tmp_path, graphs, "g")
    names = _grow(repo, history, 6)
    for i in gone:
        assert history.remove_snapshot(names[i]) > 0
        check_spans(history)
        check_no_orphans(history)
    assert history.remove_snapshot(names[gone[0]]) == 0  # already gone
    fresh = _history(tmp_path, graphs, "fresh")
    for i, name in enumerate(names):
        if i not in gone:
            fresh.add_snapshot(repo, repo.read_index(name))
    assert _quads(history) == _quads(fresh)


def test_removing_every_snapshot_empties_the_graph(
    tmp_path: Path, repo: Repository, graphs: list[History]
) -> None:
    history = _history(tmp_path, graphs, "g")
    names = _grow(repo, history, 3)
    for name in names:
        history.remove_snapshot(name)
    assert history.triple_count() == 0


def test_repair_rebuilds_a_damaged_or_missing_index(
    tmp_path: Path, repo: Repository, graphs: list[History]
) -> None:
    history = _history(tmp_path, graphs, "g")
    _grow(repo, history, 5)
    whole = _quads(history)
    # as a graph written before the index existed: no spans, no series links
    history.store.update(
        "DELETE WHERE { ?s chute:version ?v ; ?p ?o } ; "
        "DELETE WHERE { ?s chute:previous ?p } ; DELETE WHERE { ?s chute:snapshotOf ?m }",
        prefixes={"chute": c("").value},
    )
    assert history.repair()
    assert _quads(history) == whole
    assert history.repair() == []


def test_repair_after_a_snapshot_is_deleted_by_other_means(
    tmp_path: Path, repo: Repository, graphs: list[History]
) -> None:
    history = _history(tmp_path, graphs, "g")
    names = _grow(repo, history, 5)
    iri = history.iris.snapshot(names[2])
    history.store.update(f"DELETE WHERE {{ <{iri}> ?p ?o }}")
    assert history.repair() == [history.iris.mount(names[2])]
    check_spans(history)
    assert not any(since == iri or until == iri for _, since, until in _spans(history))


def test_sync_adds_missing_and_drops_forgotten_snapshots(
    tmp_path: Path, repo: Repository, graphs: list[History]
) -> None:
    written = _history(tmp_path, graphs, "written")
    names = _grow(repo, written, 4)
    fresh = _history(tmp_path, graphs, "fresh")
    assert fresh.sync(repo) == names
    assert _quads(fresh) == _quads(written)
    stale = _history(tmp_path, graphs, "stale")
    stale.sync(repo)
    for path in repo.store.list(names[1].path):  # the snapshot disappears from the repository
        repo.store.delete(path)
    assert stale.sync(repo) == []
    assert stale.snapshot_iris() == {stale.iris.snapshot(x) for x in names if x != names[1]}
    check_spans(stale)
    check_no_orphans(stale)


def test_a_version_that_comes_back_is_one_run_once_the_gap_is_forgotten(
    tmp_path: Path, repo: Repository, graphs: list[History]
) -> None:
    history = _history(tmp_path, graphs, "g")
    tree = SyntheticTree(Params(files=30, churn=0.0))
    place, name = tree.files[0]
    entry = place.files[name]
    first = write_snapshot(repo, history, tree, None).name
    del place.files[name]  # gone for one snapshot ...
    place.touch()
    gap = write_snapshot(repo, history, _later(tree), first).name
    place.files[name] = entry  # ... then back, exactly as it was
    place.touch()
    write_snapshot(repo, history, _later(tree), gap)
    check_spans(history)
    version = next(
        v
        for v, _, _ in _spans(history)
        if history.select("SELECT ?p WHERE { ?v chute:path ?p }", {"v": f"<{v}>"})[0]["p"].endswith(
            "/" + name
        )
    )
    assert len([s for s in _spans(history) if s[0] == version]) == 2
    history.remove_snapshot(gap)
    check_spans(history)
    assert [(s[1], s[2]) for s in _spans(history) if s[0] == version] == [
        (history.iris.snapshot(first), None)
    ]


# --- big snapshots: the bulk part ahead of the transaction ---------------------
# `chute.graph_write` sends every triple but the snapshot's own, its span-index
# links and the types of new directory versions ahead through Oxigraph's bulk
# loader (on a thread of its own), then commits the rest in one transaction.
# These tests make every snapshot "big" (batches of a few lines).


class Crash(Exception):
    """Stands for the process dying between the bulk part and the transaction."""


def _write_all(
    repo: Repository, history: History, count: int, batch: int, monkeypatch: pytest.MonkeyPatch
) -> list[SnapshotName]:
    monkeypatch.setattr(chute.graph_load, "BULK_BATCH", batch)
    tree = SyntheticTree(Params(files=80, snapshots=count, churn=0.3, seed=11))
    names: list[SnapshotName] = []
    for i in range(count):
        if i:
            tree.advance()
        names.append(write_snapshot(repo, history, tree, names[-1] if names else None).name)
    return names


REACHABLE = "SELECT (COUNT(*) AS ?n) WHERE { ?s a chute:Snapshot ; chute:root/chute:contains* ?e }"


def check_as_written_anew(
    tmp_path: Path, graphs: list[History], repo: Repository, history: History
) -> None:
    """The graph is quad for quad the repository's snapshots written afresh, oldest first."""
    anew = _history(tmp_path, graphs, "anew")
    for snapshot in repo.snapshots():
        anew.add_snapshot(repo, repo.read_index(snapshot))
    assert _quads(history) == _quads(anew)
    check_spans(history)
    check_no_orphans(history)


def test_bulk_path_writes_the_graph_of_one_transaction(
    tmp_path: Path, repo: Repository, graphs: list[History], monkeypatch: pytest.MonkeyPatch
) -> None:
    bulk = _history(tmp_path, graphs, "bulk")
    loads: list[int] = []
    real = chute.graph_load.BulkLoader.__call__

    def counting(self: chute.graph_load.BulkLoader, data: str) -> None:
        loads.append(len(data))
        real(self, data)

    monkeypatch.setattr(chute.graph_load.BulkLoader, "__call__", counting)
    names = _write_all(repo, bulk, 5, 7, monkeypatch)
    assert len(loads) > 3 * len(names)  # every snapshot went through several batches

    monkeypatch.setattr(chute.graph_load, "BULK_BATCH", 10**9)  # one transaction each
    check_as_written_anew(tmp_path, graphs, repo, bulk)


def test_a_crash_before_the_transaction_leaves_no_snapshot_and_sync_heals(
    tmp_path: Path, repo: Repository, graphs: list[History], monkeypatch: pytest.MonkeyPatch
) -> None:
    history = _history(tmp_path, graphs, "crashed")
    names = _write_all(repo, history, 2, 7, monkeypatch)
    before = _quads(history)
    committed = history.snapshot_iris()

    tree = SyntheticTree(Params(files=80, snapshots=3, churn=0.3, seed=11))
    tree.advance()
    tree.advance()

    def die(self: History, deletes: object, inserts: object) -> None:
        raise Crash

    monkeypatch.setattr(History, "_apply", die)
    with pytest.raises(Crash):
        write_snapshot(repo, history, tree, names[-1])
    monkeypatch.undo()

    assert len(_quads(history)) > len(before)  # the bulk part went ahead ...
    assert history.snapshot_iris() == committed  # ... but no snapshot reaches it
    lost = repo.snapshots()[-1]
    ahead = {since for _, since, _ in _spans(history)} - committed
    assert ahead == {history.iris.snapshot(lost)}  # the new spans start at the lost one
    reachable = history.select(REACHABLE)[0]["n"]

    assert len(history.sync(repo)) == 1  # the blob was committed: sync writes it again
    assert history.select(REACHABLE)[0]["n"] > reachable
    check_as_written_anew(tmp_path, graphs, repo, history)


def test_a_failed_load_fails_the_write_and_commits_nothing(
    tmp_path: Path, repo: Repository, graphs: list[History], monkeypatch: pytest.MonkeyPatch
) -> None:
    history = _history(tmp_path, graphs, "failing")
    monkeypatch.setattr(chute.graph_load, "BULK_BATCH", 7)
    real = chute.graph_load.BulkLoader._run

    def full_disk(lines: list[str]) -> None:
        raise OSError("disk full")

    def broken_run(self: chute.graph_load.BulkLoader, load: object) -> None:
        real(self, full_disk)

    monkeypatch.setattr(chute.graph_load.BulkLoader, "_run", broken_run)
    tree = SyntheticTree(Params(files=80, snapshots=1, seed=5))
    with pytest.raises(StorageError, match=r"^cannot write the graph: disk full$"):
        write_snapshot(repo, history, tree, None)
    assert history.snapshot_iris() == set()
