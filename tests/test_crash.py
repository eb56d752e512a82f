"""kill -9 at random points of put, prune and forget; then check passes and every snapshot
restores bit-exact.

Most kills come from `killer.py`, just before a chosen filesystem mutation (a random
point among all of the run's mutations, counted on a copy of the same state first); a
few come from a timer, to land inside the graph's own writes too. A restore killed
midway leaves none of its forked workers running.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import CHUTE, Run
from graphutil import export_graph
from lifecycleutil import (
    KILLER,
    State,
    check_json,
    init_repo,
    make_tree,
    mutate,
    put_json,
    restore_equals,
    run_killed,
    snapshot_paths,
    write_random,
)
from procutil import all_ended, wait_for_children
from rdflib import RDF, URIRef
from treeutil import snapshot_tree

from chute.graph_terms import CHUTE as CHUTE_NS

pytestmark = pytest.mark.slow

KILLED = -signal.SIGKILL


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["HOME"] = str(home)
    for var, sub in (("XDG_DATA_HOME", "data"), ("XDG_CONFIG_HOME", "config")):
        env[var] = str(home / sub)
    env["XDG_CACHE_HOME"] = str(home / "cache")
    return env


def _count_mutations(args: list[str], home: Path, scratch: Path) -> int:
    """Run the command to its end on a copy of the current state; return its mutations."""
    if scratch.exists():
        shutil.rmtree(scratch)
    shutil.copytree(home, scratch, symlinks=True)
    count_file = scratch / "count"
    result = run_killed(args, 0, count_file, env=_env(scratch))
    assert result.returncode == 0, result.stderr
    return int(count_file.read_text())


def _timer_kill(args: list[str], rng: random.Random, longest: float) -> int:
    proc = subprocess.Popen(
        [sys.executable, KILLER, "0", os.devnull, "--", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(rng.uniform(0.05, longest))
    proc.send_signal(signal.SIGKILL)
    return proc.wait()


def _verify(chute: Callable[..., Run], states: dict[str, State], tmp: Path, *check: str) -> None:
    """check passes (leftovers are notes) and every live snapshot restores bit-exact."""
    report = check_json(chute, *check)
    assert report["ok"], report
    for name in snapshot_paths(chute):
        restore_equals(chute, name, states[name], tmp / "restore")


def test_put_killed_at_random_points(
    tmp_path: Path, chute: Callable[..., Run], isolated_home: Path
) -> None:
    init_repo()
    rng = random.Random(20261126)
    src = tmp_path / "src"
    make_tree(src, rng, files=20)
    states: dict[str, State] = {}
    args = ["put", str(src)]
    kills = 0
    for i in range(24):
        mutate(src, rng, changes=3)
        state = snapshot_tree(src)
        before = set(snapshot_paths(chute))
        if i % 5 == 4:
            code = _timer_kill(args, rng, 0.8)
        else:
            total = _count_mutations(args, isolated_home, tmp_path / "scratch")
            code = run_killed(args, rng.randint(1, total), tmp_path / "count").returncode
        kills += code == KILLED
        for name in set(snapshot_paths(chute)) - before:
            states[name] = state  # the put committed before it was killed
        _verify(chute, states, tmp_path)
        states[put_json(chute, src)["snapshot"]] = state
    assert kills >= 20
    assert check_json(chute, "--read-data")["ok"]


def test_prune_killed_at_random_points(
    tmp_path: Path, chute: Callable[..., Run], isolated_home: Path
) -> None:
    init_repo()
    rng = random.Random(1126)
    src = tmp_path / "src"
    make_tree(src, rng, files=20)
    states: dict[str, State] = {}
    for i in range(6):
        if i:
            mutate(src, rng, changes=5)
        chute("put", str(src))
        states[snapshot_paths(chute)[-1]] = snapshot_tree(src)
    chute("forget", "--keep-last", "2")
    template = tmp_path / "template"
    shutil.copytree(isolated_home, template, symlinks=True)
    args = ["prune", "--max-unused", "0%"]
    total = _count_mutations(args, isolated_home, tmp_path / "scratch")
    points = sorted(rng.sample(range(1, total + 1), min(22, total)))
    timers = [rng.uniform(0.05, 0.6) for _ in range(3)]
    kills = 0
    for point in [*points, *timers]:
        shutil.rmtree(isolated_home)
        shutil.copytree(template, isolated_home, symlinks=True)
        if isinstance(point, int):
            code = run_killed(args, point, tmp_path / "count").returncode
        else:
            code = _timer_kill(args, random.Random(point), point)
        kills += code == KILLED
        _verify(chute, states, tmp_path)
        chute(*args)
        _verify(chute, states, tmp_path, "--read-data")
    assert kills >= 20


def test_forget_killed_at_every_point(
    tmp_path: Path,
    chute: Callable[..., Run],
    isolated_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each update of the graph is a kill point too, and spans move two at a time: a forget
    # dies between any two of its graph updates as well as between its file writes.
    monkeypatch.setenv("KILL_AT_GRAPH_UPDATES", "1")
    init_repo()
    rng = random.Random(7)
    src = tmp_path / "src"
    make_tree(src, rng, files=8)
    states: dict[str, State] = {}
    for _ in range(4):
        mutate(src, rng, changes=2)
        chute("put", str(src))
        states[snapshot_paths(chute)[-1]] = snapshot_tree(src)
    template = tmp_path / "template"
    shutil.copytree(isolated_home, template, symlinks=True)
    args = ["forget", "--keep-last", "1"]
    total = _count_mutations(args, isolated_home, tmp_path / "scratch")
    for point in range(1, total + 1):
        shutil.rmtree(isolated_home)
        shutil.copytree(template, isolated_home, symlinks=True)
        assert run_killed(args, point, tmp_path / "count").returncode == KILLED
        _verify(chute, states, tmp_path)
        chute(*args)
        assert len(snapshot_paths(chute)) == 1
        _assert_the_graph_holds_what_a_rebuild_gives(chute)
        chute("prune")
        _verify(chute, states, tmp_path)


# The series and span index: what forget rewrites, and what must match a rebuild exactly.
INDEX_PREDICATES = {
    URIRef(CHUTE_NS + p) for p in ("version", "since", "until", "previous", "snapshotOf", "root")
}
SNAPSHOT = (RDF.type, URIRef(CHUTE_NS + "Snapshot"))


def _assert_the_graph_holds_what_a_rebuild_gives(chute: Callable[..., Run]) -> None:
    """Every triple a rebuild makes is there; the snapshots, series and spans are exactly its.

    A kill while the versions only a forgotten snapshot held go may leave
    some of them behind, unreachable (`History.remove_snapshot`), so other
    triples may be extra.
    """
    kept = set(export_graph(chute))
    chute("graph", "rebuild")
    rebuilt = set(export_graph(chute))
    assert rebuilt <= kept

    def index(triples: set[Any]) -> set[Any]:
        return {t for t in triples if t[1] in INDEX_PREDICATES or (t[1], t[2]) == SNAPSHOT}

    assert index(kept) == index(rebuilt)


def _with_workers(
    command: str, tmp_path: Path, chute: Callable[..., Run], files: int
) -> tuple[subprocess.Popen[str], list[int]]:
    """Start `chute get` of `files` 2 MiB files, or `chute put` of `files` small ones,
    as a real process; return it once its forked workers are seen, and them (a put's
    readers are forked by its backup process, which comes last in the list)."""
    init_repo()
    src = tmp_path / "src"
    rng = random.Random(files)
    for i in range(files):
        if command == "get":
            write_random(src / f"f{i}", 2 << 20, rng)
        else:
            path = src / f"d{i % 50}" / f"f{i}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"small file {i}\n" * (i % 40 + 1))
    if command == "get":
        chute("put", str(src))
        args = ["get", "latest", "--target", str(tmp_path / "r")]
    else:
        args = ["put", str(src)]
    proc = subprocess.Popen(
        [CHUTE, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal would start it
    )
    workers = wait_for_children(proc.pid, lambda: proc.poll() is None)
    if command == "put" and workers:
        (backup,) = workers
        readers = wait_for_children(backup, lambda: proc.poll() is None)
        workers = [*readers, backup] if readers else []
    assert workers, f"chute {command} ended before its workers were seen"
    return proc, workers


@pytest.mark.parametrize(("command", "files"), [("get", 16), ("put", 6000)])
def test_a_killed_command_leaves_no_worker_running(
    tmp_path: Path, chute: Callable[..., Run], command: str, files: int
) -> None:
    """Forked workers (restore's writers, put's readers) end with a killed parent."""
    proc, workers = _with_workers(command, tmp_path, chute, files)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == KILLED
    assert all_ended(workers)
    if command == "put":
        _verify(chute, {}, tmp_path)  # nothing committed, nothing damaged


@pytest.mark.parametrize(
    ("command", "files", "message"),
    [
        ("get", 64, "a restore worker ended abruptly (killed?); the restore is incomplete"),
        ("put", 20000, "a reader process ended abruptly (killed?); nothing saved"),
        ("put-backup", 20000, "the backup process ended without a result (killed by SIGKILL)"),
    ],
)
def test_a_killed_worker_fails_the_command_in_one_line(
    tmp_path: Path, chute: Callable[..., Run], command: str, files: int, message: str
) -> None:
    proc, workers = _with_workers(command.split("-")[0], tmp_path, chute, files)
    os.kill(workers[-1 if command == "put-backup" else 0], signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert err.strip().splitlines() == [f"chute: {message}"]
    assert all_ended(workers)
    if command.startswith("put"):
        assert snapshot_paths(chute) == []
        assert check_json(chute)["ok"]


@pytest.mark.parametrize("whom", ["group", "process"])
def test_an_interrupted_put_stops_in_one_line_and_leaves_nothing_behind(
    tmp_path: Path, chute: Callable[..., Run], whom: str
) -> None:
    """Ctrl-C at a terminal (the whole process group) or SIGINT to chute alone."""
    proc, workers = _with_workers("put", tmp_path, chute, 20000)
    if whom == "group":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["chute: interrupted"]
    assert all_ended(workers)
    assert snapshot_paths(chute) == []
    assert check_json(chute)["ok"]
