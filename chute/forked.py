"""Worker processes that start as copies of this one (fork), for work the GIL would serialise.

Restoring or reading many small files is mostly short system calls and a
little Python per file: threads spend as long handing the GIL to each other
as working. Forked workers each have their own interpreter, and inherit what
the parent already holds (an open repository, its key, its loaded chunk
index) without pickling it; only the work items and their results cross a
pipe.

`apart` runs one piece of work in a copy of its own and hands its result
back, pickled: when the copy exits, everything the work allocated goes back
to the system at once (a put's buffers, and the C library's arenas its
threads fragmented, which `malloc_trim` cannot wholly return).

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

import contextlib
import mmap
import multiprocessing
import os
import pickle
import select
import signal
import struct
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from chute.errors import ChuteError

T = TypeVar("T")
Progress = Callable[[int, int], None]

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
    # SIGINT waits until a worker ignores it: Ctrl-C in the moment between the fork
    # and that would break the new worker's start with a traceback of its own.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        executor.submit(int).result()  # fork now, not from the thread of a later submit
    except BaseException:
        executor.shutdown(wait=False, cancel_futures=True)  # the workers that did start
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
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


def apart(
    work: Callable[[Progress | None], T],
    progress: Progress | None = None,
    role: str = "the forked process",
) -> T:
    """Run `work` in a forked copy of this process; return what it returns, or raise its error.

    Fork from the main thread, with no other thread holding a lock the work
    needs (a lock's renewal: pause it first). The copy dies with this
    process. With `progress`, `work` gets a callback whose (count, bytes)
    reach `progress` here, polled ten times a second. The result is pickled
    straight into a pipe and unpickled straight from it (no copy of it in
    bytes on either side); an error keeps its traceback as a note. A copy
    that ends without handing back a result fails in one line that names it
    as `role`.
    """
    shared = mmap.mmap(-1, _SHARED)  # MAP_SHARED: what the copy writes here shows here
    readable, writable = os.pipe()
    parent = os.getpid()
    # Ctrl-C waits until each side is where it can take it: in the copy, inside
    # what ends it through os._exit (not back in the caller's code, as a second parent).
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        child = os.fork()
        if child == 0:  # pragma: no cover - in the copy, which leaves through os._exit
            os.close(readable)
            _run_apart(work, parent, writable, shared, progress is not None, role, mask)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    os.close(writable)
    outcome: tuple[bool, Any] | None = None
    try:
        with open(readable, "rb") as stream:
            while progress is not None and not select.select([stream], [], [], 0.1)[0]:
                progress(*_PROGRESS.unpack_from(shared))
            with contextlib.suppress(Exception):  # cut short: the copy ended, or failed to pickle
                outcome = pickle.load(stream)
    except BaseException:  # Ctrl-C, say: the copy stops as a put in this process would
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGINT)
        os.waitpid(child, 0)
        raise
    _, status = os.waitpid(child, 0)
    if outcome is None:
        reason = shared[_PROGRESS.size :].rstrip(b"\0").decode(errors="replace")
        raise ChuteError(f"{role} {reason or 'ended without a result'} ({_ended(status)})")
    ok, value = outcome
    if ok:
        return value
    raise value


_PROGRESS = struct.Struct("<qq")
_SHARED = 4096  # the progress, then why a result could not be handed back


def _run_apart(
    work: Callable[[Progress | None], T],
    parent: int,
    pipe: int,
    shared: mmap.mmap,
    relaying: bool,
    role: str,
    mask: Iterable[int],
) -> None:
    code = 1
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if not _kernel_ends_orphan():
            threading.Thread(target=_watch, args=(parent,), daemon=True).start()
        if os.getppid() != parent:
            return

        def relay(count: int, size: int) -> None:
            _PROGRESS.pack_into(shared, 0, count, size)

        try:
            payload: tuple[bool, Any] = (True, work(relay if relaying else None))
        except BaseException as exc:
            if not isinstance(exc, ChuteError):
                exc.add_note("in the forked process:\n" + "".join(traceback.format_exception(exc)))
            payload = (False, exc)
        with open(pipe, "wb") as stream:
            try:
                pickle.dump(payload, stream, pickle.HIGHEST_PROTOCOL)
            except Exception as exc:  # what pickle cannot carry: say why, where the parent reads
                what = "its result" if payload[0] else f"{type(payload[1]).__name__}: {payload[1]}"
                room = _SHARED - _PROGRESS.size
                reason = f"could not hand back {what} ({exc})".encode()[:room]
                shared[_PROGRESS.size : _PROGRESS.size + len(reason)] = reason
                return
        code = 0
    finally:
        os._exit(code)


def _ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def _start(parent: int, from_main: bool, given: Any, started: Any) -> None:
    global _state, _number
    _state = given
    with started.get_lock():
        started.value += 1
        _number = started.value
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # and one that came meanwhile is dropped
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
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
