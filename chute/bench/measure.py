"""Run one command and measure it: wall time, CPU time and peak RSS.

CPU time comes from `os.wait4`, which on Linux covers the child and every
descendant it waited for. Peak RSS does not: a child started from this
(large) Python process inherits its high-water mark through fork and exec,
so the command runs under GNU `/usr/bin/time`, a small process whose own
child starts afresh, and its `%M` (the largest resident set of the command
or of any process it waited for) is used. Without GNU time, `ru_maxrss` is
used and may be too high for small commands.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
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
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
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
        stdout=out_path,
        stderr=err_path,
    )
