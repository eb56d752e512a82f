"""Pushes through bad links and crashes: adaptation, resumption, no window sent twice.

A test proxy (`netproxy.Proxy`, loopback only) sits between the client and
the peer's server: it adds latency, limits bandwidth, resets requests that
are too large, and calls back at a chosen byte count to kill the client or
the server there. Assertions are on what was sent, stored and learned, never
on how long anything took.
"""

from __future__ import annotations

import json
import random
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import CHUTE
from netproxy import Proxy
from peerutil import (
    KIB,
    Server,
    add_peer,
    held,
    random_tree,
    resent,
    small_window_node,
    transfer,
)
from treeutil import assert_trees_equal
from webutil import Node, make_node

from chute.adapt import Learned

DOMAIN = "example.com"
WINDOW = 16 * KIB


def learned(node: Node, peer: str, direction: str = "push") -> int:
    path = node.home / ".local" / "state" / "chute" / "peers" / f"{peer}.json"
    return int(json.loads(path.read_text())[direction]["size"])


def seed_learned(node: Node, peer: str, size: int) -> None:
    path = node.home / ".local" / "state" / "chute" / "peers" / f"{peer}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = Learned(size, 1.0, 0.0).__dict__
    path.write_text(json.dumps({"push": entry}))


def nodes(tmp_path: Path) -> tuple[Node, Node, str]:
    a = small_window_node(tmp_path / "a", "nodea", WINDOW)
    b = make_node(tmp_path / "b", "nodeb", init=False)
    return a, b, b.add_token("peer-a", "write")


def verify(a: Node, b: Node, tree: Path, target: Path) -> None:
    """B holds a whole repository: check passes, A restores the tree, nothing was sent twice."""
    report = a.run("check", "--repo", str(held(b, DOMAIN, "nodea")), "--read-data").stdout
    assert "no damage found" in report
    a.env["CHUTE_REPO"] = str(held(b, DOMAIN, "nodea"))
    a.run("get", "latest", "--target", str(target))
    del a.env["CHUTE_REPO"]
    assert_trees_equal(tree, target / tree.name)
    assert resent(b) == []


@pytest.mark.slow
def test_window_size_grows_with_latency_and_the_next_push_starts_there(tmp_path: Path) -> None:
    a, b, token = nodes(tmp_path)
    tree = tmp_path / "tree"
    random_tree(tree, seed=11, files=24, size=256 * KIB)  # ~3 MiB: ~190 windows of 16 KiB
    a.run("put", str(tree))
    with Server(b, "--blobs-only") as server, Proxy(server.port, latency=0.1) as proxy:
        add_peer(a, "b", proxy.url, token, "--inflight", "2")
        first = transfer(a, "push", "b")
        sizes = first["window_sizes"]
        assert sizes[0] == WINDOW  # nothing learned yet: one window per request
        assert sizes[1] == 2 * WINDOW and max(sizes) >= 8 * WINDOW  # round trips dominate: grow
        assert learned(a, "b") >= 4 * WINDOW
        random_tree(tree / "more", seed=12, files=8, size=256 * KIB)
        a.run("put", str(tree))
        remembered = learned(a, "b")
        second = transfer(a, "push", "b")
        assert second["window_size_start"] == remembered >= 4 * WINDOW
    verify(a, b, tree, tmp_path / "r")


@pytest.mark.slow
def test_a_slow_link_stops_the_growth(tmp_path: Path) -> None:
    a, b, token = nodes(tmp_path)
    tree = tmp_path / "tree"
    random_tree(tree, seed=13, files=16, size=256 * KIB)
    a.run("put", str(tree))
    with (
        Server(b, "--blobs-only") as server,
        Proxy(server.port, rate=1_500_000, latency=0.01) as proxy,
    ):
        add_peer(a, "b", proxy.url, token, "--inflight", "2")
        summary = transfer(a, "push", "b")
    sizes = summary["window_sizes"]
    assert sizes[1] == 2 * sizes[0]  # it tried to grow ...
    assert max(sizes) <= 64 * WINDOW  # ... and stopped long before the cap (64 MiB)
    verify(a, b, tree, tmp_path / "r")


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["reset", "stall"])
def test_errors_and_timeouts_shrink_the_window_and_it_is_remembered(
    tmp_path: Path, fault: str
) -> None:
    a, b, token = nodes(tmp_path)
    tree = tmp_path / "tree"
    random_tree(tree, seed=14, files=12, size=256 * KIB)
    a.run("put", str(tree))
    seed_learned(a, "b", 1 << 20)  # a previous run on a better link: 64 windows per request
    limit = {"max_request": 100 * KIB} if fault == "reset" else {"stall_over": 100 * KIB}
    with Server(b, "--blobs-only") as server, Proxy(server.port, **limit) as proxy:
        add_peer(a, "b", proxy.url, token, "--inflight", "2", "--attempts", "8", "--timeout", "1")
        summary = transfer(a, "push", "b")
        assert summary["window_size_start"] == 1 << 20
        assert summary["retries"] > 0 and (proxy.resets if fault == "reset" else proxy.stalls) > 0
        assert learned(a, "b") < 100 * KIB  # what fits through the link
        random_tree(tree / "more", seed=15, files=4, size=256 * KIB)
        a.run("put", str(tree))
        remembered = learned(a, "b")
        second = transfer(a, "push", "b")
        assert second["window_size_start"] == remembered < 100 * KIB
    verify(a, b, tree, tmp_path / "r")


def _push_killed_at(a: Node, proxy: Proxy, delta: int) -> int:
    """Run a push; SIGKILL it once `delta` more bytes went through the proxy. Return its code."""
    proc = subprocess.Popen(
        [CHUTE, "push", "b", "--json"],
        env=a.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proxy.at_bytes(proxy.sent + delta, proc.kill)
    return proc.wait(timeout=300)


@pytest.mark.slow
def test_killed_client_resumes_and_never_resends_a_window(tmp_path: Path) -> None:
    a, b, token = nodes(tmp_path)
    tree = tmp_path / "tree"
    random_tree(tree, seed=16, files=20, size=256 * KIB)
    a.run("put", str(tree))
    rng = random.Random(16)
    with Server(b, "--blobs-only") as server, Proxy(server.port) as proxy:
        add_peer(a, "b", proxy.url, token)
        codes = [_push_killed_at(a, proxy, rng.randint(64 * KIB, 600 * KIB)) for _ in range(4)]
        assert -9 in codes
        final = transfer(a, "push", "b")
        assert final["resumed"] and final["windows_resumed"] > 0
        assert final["blobs_sent"] + final["blobs_skipped"] == 1
        held_windows = len(list(held(b, DOMAIN, "nodea").rglob("0/16384/*")))
        assert final["windows_sent"] + final["windows_skipped"] == held_windows
    verify(a, b, tree, tmp_path / "r")


@pytest.mark.slow
def test_server_killed_mid_request_and_restarted(tmp_path: Path) -> None:
    a, b, token = nodes(tmp_path)
    tree = tmp_path / "tree"
    random_tree(tree, seed=17, files=20, size=256 * KIB)
    a.run("put", str(tree))
    first = Server(b, "--blobs-only")
    second = Server(b, "--blobs-only")
    first.start()
    restarted = threading.Event()
    try:
        with Proxy(first.port) as proxy:

            def crash() -> None:
                first.kill()  # wherever it is: mid-body, or storing the windows of a request
                proxy.drop_all()
                second.start()
                proxy.retarget(second.port)
                restarted.set()

            proxy.at_bytes(700 * KIB, lambda: threading.Thread(target=crash).start())
            add_peer(a, "b", proxy.url, token, "--attempts", "10")
            summary: dict[str, Any] = transfer(a, "push", "b")
            assert restarted.is_set()
            assert summary["retries"] > 0 and summary["blobs_sent"] == 1
            # Killed again, this time while windows of a request are being stored.
            random_tree(tree / "more", seed=18, files=10, size=256 * KIB)
            a.run("put", str(tree))
            space = held(b, DOMAIN, "nodea")
            before = len(list(space.rglob("0/16384/*")))
            add_peer(a, "b", proxy.url, token, "--attempts", "2", "--replace")
            watcher = _kill_when(space, before + 5, second)
            done = subprocess.run([CHUTE, "push", "b"], env=a.env, capture_output=True)
            watcher.join()
            assert done.returncode != 0  # the peer went away for good
            third = Server(b, "--blobs-only")
            with third:
                proxy.retarget(third.port)
                final = transfer(a, "push", "b")
                assert final["windows_resumed"] >= 5
    finally:
        first.stop()
        second.stop()
    verify(a, b, tree, tmp_path / "r")


def _kill_when(space: Path, windows: int, server: Server) -> threading.Thread:
    """Kill the server (-9) as soon as `space` holds that many windows."""

    def watch() -> None:
        for _ in range(20_000):
            if len(list(space.rglob("0/16384/*"))) >= windows:
                break
            threading.Event().wait(0.003)
        server.kill()

    thread = threading.Thread(target=watch)
    thread.start()
    return thread


@pytest.mark.slow
def test_one_file_from_a_peer_costs_its_windows_not_the_repository(tmp_path: Path) -> None:
    a, b, token = nodes(tmp_path)
    tree = tmp_path / "tree"
    random_tree(tree, seed=19, files=24, size=256 * KIB)
    a.run("put", str(tree))
    with Server(b, "--blobs-only") as server:
        add_peer(a, "b", server.url, token)
        transfer(a, "push", "b")
        stored = sum(p.stat().st_size for p in held(b, DOMAIN, "nodea").rglob("*") if p.is_file())
        with Proxy(server.port) as proxy:
            add_peer(a, "via", proxy.url, token)
            one = sorted((tree / "d1").iterdir())[0]
            rel = f"{tree.name}/d1/{one.name}"
            a.run("get", "latest", rel, "--from", "via", "--target", str(tmp_path / "r"))
            assert (tmp_path / "r" / rel).read_bytes() == one.read_bytes()
            assert proxy.received < stored / 4, (proxy.received, stored)
