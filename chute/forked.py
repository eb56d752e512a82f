"""Worker processes that start as copies of this one (fork), for work the GIL would serialise.

A restore of many small files is mostly short system calls and a little
Python per file: two threads spend as long handing the GIL to each other as
working. Forked workers each have their own interpreter, and inherit what
the parent already holds (an open repository, its key, its loaded chunk
index) without pickling it; only the work items and their results cross a
pipe.

Only for state that is safe to copy: open network connections are not (two
processes would read one socket), so callers use these for local stores.
Workers ignore SIGINT (the parent decides when to stop, and waits for the
batches they are in) and die with the parent (Linux: `PR_SET_PDEATHSIG`).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

_PR_SET_PDEATHSIG = 1
_state: Any = None  # in a worker: what the parent handed to `pool`


def available() -> bool:
    """Tell whether this platform can fork workers."""
    return "fork" in multiprocessing.get_all_start_methods()


def pool(workers: int, state: Any) -> ProcessPoolExecutor:
    """Start `workers` forked processes now; in each, `state()` returns `state`.

    They fork at once, from the calling thread, so they copy the process as
    it is (start them before any thread of your own).
    """
    executor = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_start,
        initargs=(os.getpid(), state),  # inherited through fork, never pickled
    )
    try:
        executor.submit(int).result()  # fork now, not from the thread of a later submit
    except BaseException:
        executor.shutdown(wait=False, cancel_futures=True)  # the workers that did start
        raise
    return executor


def state() -> Any:
    """Return the state this worker was started with."""
    return _state


def _start(parent: int, given: Any) -> None:
    global _state
    _state = given
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with(parent)


def _die_with(parent: int) -> None:
    try:
        import ctypes

        prctl: Callable[[int, int], int] = ctypes.CDLL(None, use_errno=True).prctl
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return  # not Linux: nothing asks the kernel to end an orphaned worker
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
