"""Shared fixtures: an isolated HOME for every test, and a way to run the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# Fixtures for the scale-out tests: S3 and SPARQL servers (tests/s3util.py, tests/graphutil.py).
pytest_plugins = ["s3util", "graphutil"]

ROOT = Path(__file__).resolve().parent.parent
CHUTE = str(ROOT / ".venv" / "bin" / "chute")


@dataclass
class Run:
    """The outcome of one chute command."""

    code: int
    out: str
    err: str


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Give each test its own HOME, XDG directories and a fast (test-only) KDF."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var, sub in (
        ("XDG_DATA_HOME", "data"),
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_CACHE_HOME", "cache"),
    ):
        monkeypatch.setenv(var, str(home / sub))
    for var in list(os.environ):
        if var.startswith("CHUTE_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("CHUTE_INSECURE_FAST_KDF", "1")
    monkeypatch.setenv("CHUTE_DOMAIN", "example.com")
    monkeypatch.setenv("CHUTE_NODE", "node1")
    return home


@pytest.fixture
def chute(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Run the CLI in this process; return its exit code and output."""
    from chute.cli import main

    def run(*args: str, ok: bool | None = True) -> Run:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        result = Run(code, captured.out, captured.err)
        if ok is True:
            assert code == 0, f"chute {' '.join(args)} failed ({code}): {result.err}"
        elif ok is False:
            assert code != 0, f"chute {' '.join(args)} should have failed"
        return result

    return run


@pytest.fixture
def chute_proc() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the installed `chute` as a real process."""

    def run(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CHUTE, *args], capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]

    return run


@pytest.fixture
def repo_ready(chute: Callable[..., Run]) -> Iterator[None]:
    """A repository opened by a generated key file in the default place."""
    chute("init", "--generate-key")
    yield
