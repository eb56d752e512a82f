"""Bad input gets one clear line and the documented exit code, never a traceback."""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pyoxigraph as ox
import pytest
from conftest import Run

import chute.graph as chute_graph
import chute.session as chute_session


def _one_line(result: Run) -> None:
    assert result.err.startswith("chute: ") and result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err


def test_no_repository(chute: Callable[..., Run], tmp_path: Path) -> None:
    result = chute("--repo", str(tmp_path / "nothing"), "ls", ok=False)
    assert result.code == 10
    _one_line(result)


def test_wrong_key_file(chute: Callable[..., Run], repo_ready: None, tmp_path: Path) -> None:
    other = tmp_path / "other.key"
    other.write_bytes(os.urandom(64))
    result = chute("ls", "--key-file", str(other), ok=False)
    assert result.code == 12
    _one_line(result)


def test_wrong_passphrase(
    chute: Callable[..., Run], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHUTE_PASSWORD", "correct horse")
    chute("init")
    monkeypatch.setenv("CHUTE_PASSWORD", "wrong horse")
    result = chute("ls", ok=False)
    assert result.code == 12
    _one_line(result)
    monkeypatch.delenv("CHUTE_PASSWORD")
    pw = tmp_path / "pw"
    pw.write_text("correct horse\n")
    assert chute("ls", "--password-file", str(pw)).code == 0


def test_no_key_given(chute: Callable[..., Run], repo_ready: None, isolated_home: Path) -> None:
    (isolated_home / "config" / "chute" / "key").unlink()
    result = chute("ls", ok=False)
    assert result.code == 12
    _one_line(result)


def test_init_twice(chute: Callable[..., Run], repo_ready: None) -> None:
    result = chute("init", "--generate-key", ok=False)
    assert result.code == 17
    _one_line(result)
    assert "exists" in chute("init", "--exist-ok").out


def test_put_missing_path(chute: Callable[..., Run], repo_ready: None, tmp_path: Path) -> None:
    result = chute("put", str(tmp_path / "absent"), ok=False)
    assert result.code == 2
    _one_line(result)


@pytest.mark.parametrize(
    "args,code",
    [
        (("get", "latest", "--target", "/tmp/x"), 14),  # no snapshot yet
        (("put", "--meta", "novalue", "."), 2),
        (("put", "--exclude", "[oops", "."), 2),
        (("put", "--label", "../etc", "."), 2),
        (("put", "--compression", "zip", "."), 2),
        (("put", "--compression", "0", "."), 2),
        (("put", "--compression", "20", "."), 2),
        (("query",), 2),
        (("query", "SELECT * WHERE { ?s ?p ?o }", "--bind", "nope"), 2),
        (("ls", "19990101"), 14),
        (("frobnicate",), 2),
    ],
)
def test_bad_input(
    chute: Callable[..., Run], repo_ready: None, args: tuple[str, ...], code: int
) -> None:
    result = chute(*args, ok=False)
    assert result.code == code, result.err
    _one_line(result)


def test_tampered_blob_is_an_integrity_error(
    chute: Callable[..., Run], repo_ready: None, tmp_path: Path, isolated_home: Path
) -> None:
    src = tmp_path / "s"
    src.mkdir()
    (src / "f.bin").write_bytes(os.urandom(100_000))
    (src / "g.txt").write_text("untouched")
    chute("put", str(src))
    windows = [p for p in (isolated_home / "data" / "chute" / "repo").rglob("0/*/*")]
    assert windows
    data = bytearray(windows[0].read_bytes())
    data[200] ^= 0x01  # inside the first chunk envelope
    windows[0].write_bytes(bytes(data))
    result = chute("get", "latest", "--target", str(tmp_path / "r"), ok=False)
    assert result.code == 13
    _one_line(result)


def test_real_process_wrong_key(
    chute_proc: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    key = tmp_path / "k"
    key.write_bytes(os.urandom(32))
    assert chute_proc("init", "--key-file", str(key)).returncode == 0
    bad = tmp_path / "bad"
    bad.write_bytes(os.urandom(32))
    proc = chute_proc("ls", "--key-file", str(bad))
    assert proc.returncode == 12
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def _small_files_only() -> None:
    """In the child: files may grow to 480 KiB, then writes fail (EFBIG, no signal)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (480 << 10, resource.RLIM_INFINITY))


def test_a_graph_that_cannot_be_written_fails_the_put_in_one_line(
    chute_proc: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    # 3,000 files: the blob's window (~0.4 MB) fits under the limit, the graph's
    # bulk-loaded table files (~0.6 MB each) do not. A full disk fails the same way.
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3000):
        (src / f"f{i}").write_text(f"file {i}\n")
    assert chute_proc("init", "--generate-key").returncode == 0
    proc = chute_proc("put", str(src), preexec_fn=_small_files_only)
    assert proc.returncode == 16, proc.stderr
    assert proc.stderr.startswith("chute: cannot write the graph: ")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "is stored; the next command that opens the graph adds it" in proc.stderr

    found = chute_proc("find", "--json", "f2999")  # no limit now: the graph catches up
    assert found.returncode == 0, found.stderr
    assert [row["path"] for row in json.loads(found.stdout)] == ["src/f2999"]
    assert chute_proc("check").returncode == 0


def test_an_os_error_no_command_expected_is_still_one_line(
    chute: Callable[..., Run], repo_ready: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(tmp_path / "bad-sector"))

    monkeypatch.setattr(chute_session, "put", failing)
    result = chute("put", str(tmp_path), ok=False)
    assert result.code == 16
    _one_line(result)
    assert result.err == f"chute: {os.strerror(errno.EIO)}: {tmp_path / 'bad-sector'}\n"


def test_a_put_whose_graph_stays_busy_names_the_stored_snapshot(
    chute: Callable[..., Run],
    repo_ready: None,
    isolated_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("a\n")
    chute("put", str(src))
    (graph_dir,) = (isolated_home / "data" / "chute" / "graph").iterdir()
    monkeypatch.setattr(chute_graph, "LOCK_WAIT", 0.3)
    held = ox.Store(str(graph_dir))  # as a long query would hold it
    try:
        (src / "b").write_text("b\n")
        result = chute("put", str(src), ok=False)
    finally:
        del held
    assert result.code == 11
    _one_line(result)
    assert "is in use by another process (snapshot example.com/node1/" in result.err
    assert result.err.endswith(" is stored; the next command that opens the graph adds it)\n")
    found = json.loads(chute("find", "--json", "b").out)  # the graph catches up
    assert [row["path"] for row in found] == ["src/b"]
