"""Processes seen through /proc: the children of a process, and whether one still runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def children(pid: int) -> list[int]:
    """Return the pids of the processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """Tell whether a process exists and is not a zombie waiting to be reaped."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def wait_for_children(pid: int, alive: Callable[[], bool], timeout: float = 30) -> list[int]:
    """Poll until `pid` has children (or `alive()` turns false, or time is up)."""
    deadline = time.monotonic() + timeout
    found: list[int] = []
    while not found and alive() and time.monotonic() < deadline:
        found = children(pid)
        time.sleep(0.002)
    return found


def all_ended(pids: list[int], timeout: float = 10) -> bool:
    """Wait until none of `pids` runs; tell whether that happened in time."""
    deadline = time.monotonic() + timeout
    while any(running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(running(p) for p in pids)
