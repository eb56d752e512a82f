"""Worker processes that start as copies of this one (fork), for work the GIL would serialise.

Restoring or reading many small files is mostly short system calls and a
little Python per file: threads spend as long handing the GIL to each other
as working. Forked workers each have their own interpreter, and inherit what
the parent already holds (an open repository, its key, its loaded chunk
index) without pickling it; only the work items and their results cross a
pipe.

Only for state that is safe to use from a copy: open network connections are
not (two processes would read one socket), so a restore forks only for a
local store, and a put's readers never touch the store at all.
Workers ignore SIGINT (the parent decides when to stop, and waits for the
batches they are in) and die with the parent: at once through the kernel
(Linux: `PR_SET_PDEATHSIG`) when the main thread started them, and within
half a second through a watchdog thread otherwise (the kernel's signal
follows the thread that forked, which in a server may end before the
process does).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

_PR_SET_PDEATHSIG = 1
_state: Any = None  # in a worker: what the parent handed to `pool`
_number = 0  # in a worker: its number in its pool (1, 2, ...); 0 in a process no pool started


def available() -> bool:
    """Tell whether this platform can fork workers."""
    return "fork" in multiprocessing.get_all_start_methods()


def pool(workers: int, state: Any) -> ProcessPoolExecutor:
    """Start `workers` forked processes now; in each, `state()` returns `state`.

    They fork at once, from the calling thread. Other threads are not copied,
    and a lock one of them held at that moment stays held in the copy: what
    a worker runs must need none of them (restoring files and reading them
    for a put use only their own objects and the C libraries' own state).
    """
    context = multiprocessing.get_context("fork")
    started = context.Value("i", 0)  # shared memory: numbers the workers as they start
    executor = ProcessPoolExecutor(
        workers,
        mp_context=context,
        initializer=_start,
        # Inherited through fork, never pickled.
        initargs=(
            os.getpid(),
            threading.current_thread() is threading.main_thread(),
            state,
            started,
        ),
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


def number() -> int:
    """Return this worker's number: 1, 2, ...; no two workers of one pool share one.

    Also a worker started in place of one that ended gets a new number, so
    what a worker makes under its number (a put's reader: nonces) never
    meets another's. The parent, which started no pool as a worker, is 0.
    """
    return _number


def _start(parent: int, from_main: bool, given: Any, started: Any) -> None:
    global _state, _number
    _state = given
    with started.get_lock():
        started.value += 1
        _number = started.value
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not (from_main and _kernel_ends_orphan()):
        threading.Thread(target=_watch, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # the parent died before either took effect
        os._exit(1)


def _kernel_ends_orphan() -> bool:
    """Ask the kernel to kill this worker when the thread that forked it ends."""
    try:
        import ctypes

        prctl: Callable[[int, int], int] = ctypes.CDLL(None, use_errno=True).prctl
        return prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) == 0
    except (OSError, AttributeError):
        return False  # not Linux


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)
