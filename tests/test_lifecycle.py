"""forget and prune through the CLI: what goes, what stays, and that everything kept restores."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pyoxigraph as ox
import pytest
from conftest import Run
from lifecycleutil import (
    State,
    check_json,
    init_repo,
    make_tree,
    mutate,
    open_repo,
    put_json,
    repo_bytes,
    repo_dir,
    restore_equals,
    snapshot_paths,
)
from treeutil import snapshot_tree

from chute.config import load_settings, xdg
from chute.graph import History
from chute.tombstone import seal_tombstone


@pytest.fixture
def series(tmp_path: Path, chute: Callable[..., Run]) -> tuple[Path, dict[str, State]]:
    """Five snapshots of a changing tree; their recorded states by snapshot name."""
    init_repo()
    rng = random.Random(5)
    src = tmp_path / "src"
    make_tree(src, rng)
    states = {}
    for i in range(5):
        if i:
            mutate(src, rng)
        states[put_json(chute, src, "--tag", f"run{i}")["snapshot"]] = snapshot_tree(src)
    return src, states


def _graph_triples() -> set[str]:
    settings = load_settings({})
    history = History(settings.graph_path(open_repo().repo_id), settings.base_url)
    try:
        return {str(q) for q in history.store.quads_for_pattern(None, None, None)}
    finally:
        history.close()


def _restore_all(chute: Callable[..., Run], states: dict[str, State], tmp: Path) -> None:
    for name in snapshot_paths(chute):
        restore_equals(chute, name, states[name], tmp / "restore")


def test_forget_hides_snapshots_and_keeps_their_data(
    chute: Callable[..., Run], series: tuple[Path, dict[str, State]], tmp_path: Path
) -> None:
    _, states = series
    names = sorted(states)
    size = repo_bytes()
    dry = json.loads(chute("forget", "--keep-last", "2", "--dry-run", "--json").out)
    assert [s["snapshot"] for s in dry["snapshots"] if not s["keep"]] == names[2::-1]
    assert snapshot_paths(chute) == names and dry["forgotten"] == []
    done = json.loads(chute("forget", "--keep-last", "2", "--json").out)
    assert sorted(done["forgotten"]) == names[:3]
    assert done["graph_dropped"] == 3
    assert snapshot_paths(chute) == names[3:]
    assert repo_bytes() - size < 4096  # three small tombstones, nothing deleted
    _restore_all(chute, states, tmp_path)
    assert chute("get", names[0], "--target", str(tmp_path / "x"), ok=False).code == 14


def test_graph_after_forget_equals_a_rebuild_from_the_blobs(
    chute: Callable[..., Run], series: tuple[Path, dict[str, State]]
) -> None:
    _, states = series
    middle = sorted(states)[2]
    chute("forget", middle)
    after_forget = _graph_triples()
    mentions = [t for t in after_forget if middle in t]
    assert mentions and all("wasRevisionOf" in t for t in mentions)  # only its successor's link
    chute("graph", "rebuild")
    assert _graph_triples() == after_forget


def test_keep_tag_and_mount_options(
    chute: Callable[..., Run], series: tuple[Path, dict[str, State]], tmp_path: Path
) -> None:
    _, states = series
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.txt").write_text("other mount\n")
    other_name = put_json(chute, other)["snapshot"]
    chute("forget", "--keep-last", "1", "--keep-tag", "run0", "--mount", "nothing", ok=False)
    plan = json.loads(chute("forget", "--keep-last", "1", "--keep-tag", "run0", "--json").out)
    kept = {s["snapshot"] for s in plan["snapshots"] if s["keep"]}
    names = sorted(states)
    assert kept == {names[0], names[-1], other_name}
    assert set(snapshot_paths(chute)) == kept


def test_forget_refuses_an_empty_policy_and_mixing_names_with_policy(
    chute: Callable[..., Run], series: tuple[Path, dict[str, State]]
) -> None:
    assert chute("forget", ok=False).code == 2
    assert chute("forget", "latest", "--keep-last", "1", ok=False).code == 2
    assert chute("forget", "--keep-within", "7x", ok=False).code == 2
    assert chute("prune", "--max-unused", "lots", ok=False).code == 2


def test_prune_removes_what_only_forgotten_snapshots_used(
    chute: Callable[..., Run], series: tuple[Path, dict[str, State]], tmp_path: Path
) -> None:
    _, states = series
    chute("forget", "--keep-last", "2")
    before = repo_bytes()
    dry = json.loads(chute("prune", "--dry-run", "--json").out)
    assert repo_bytes() == before and dry["dry_run"]
    report = json.loads(chute("prune", "--max-unused", "0%", "--json").out)
    assert report["bytes_unused_after"] == 0
    assert report["windows_deleted"] >= dry["windows_deleted"]  # repacks empty neighbours
    assert report["blobs_removed"] > 0 and report["windows_repacked"] > 0
    assert repo_bytes() < before - report["bytes_deleted"] + report["bytes_written"] + 4096
    assert check_json(chute, "--read-data")["ok"]
    _restore_all(chute, states, tmp_path)
    again = json.loads(chute("prune", "--max-unused", "0%", "--json").out)
    assert again["windows_deleted"] == again["windows_repacked"] == 0
    assert again["bytes_unused_before"] == 0


def test_a_node_with_only_the_key_and_the_blobs_restores_every_kept_snapshot(
    chute: Callable[..., Run], series: tuple[Path, dict[str, State]], tmp_path: Path
) -> None:
    _, states = series
    chute("forget", "--keep-last", "2")
    chute("prune", "--max-unused", "0%")
    for kind in ("data", "cache"):
        shutil.rmtree(xdg(kind) / "chute" / "graph" if kind == "data" else xdg(kind) / "chute")
    assert "2 snapshots" in chute("graph", "rebuild").out
    _restore_all(chute, states, tmp_path)
    assert check_json(chute, "--read-data")["ok"]


def test_prune_removes_the_leftovers_of_an_interrupted_put(
    chute: Callable[..., Run], series: tuple[Path, dict[str, State]]
) -> None:
    root = repo_dir()
    leftover = root / "example.com" / "node1" / "x" / "20200101T000000Z"
    (leftover / "0" / "65536").mkdir(parents=True)
    (leftover / "0" / "65536" / "0").write_bytes(b"half a put")
    (leftover / "claim").write_bytes(b"1234")
    notes = check_json(chute)["notes"]
    assert any("interrupted put" in n for n in notes)
    assert json.loads(chute("prune", "--json").out)["leftovers_removed"] == 1
    assert not leftover.exists() or not any(p.is_file() for p in leftover.rglob("*"))
    assert not any("interrupted" in n for n in check_json(chute)["notes"])


def test_a_forged_tombstone_neither_hides_data_from_prune_nor_passes_check(
    chute: Callable[..., Run], series: tuple[Path, dict[str, State]], tmp_path: Path
) -> None:
    _, states = series
    victim = sorted(states)[-1]
    # A peer without the key can only write garbage; one made with another key fails too.
    from chute.crypto import MasterKey

    forged = seal_tombstone(MasterKey.generate(), victim, "forged")
    (repo_dir() / victim / "forgotten").write_bytes(forged)
    assert victim not in snapshot_paths(chute)
    report = json.loads(chute("prune", "--max-unused", "0%", "--json").out)
    assert any("fails to authenticate" in w for w in report["warnings"])
    result = check_json(chute, "--read-data", ok=False)
    assert any("forgotten fails to authenticate" in d for d in result["damage"])
    (repo_dir() / victim / "forgotten").unlink()
    restore_equals(chute, victim, states[victim], tmp_path / "r")


def test_the_repository_shows_a_peer_only_public_fields_after_prune(
    chute: Callable[..., Run], series: tuple[Path, dict[str, State]]
) -> None:
    chute("forget", "--keep-last", "1")
    pack = json.loads(chute("prune", "--max-unused", "0%", "--json").out)["pack"]
    public = json.loads((repo_dir() / pack / "index.json").read_bytes())
    assert set(public) == {
        "version", "kind", "timestamp", "shards", "size", "checksum",
        "encrypted", "window", "windows", "salt", "sealed",
    }  # fmt: skip
    tombstones = list(repo_dir().rglob("forgotten"))
    assert tombstones
    for path in tombstones:
        assert set(json.loads(path.read_bytes())) == {"version", "salt", "sealed"}
    names = {str(p.relative_to(repo_dir())) for p in repo_dir().rglob("*") if p.is_file()}
    assert not any("run" in n or ".bin" in n or "notes" in n for n in names)


def test_forget_then_prune_in_one_command(
    chute: Callable[..., Run], series: tuple[Path, dict[str, State]], tmp_path: Path
) -> None:
    _, states = series
    out = json.loads(chute("forget", "--keep-last", "3", "--prune", "--json").out)
    assert len(out["forgotten"]) == 2 and out["prune"]["windows_deleted"] > 0
    _restore_all(chute, states, tmp_path)


@pytest.mark.slow
def test_ten_snapshots_forget_and_prune_come_within_ten_percent_of_a_fresh_backup(
    tmp_path: Path, chute: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    chute("init", "--generate-key")  # the default 8 MiB windows, as a user gets them
    rng = random.Random(10)
    src = tmp_path / "src"
    make_tree(src, rng, files=60)
    for i in range(10):
        if i:
            mutate(src, rng, changes=12)
        put_json(chute, src)
    kept = snapshot_paths(chute)[-3:]
    before = repo_bytes()
    chute("forget", "--keep-last", "3", "--prune")
    pruned = repo_bytes()
    for i, name in enumerate(kept):
        chute("get", name, "--target", str(tmp_path / f"kept{i}"))
    monkeypatch.setenv("CHUTE_REPO", str(tmp_path / "fresh"))
    chute("init", "--generate-key")
    for i in range(len(kept)):
        chute("put", "--label", "src", str(tmp_path / f"kept{i}" / "src"))
    fresh = repo_bytes_at(tmp_path / "fresh")
    assert fresh * 0.9 <= pruned <= fresh * 1.1, (before, pruned, fresh)
    assert before > fresh * 1.5  # so there was something to prune


def repo_bytes_at(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and ".tmp" not in p.parts)


def test_graph_holds_no_version_only_forgotten_snapshots_had(
    chute: Callable[..., Run], series: tuple[Path, dict[str, State]]
) -> None:
    names = sorted(series[1])
    chute("forget", *names[:4])
    settings = load_settings({})
    history = History(settings.graph_path(open_repo().repo_id), settings.base_url)
    try:
        contains = ox.NamedNode("https://w3id.org/chute/ns#contains")
        for quad in history.store.quads_for_pattern(None, contains, None):
            assert next(history.store.quads_for_pattern(quad.object, None, None), None)
        paths = {
            str(row["p"].value)
            for row in history.store.query(
                "SELECT ?p WHERE { ?n <https://w3id.org/chute/ns#path> ?p }"
            )
        }
    finally:
        history.close()
    restored = {p.decode() for p in series[1][names[4]] if p != b"."}
    assert {p.split("/", 1)[1] for p in paths if "/" in p} == restored
