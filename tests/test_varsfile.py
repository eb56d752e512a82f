"""Tests for reading shell variables files through bash."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from chute import varsfile
from chute.errors import UsageError
from chute.varsfile import read_vars_file


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _read(tmp_path: Path, text: str) -> dict[str, str]:
    return read_vars_file(_write(tmp_path / "vars.sh", text))


def test_plain_assignments(tmp_path: Path) -> None:
    assert _read(tmp_path, "A=1\nB=two\nEMPTY=\nB=three\n") == {"A": "1", "B": "three", "EMPTY": ""}


def test_export(tmp_path: Path) -> None:
    text = "export CHUTE_REPO=/srv/backup\nexport LATER\nLATER=x\nexport -n HIDDEN=no\n"
    assert _read(tmp_path, text) == {"CHUTE_REPO": "/srv/backup", "LATER": "x"}


def test_command_substitution_and_expansion(tmp_path: Path) -> None:
    text = 'NODE=$(hostname)\nREPO="/srv/$NODE"\nOLD=`echo back`\nN=$((6 * 7))\n'
    result = _read(tmp_path, text)
    assert result == {
        "NODE": socket.gethostname(),
        "REPO": f"/srv/{socket.gethostname()}",
        "OLD": "back",
        "N": "42",
    }


def test_quoting_spaces_and_newlines(tmp_path: Path) -> None:
    text = (
        "A='two  words'\n"
        'B="line one\nline two\n"\n'
        "C=$'tab\\there'\n"
        "D='it'\\''s = fine'\n"
        'E="\\$HOME stays literal"\n'
    )
    assert _read(tmp_path, text) == {
        "A": "two  words",
        "B": "line one\nline two\n",
        "C": "tab\there",
        "D": "it's = fine",
        "E": "$HOME stays literal",
    }


def test_shell_logic_runs(tmp_path: Path) -> None:
    text = 'if [ -n "$HOME" ]; then W=home; else W=none; fi\nfor i in 1 2 3; do S=$S$i; done\n'
    where = "home" if "HOME" in os.environ else "none"
    # under `set -a` a loop variable is set by the file like any other
    assert _read(tmp_path, text) == {"W": where, "S": "123", "i": "3"}


def test_only_changed_variables_are_reported(tmp_path: Path) -> None:
    text = 'HOME="$HOME"\nPATH="/opt/tool/bin:$PATH"\nSHLVL=9\ncd /\n'
    result = _read(tmp_path, text)
    assert set(result) == {"PATH"}
    assert result["PATH"].startswith("/opt/tool/bin:")


def test_caller_environment_does_not_leak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHUTE_SECRET", "leak")
    monkeypatch.setenv("BASH_ENV", str(_write(tmp_path / "env.sh", "INJECTED=1\n")))
    assert _read(tmp_path, 'SEEN="${CHUTE_SECRET-unset}"\n') == {"SEEN": "unset"}


def test_stdout_functions_and_arrays_are_ignored(tmp_path: Path) -> None:
    text = "echo chatter\nprintf 'FAKE=1\\0\\0'\nf() { echo hi; }\nARR=(1 2)\nX=1\n"
    assert _read(tmp_path, text) == {"X": "1"}


def test_file_cannot_break_the_dump(tmp_path: Path) -> None:
    text = "PATH=/nowhere\nset -- other args\nexec 3>/dev/null\nX=1\n"
    assert _read(tmp_path, text) == {"PATH": "/nowhere", "X": "1"}


def test_stdin_is_empty(tmp_path: Path) -> None:
    assert _read(tmp_path, "read -r LINE || true\nX=${LINE-unset}\n") == {"LINE": "", "X": ""}


def test_relative_path_without_slash_is_not_searched_in_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "vars.sh", "X=here\n")
    monkeypatch.chdir(tmp_path)
    assert read_vars_file(Path("vars.sh")) == {"X": "here"}


def test_path_with_spaces_and_dollar(tmp_path: Path) -> None:
    directory = tmp_path / "my $HOME dir"
    directory.mkdir()
    path = _write(directory / "vars $(touch PWNED) `id`;.sh", 'ME="$1"\n')
    assert read_vars_file(path) == {"ME": str(path)}
    assert not any(p.name == "PWNED" for p in tmp_path.rglob("*"))
    assert not Path("PWNED").exists()


def test_non_utf8_value(tmp_path: Path) -> None:
    (tmp_path / "vars.sh").write_bytes(b"X=caf\xe9\n")
    result = read_vars_file(tmp_path / "vars.sh")
    assert os.fsencode(result["X"]) == b"caf\xe9"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        read_vars_file(tmp_path / "nope.sh")


@pytest.mark.parametrize(
    ("text", "status", "detail"),
    [
        ("X=1\nfalse\n", "1", ""),
        ("X=1\necho 'broken thing' >&2\nexit 3\n", "3", ": broken thing"),
        ("X=1\nif then\n", "2", "line 2: syntax error near unexpected token `then'"),
        ("X=1\nreturn 4\n", "4", ""),
        ("set -u\nY=$UNDEFINED_THING\n", "127", "UNDEFINED_THING: unbound variable"),
    ],
)
def test_failing_file(tmp_path: Path, text: str, status: str, detail: str) -> None:
    with pytest.raises(UsageError) as info:
        _read(tmp_path, text)
    message = str(info.value)
    assert f"bash exit status {status})" in message
    assert detail in message
    assert "\n" not in message


def test_failing_file_reports_last_stderr_line(tmp_path: Path) -> None:
    text = "echo first >&2\necho last problem >&2\nfalse\n"
    with pytest.raises(UsageError, match=r"exit status 1\): last problem$"):
        _read(tmp_path, text)


def test_exit_zero_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="called exit"):
        _read(tmp_path, "X=1\nexit 0\n")


def test_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a directory"):
        read_vars_file(tmp_path)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_timeout_kills_the_whole_process_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(varsfile, "TIMEOUT_SECONDS", 0.5)
    pidfile = tmp_path / "pid"
    text = f"X=$(echo $BASHPID > '{pidfile}'; exec sleep 30)\n"
    started = time.monotonic()
    with pytest.raises(UsageError, match=r"took longer than 0\.5 s"):
        _read(tmp_path, text)
    assert time.monotonic() - started < 5
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
