"""Two puts at once, and prune beside puts: nobody's data is lost."""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CHUTE, Run
from lifecycleutil import (
    State,
    check_json,
    init_repo,
    make_tree,
    mutate,
    repo_dir,
    restore_equals,
    snapshot_paths,
)
from treeutil import snapshot_tree

from chute import backup, forked, session
from chute.backup import PutOptions, PutResult
from chute.locking import EXCLUSIVE, SHARED, lock
from chute.repository import Repository
from chute.store.local import LocalStore


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CHUTE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out


def test_two_puts_of_one_tree_at_once_both_succeed(
    tmp_path: Path, chute: Callable[..., Run]
) -> None:
    init_repo()
    src = tmp_path / "src"
    make_tree(src, random.Random(1))
    state = snapshot_tree(src)
    for _ in range(3):
        procs = [_start("put", str(src)) for _ in range(2)]
        uris = [_finish(p).strip() for p in procs]
        assert uris[0] != uris[1]
    names = snapshot_paths(chute)
    assert len(names) == 6
    for name in names:
        restore_equals(chute, name, state, tmp_path / "r")
    assert check_json(chute, "--read-data")["ok"]


def test_prune_refuses_while_a_put_holds_its_lock(chute: Callable[..., Run]) -> None:
    init_repo()
    with lock(LocalStore(repo_dir()), SHARED, "put", wait=0):
        result = chute("prune", "--lock-wait", "0", ok=False)
    assert result.code == 11
    assert "a running put holds a shared lock" in result.err
    chute("prune", "--lock-wait", "0")


def test_check_without_a_lock_runs_beside_prune(chute: Callable[..., Run]) -> None:
    init_repo()
    with lock(LocalStore(repo_dir()), EXCLUSIVE, "prune", wait=0):
        assert chute("check", "--lock-wait", "0", ok=False).code == 11
        assert check_json(chute, "--no-lock")["ok"]


def test_get_waits_for_a_running_prune_or_runs_beside_it_without_a_lock(
    tmp_path: Path, chute: Callable[..., Run]
) -> None:
    init_repo()
    src = tmp_path / "src"
    make_tree(src, random.Random(3))
    chute("put", str(src))
    target = tmp_path / "r"
    with lock(LocalStore(repo_dir()), EXCLUSIVE, "prune", wait=0):
        refused = chute("get", "latest", "--target", str(target), "--lock-wait", "0", ok=False)
        assert refused.code == 11 and "prune" in refused.err
        assert not target.exists()  # refused before anything was written
        chute("get", "latest", "--target", str(target), "--no-lock")
    assert snapshot_tree(target / "src") == snapshot_tree(src)
    with lock(LocalStore(repo_dir()), SHARED, "get", wait=0):  # readers coexist
        restore_equals(chute, "latest", snapshot_tree(src), tmp_path / "again")
    assert not list((repo_dir() / "locks").iterdir())  # the gets let go of theirs


def test_put_waits_for_a_running_prune_then_succeeds(
    tmp_path: Path, chute: Callable[..., Run]
) -> None:
    init_repo()
    src = tmp_path / "src"
    make_tree(src, random.Random(2))
    held = lock(LocalStore(repo_dir()), EXCLUSIVE, "prune", wait=0)
    proc = _start("put", str(src))
    time.sleep(2)  # time enough for a put of this tree, were it not waiting
    written = [p for p in repo_dir().rglob("*") if p.is_file() and "example.com" in p.parts]
    assert proc.poll() is None and written == []
    held.release()
    _finish(proc)
    restore_equals(chute, snapshot_paths(chute)[0], snapshot_tree(src), tmp_path / "r")


@pytest.mark.slow
def test_puts_and_prunes_racing_lose_nothing(tmp_path: Path, chute: Callable[..., Run]) -> None:
    init_repo()
    rng = random.Random(3)
    trees = [tmp_path / "a", tmp_path / "b"]
    for tree in trees:
        make_tree(tree, rng, files=16)
    states: dict[str, State] = {}
    for _ in range(4):
        before = set(snapshot_paths(chute))
        for tree in trees:
            mutate(tree, rng)
        expected = {tree.name: snapshot_tree(tree) for tree in trees}
        procs = [_start("put", str(tree)) for tree in trees]
        procs.append(_start("prune", "--max-unused", "0%", "--lock-wait", "120"))
        for proc in procs:
            _finish(proc)
        for name in set(snapshot_paths(chute)) - before:
            states[name] = expected[name.split("/")[-2]]
        chute("forget", "--keep-last", "2")
    chute("prune", "--max-unused", "0%")
    assert check_json(chute, "--read-data")["ok"]
    for name in snapshot_paths(chute):
        restore_equals(chute, name, states[name], tmp_path / "r")


@pytest.mark.parametrize("forkable", [True, False])
def test_a_put_backs_up_in_a_forked_copy_that_holds_the_lock_for_it(
    tmp_path: Path, chute: Callable[..., Run], monkeypatch: pytest.MonkeyPatch, forkable: bool
) -> None:
    """Unless its store holds network connections (as one over HTTP or S3 does)."""
    monkeypatch.setattr(LocalStore, "forkable", forkable)
    init_repo()
    src = tmp_path / "src"
    make_tree(src, random.Random(2))
    seen = tmp_path / "seen"
    real_put = session.put

    def put(repo: Repository, opts: PutOptions) -> PutResult:
        locks = list(LocalStore(repo_dir()).list("locks"))
        seen.write_text(f"{os.getpid()} {len(locks)}")
        return real_put(repo, opts)

    monkeypatch.setattr(session, "put", put)
    chute("put", str(src))
    pid, locks = seen.read_text().split()
    assert (int(pid) != os.getpid()) is forkable and locks == "1"
    assert not list(LocalStore(repo_dir()).list("locks"))  # released by this process
    (name,) = snapshot_paths(chute)
    restore_equals(chute, name, snapshot_tree(src), tmp_path / "r")
    assert chute("find", "--json", "*").out.count('"path"') > 10  # the graph has it


def test_readers_fork_only_for_a_put_that_reads_files(
    tmp_path: Path, chute: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A put forks its reader processes at its first batch of files to read, so one
    that finds nothing changed forks none; what it stores restores as before."""
    init_repo()
    src = tmp_path / "src"
    make_tree(src, random.Random(3))
    forks = tmp_path / "forks"
    forks.touch()
    real_pool = forked.pool

    def pool(workers: int, state: object) -> object:
        with open(forks, "a") as log:  # written in the backup's forked copy
            log.write(f"{workers}\n")
        return real_pool(workers, state)

    monkeypatch.setattr(backup.forked, "pool", pool)
    chute("put", str(src))
    assert forks.read_text() == f"{backup.READERS}\n"
    chute("put", str(src))  # nothing changed: nothing to read
    assert forks.read_text() == f"{backup.READERS}\n"
    (src / "new.txt").write_text("a new file")
    chute("put", str(src))
    assert forks.read_text() == f"{backup.READERS}\n" * 2
    names = snapshot_paths(chute)
    assert len(names) == 3
    restore_equals(chute, names[-1], snapshot_tree(src), tmp_path / "r")
