"""Run one command and measure it: wall time, CPU time, peak RSS and peak memory.

CPU time comes from `os.wait4`, which on Linux covers the child and every
descendant it waited for. Peak RSS does not: a child started from this
(large) Python process inherits its high-water mark through fork and exec,
so the command runs under GNU `/usr/bin/time`, a small process whose own
child starts afresh, and its `%M` (the largest resident set of the command
or of any process it waited for) is used. Without GNU time, `ru_maxrss` is
used and may be too high for small commands.

Peak RSS is one process's: a command that works in several (chute's forked
readers and backup process) uses more than that. So the memory of the
whole process tree is sampled too, every 0.1 s while it runs: each
process's anonymous memory, a page that forked processes still share
counted once (the sum of their `Pss_Anon`), plus the file pages (program,
libraries) of the process that maps the most, once. For one process that
is its RSS. A peak shorter than the interval can be missed, for every tool
alike. Reading a process's `smaps_rollup` walks its page tables (1.8 ms
for one of 150 MiB, measured): every 25 ms, that would take about a tenth
of a core from a command of four processes, too much to leave out of its
timings.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

TIME = "/usr/bin/time"
_RSS = re.compile(rb"^maxrss=(\d+)$", re.MULTILINE)


@functools.cache
def gnu_time() -> str | None:
    """Return the path of GNU time if it is installed."""
    if not os.access(TIME, os.X_OK):
        return None
    done = subprocess.run([TIME, "--version"], capture_output=True, check=False)
    return TIME if b"GNU" in done.stdout + done.stderr else None


@dataclass(frozen=True)
class Measurement:
    """What one run of a command cost, and where its output went."""

    argv: tuple[str, ...]
    exit_code: int
    wall: float
    user: float
    system: float
    max_rss: int  # bytes
    peak_memory: int | None  # bytes, of the whole process tree; None where /proc cannot tell
    stdout: Path
    stderr: Path

    @property
    def cpu(self) -> float:
        """User plus system CPU seconds."""
        return self.user + self.system

    def tail(self, lines: int = 3) -> str:
        """Return the last lines of the command's error output, for messages."""
        text = self.stderr.read_text(encoding="utf-8", errors="replace").strip()
        return " | ".join(text.splitlines()[-lines:])


def run(
    argv: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path | None = None
) -> Measurement:
    """Run `argv` to completion with output in `log`.out/.err; measure it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    out_path = log.with_name(log.name + ".out")
    err_path = log.with_name(log.name + ".err")
    rss_path = log.with_name(log.name + ".rss")
    rss_path.unlink(missing_ok=True)
    timer = gnu_time()
    wrapped = [timer, "-f", "maxrss=%M", "-o", str(rss_path), "--"] if timer else []
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [*wrapped, *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=dict(env),
            cwd=cwd,
        )
        sampler = TreeMemory(proc.pid, below=timer is not None)  # not GNU time's own
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        peak_memory = sampler.stop()
    proc.returncode = os.waitstatus_to_exitcode(status)
    max_rss = usage.ru_maxrss * 1024
    if timer:
        found = _RSS.search(rss_path.read_bytes()) if rss_path.exists() else None
        max_rss = int(found.group(1)) * 1024 if found else 0
    return Measurement(
        argv=tuple(argv),
        exit_code=proc.returncode,
        wall=wall,
        user=usage.ru_utime,
        system=usage.ru_stime,
        max_rss=max_rss,
        peak_memory=peak_memory,
        stdout=out_path,
        stderr=err_path,
    )


class TreeMemory:
    """Sample the memory of a process and its descendants from a thread (Linux)."""

    INTERVAL = 0.1

    def __init__(self, pid: int, below: bool = False) -> None:
        self.pid = pid
        self.below = below  # only its descendants
        self.peak: int | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-memory", daemon=True)
        self._thread.start()

    def stop(self) -> int | None:
        """Stop sampling; return the peak in bytes (None if no sample could be read)."""
        self._done.set()
        self._thread.join()
        return self.peak

    def _run(self) -> None:
        while not self._done.is_set():
            tree = process_tree(self.pid)[1 if self.below else 0 :]
            found = [m for m in map(memory, tree) if m is not None]
            if found:
                total = sum(anon for anon, _ in found) + max(files for _, files in found)
                self.peak = max(self.peak or 0, total)
            self._done.wait(self.INTERVAL)


def process_tree(pid: int) -> list[int]:
    """Return `pid` and every process descended from it (through /proc's children lists)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            with contextlib.suppress(OSError, ValueError):
                children = Path(f"/proc/{current}/task/{task}/children").read_text()
                todo.extend(int(child) for child in children.split())
    return found


def memory(pid: int) -> tuple[int, int] | None:
    """Return a process's (anonymous PSS, resident file pages) in bytes; None if it is gone.

    Without `Pss_Anon` (older kernels) the first is its whole PSS and the second 0.
    """
    fields: dict[bytes, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
            for line in rollup:
                key, _, rest = line.partition(b":")
                if key in (b"Rss", b"Pss", b"Pss_Anon", b"Anonymous"):
                    fields[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    if b"Pss_Anon" not in fields:
        return (fields[b"Pss"], 0) if b"Pss" in fields else None
    return fields[b"Pss_Anon"], fields.get(b"Rss", 0) - fields.get(b"Anonymous", 0)
