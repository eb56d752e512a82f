"""A small history made by real `chute put` runs, shared by the history tests.

Three snapshots of one tree, `proj/`, changing in between (sizes in bytes):

    snapshot 1 (--tag initial --meta ticket=OPS-42)
      proj/README.md            6   "hello\\n"
      proj/notes/todo.txt       9   "buy milk\\n"
      proj/data/big.bin      3000
      proj/data/copy1.txt       5   "same\\n"
      proj/data/copy2.txt       5   "same\\n"
      proj/bin/tool.sh         18   mode 4755 (setuid)
      proj/shared.txt           5   mode 0666 (world-writable)
      proj/tagged.txt           2   xattr user.comment = "hi" (where supported)
    snapshot 2 (--tag nightly): README.md rewritten (12 bytes), notes/todo.txt
      deleted, data/new-large.bin (5000) and data/new-small.txt (10) added
    snapshot 3 (--tag nightly --meta ticket=OPS-43): notes/todo.txt back with
      new content (10), shared.txt chmod 0644, data/copy3.txt ("same\\n") added

`build_history` runs the CLI in this process under its own HOME and returns
the environment to apply (with `monkeypatch`) to query it later.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import xattr

SAME = b"same\n"
SIZES = {1: 3050, 2: 8057, 3: 8072}  # bytes of regular files in each snapshot
FILES = {1: 8, 2: 9, 3: 11}


@dataclass
class FixtureHistory:
    """What the fixture's puts made: where, and the snapshots' URIs and listings."""

    env: dict[str, str]
    source: Path
    uris: list[str] = field(default_factory=list)
    snapshots: list[dict[str, object]] = field(default_factory=list)  # `ls --json` rows
    xattrs: bool = False

    @property
    def timestamps(self) -> list[str]:
        return [uri.rstrip("/").rsplit("/", 1)[1] for uri in self.uris]

    def time(self, index: int, shift: int = 0) -> str:
        """The xsd:dateTime of snapshot `index` (0-based), `shift` seconds later."""
        from datetime import UTC, datetime, timedelta

        moment = datetime.strptime(self.timestamps[index], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return (moment + timedelta(seconds=shift)).strftime("%Y-%m-%dT%H:%M:%SZ")


def run(*args: str) -> str:
    """Run the CLI in this process; return its output, failing on a non-zero exit."""
    from chute.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            if exc.code:
                raise AssertionError(f"chute {' '.join(args)}: {err.getvalue()}") from exc
    return out.getvalue()


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)


def build_history(base: Path) -> FixtureHistory:
    """Make the three snapshots; return how to reach them."""
    home = base / "home"
    env = {
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "CHUTE_INSECURE_FAST_KDF": "1",
        "CHUTE_DOMAIN": "example.com",
        "CHUTE_NODE": "node1",
    }
    proj = base / "proj"
    history = FixtureHistory(env, proj)
    with pytest.MonkeyPatch.context() as mp:
        for var in list(os.environ):
            if var.startswith("CHUTE_"):
                mp.delenv(var)
        for var, value in env.items():
            mp.setenv(var, value)
        run("init", "--generate-key")
        for sub in ("", "notes", "data", "bin"):
            (proj / sub).mkdir(parents=True, exist_ok=True)
            os.chmod(proj / sub, 0o755)
        _write(proj / "README.md", b"hello\n")
        _write(proj / "notes" / "todo.txt", b"buy milk\n")
        _write(proj / "data" / "big.bin", b"\x00\x01" * 1500)
        _write(proj / "data" / "copy1.txt", SAME)
        _write(proj / "data" / "copy2.txt", SAME)
        _write(proj / "bin" / "tool.sh", b"#!/bin/sh\necho hi\n", 0o4755)
        _write(proj / "shared.txt", b"open\n", 0o666)
        _write(proj / "tagged.txt", b"t\n")
        try:
            xattr.setxattr(str(proj / "tagged.txt"), "user.comment", b"hi")
            history.xattrs = True
        except OSError:
            history.xattrs = False
        put = ("put", "--tag", "initial", "--meta", "ticket=OPS-42", str(proj))
        history.uris.append(run(*put).strip())
        _write(proj / "README.md", b"hello world\n")
        (proj / "notes" / "todo.txt").unlink()
        _write(proj / "data" / "new-large.bin", b"L" * 5000)
        _write(proj / "data" / "new-small.txt", b"0123456789")
        history.uris.append(run("put", "--tag", "nightly", str(proj)).strip())
        _write(proj / "notes" / "todo.txt", b"buy bread\n")
        os.chmod(proj / "shared.txt", 0o644)
        _write(proj / "data" / "copy3.txt", SAME)
        put = ("put", "--tag", "nightly", "--meta", "ticket=OPS-43", str(proj))
        history.uris.append(run(*put).strip())
        history.snapshots = json.loads(run("ls", "--json"))
    return history


def apply(history: FixtureHistory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point this test's environment at the fixture history."""
    for var, value in history.env.items():
        monkeypatch.setenv(var, value)
