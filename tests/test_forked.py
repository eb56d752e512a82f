"""Forked workers: they start with the parent's state, shrug off Ctrl-C, and end with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from procutil import all_ended, children, running

from chute import forked
from chute.errors import ChuteError, UsageError

ORPHANING = """
import threading, time
from chute import forked

pools = []

def start():
    pools.append(forked.pool(2, None))  # from a thread that then ends: no kernel signal

thread = threading.Thread(target=start)
thread.start()
thread.join()
print("ready", flush=True)
time.sleep(120)
"""


def _state_value() -> object:
    return forked.state()["value"]


def test_workers_start_with_the_state_and_ignore_sigint() -> None:
    pool = forked.pool(2, {"value": 42})
    try:
        pids = {pool.submit(os.getpid).result() for _ in range(8)}
        assert os.getpid() not in pids
        assert pool.submit(_state_value).result() == 42
        for pid in pids:
            os.kill(pid, signal.SIGINT)
        time.sleep(0.2)
        assert all(running(pid) for pid in pids)
        assert pool.submit(_state_value).result() == 42
    finally:
        pool.shutdown()


def _number() -> tuple[int, int]:
    time.sleep(0.05)  # long enough that both workers take tasks
    return os.getpid(), forked.number()


def test_each_worker_of_a_pool_has_a_number_of_its_own() -> None:
    assert forked.number() == 0  # the parent
    for _ in range(2):  # a second pool numbers its workers afresh
        pool = forked.pool(2, None)
        try:
            seen = dict(f.result() for f in [pool.submit(_number) for _ in range(12)])
        finally:
            pool.shutdown()
        assert len(seen) == 2
        assert sorted(seen.values()) == [1, 2]
    assert forked.number() == 0


def test_workers_started_off_the_main_thread_end_with_a_killed_parent() -> None:
    # The thread that forked them has ended: they must live on until the parent dies.
    _killed_parent_leaves_none(ORPHANING, "ready", workers=2, settle=0.7)


def _killed_parent_leaves_none(script: str, ready: str, workers: int, settle: float) -> None:
    """Start `script`; once it prints `ready`, kill it: its forked children must end too."""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == ready
        forked_ones = children(proc.pid)
        assert len(forked_ones) == workers
        time.sleep(settle)
        assert all(running(pid) for pid in forked_ones)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert all_ended(forked_ones, timeout=5)
    finally:
        proc.kill()
        proc.wait()


APART_ORPHAN = """
import time
from chute import forked

def work(progress):
    print("copy", flush=True)
    time.sleep(120)

forked.apart(work)
"""


def _where(progress: forked.Progress | None) -> tuple[int, int]:
    return os.getpid(), os.getppid()


def test_apart_runs_the_work_in_a_copy_and_hands_back_its_result() -> None:
    pid, parent = forked.apart(_where)
    assert parent == os.getpid() and pid != os.getpid()
    assert forked.apart(lambda _: {"big": b"x" * (3 << 20)})["big"] == b"x" * (3 << 20)


def test_apart_raises_the_copys_error_here() -> None:
    def refuse(_: forked.Progress | None) -> None:
        raise UsageError("bad   input\nhere")

    def crash(_: forked.Progress | None) -> None:
        raise ValueError("a bug")

    with pytest.raises(UsageError, match=r"^bad input here$"):
        forked.apart(refuse)
    with pytest.raises(ValueError, match="a bug") as caught:
        forked.apart(crash)
    assert "in the forked process" in "".join(caught.value.__notes__)
    assert "in crash" in "".join(caught.value.__notes__)  # its traceback came along


def test_apart_fails_in_one_line_when_the_copy_dies_or_its_result_cannot_cross() -> None:
    def die(_: forked.Progress | None) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(ChuteError, match=r"ended without a result \(killed by SIGKILL\)"):
        forked.apart(die)
    with pytest.raises(ChuteError, match="cannot pickle"):
        forked.apart(lambda _: threading.Lock())


def test_apart_relays_the_copys_progress() -> None:
    seen: list[tuple[int, int]] = []

    def work(progress: forked.Progress | None) -> None:
        assert progress is not None
        progress(3, 4096)
        time.sleep(0.35)  # the parent polls ten times a second

    forked.apart(work, lambda count, size: seen.append((count, size)))
    assert (3, 4096) in seen


def test_the_copy_ends_with_a_killed_parent() -> None:
    _killed_parent_leaves_none(APART_ORPHAN, "copy", workers=1, settle=0)
