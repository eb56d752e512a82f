"""Helpers for the peer tests: nodes with small windows, peers, pushes and what a server logged."""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from pathlib import Path
from typing import Any

from conftest import CHUTE
from webutil import Node, make_node, wait_until_up

from chute.crypto import Secret
from chute.repository import Repository
from chute.session import generate_key_file
from chute.store.local import LocalStore

KIB = 1024


def small_window_node(home: Path, node: str, window: int = 16 * KIB) -> Node:
    """A node whose repository has small windows (many windows from a few MiB)."""
    found = make_node(home, node, init=False)
    key = home / "config" / "chute" / "key"
    generate_key_file(key)
    Repository.init(LocalStore(found.repo), Secret.key_file(key), window)
    return found


def held(node: Node, domain: str, name: str) -> Path:
    """The directory where `node`'s server holds the repository of `<domain>/<name>`."""
    return node.home / "data" / "chute" / "held" / domain / name


def add_peer(node: Node, name: str, url: str, token: str, *extra: str) -> None:
    node.run("peer", "add", name, url, "--token", token, *extra)


def transfer(node: Node, verb: str, peer: str, *extra: str) -> dict[str, Any]:
    """Run `chute push|pull PEER --json`; return the summary."""
    summary: dict[str, Any] = json.loads(node.run(verb, peer, *extra, "--json").stdout)
    return summary


def server_logs(node: Node) -> str:
    """Everything the node's servers wrote to their logs."""
    return "".join(p.read_text(errors="replace") for p in sorted(node.home.glob("serve-*.log")))


def resent(node: Node) -> list[str]:
    """Windows a server received although it had them already."""
    return [line for line in server_logs(node).splitlines() if "resent:" in line]


def random_tree(root: Path, seed: int, files: int = 12, size: int = 200 * KIB) -> None:
    """Incompressible files of varied sizes (deterministic)."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        sub = root / f"d{i % 3}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{seed}-{i}.bin").write_bytes(rng.randbytes(rng.randint(size // 4, size)))


def files_bytes(root: Path) -> bytes:
    """Every byte of every file under root (for grepping)."""
    parts = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            parts.append(os.fsencode(str(path)))
            try:
                parts.append(path.read_bytes())
            except OSError:
                continue
    return b"\n".join(parts)


class Server:
    """`chute serve` of a node as a process the test can kill (-9) and start again."""

    def __init__(self, node: Node, *args: str) -> None:
        self.node = node
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> str:
        log = self.node.home / f"serve-{time.monotonic_ns()}.log"
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                [CHUTE, "serve", "--bind", "127.0.0.1:0", *self.args],
                env=self.node.env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self.url = Node._read_url(log, self.proc)
        wait_until_up(self.url + "/chute/openapi.json", self.proc)
        return self.url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def kill(self) -> None:
        """SIGKILL: the server stops wherever it is."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
