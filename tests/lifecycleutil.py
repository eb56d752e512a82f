"""Helpers for the forget / prune / check / crash tests.

A repository made here has small windows (so a few MiB of data spread over
many windows, as gigabytes would over 8 MiB ones), the generated key file
in the default place and the isolated HOME of `conftest.isolated_home`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import Run
from treeutil import diff_snapshots, snapshot_tree

from chute.config import load_settings, xdg
from chute.crypto import Secret
from chute.repository import Repository
from chute.session import generate_key_file, open_repository
from chute.store.base import open_store

KIB = 1024
SMALL_WINDOW = 64 * KIB
KILLER = str(Path(__file__).with_name("killer.py"))

State = dict[bytes, dict[str, Any]]


def repo_dir() -> Path:
    return xdg("data") / "chute" / "repo"


def init_repo(window: int = SMALL_WINDOW) -> None:
    """Create the default repository with a small window and a generated key file."""
    settings = load_settings({})
    generate_key_file(settings.default_key_file)
    Repository.init(open_store(settings.repo), Secret.key_file(settings.default_key_file), window)


def open_repo() -> Repository:
    return open_repository(load_settings({}))


def repo_bytes() -> int:
    """Bytes of the repository's objects (locks and temporary files aside)."""
    root = repo_dir()
    return sum(
        p.stat().st_size
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).parts[0] not in (".tmp", "locks")
    )


def write_random(path: Path, size: int, rng: random.Random) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(rng.randbytes(size))


def make_tree(root: Path, rng: random.Random, files: int = 24) -> None:
    """A tree of small and medium files in a few directories."""
    for i in range(files):
        size = rng.choice([200, 3 * KIB, 40 * KIB, 150 * KIB, 400 * KIB])
        write_random(root / f"d{i % 4}" / f"f{i}.bin", size, rng)
    (root / "notes.txt").write_text("some text\n" * 500)


def mutate(root: Path, rng: random.Random, changes: int = 4) -> None:
    """Rewrite, add and delete a few files."""
    files = sorted(p for p in root.rglob("*.bin"))
    for path in rng.sample(files, min(changes, len(files))):
        if rng.random() < 0.25:
            path.unlink()
        else:
            write_random(path, rng.choice([3 * KIB, 150 * KIB, 300 * KIB]), rng)
    write_random(root / f"new{rng.randrange(1 << 30)}.bin", 200 * KIB, rng)


def put_json(chute: Callable[..., Run], src: Path, *extra: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(chute("put", "--json", *extra, str(src)).out)
    return out


def snapshot_paths(chute: Callable[..., Run]) -> list[str]:
    return [row["name"] for row in json.loads(chute("ls", "--json").out)]


def restore_equals(chute: Callable[..., Run], snapshot: str, state: State, target: Path) -> None:
    """Restore a whole snapshot and compare it with the recorded state of its tree."""
    if target.exists():
        shutil.rmtree(target)
    chute("get", snapshot, "--target", str(target))
    (top,) = list(target.iterdir())
    lines = diff_snapshots(state, snapshot_tree(top))
    assert not lines, f"{snapshot} restores differently: {lines[:10]}"


def check_json(chute: Callable[..., Run], *extra: str, ok: bool | None = True) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(chute("check", "--json", *extra, ok=ok).out)
    return out


def run_killed(
    args: list[str], kill_at: int, count_file: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run chute in a subprocess that SIGKILLs itself at its kill_at-th mutation (0: never)."""
    return subprocess.run(
        [sys.executable, KILLER, str(kill_at), str(count_file), "--", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env if env is not None else dict(os.environ),
    )
