"""Forked workers: they start with the parent's state, shrug off Ctrl-C, and end with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from procutil import all_ended, children, running

from chute import forked

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
    proc = subprocess.Popen([sys.executable, "-c", ORPHANING], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        workers = children(proc.pid)
        assert len(workers) == 2
        time.sleep(0.7)  # the thread that forked them has ended; they must live on
        assert all(running(pid) for pid in workers)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert all_ended(workers, timeout=5)
    finally:
        proc.kill()
        proc.wait()
