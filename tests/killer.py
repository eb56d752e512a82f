"""Run the chute CLI and SIGKILL it just before its K-th filesystem mutation.

    python killer.py K COUNT_FILE -- <chute arguments>

Mutations are the calls that make a state visible: os.link (a new object),
os.replace and os.rename (a lock, a cache file), os.unlink (a deletion, or
a temporary file cleaned up). Killing just before one leaves every state a
crash can leave: a temporary file written but not linked, an object linked
but its temporary not cleaned up, a deletion half done. With K = 0 nothing
is killed and the number of mutations is written to COUNT_FILE at exit, so
a test can pick kill points across the whole run.

With KILL_AT_GRAPH_UPDATES=1 in the environment, every update of the
embedded graph (one transaction each) is a mutation too, and a forgotten
snapshot's spans move two at a time, so a forget can die between any two
of its graph updates.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


def main() -> None:
    kill_at, count_file, args = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[4:]
    guard = threading.Lock()
    count = [0]

    def wrap(call: Callable[..., Any]) -> Callable[..., Any]:
        def mutation(*a: Any, **kw: Any) -> Any:
            with guard:
                count[0] += 1
                now = count[0] == kill_at
            if now:
                os.kill(os.getpid(), signal.SIGKILL)
            return call(*a, **kw)

        return mutation

    for name in ("link", "replace", "rename", "unlink"):
        setattr(os, name, wrap(getattr(os, name)))
    if os.environ.get("KILL_AT_GRAPH_UPDATES"):
        import chute.graph as graph

        graph.SPAN_BATCH = 2
        for name in ("_apply", "_update"):
            setattr(graph.History, name, wrap(getattr(graph.History, name)))
    from chute.cli import main as chute_main

    try:
        chute_main(args)
    finally:
        if kill_at == 0:
            count_file.write_text(str(count[0]))


if __name__ == "__main__":
    main()
