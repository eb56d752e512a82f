"""`chute log`, `chute diff` and `chute find` on a history made by real puts."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Run
from historyutil import FixtureHistory, apply, build_history

from chute.timeline import glob_regex


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> FixtureHistory:
    return build_history(tmp_path_factory.mktemp("history"))


@pytest.fixture
def cli(
    made: FixtureHistory, chute: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Run]:
    apply(made, monkeypatch)
    return chute


def _one_line(result: Run) -> None:
    assert result.err.startswith("chute: ") and result.err.count("\n") == 1, result.err


# --------------------------------------------------------------------------- log


def test_log_lists_versions_oldest_first(made: FixtureHistory, cli: Callable[..., Run]) -> None:
    s1, s2, s3 = made.timestamps
    rows = json.loads(cli("log", "proj/notes/todo.txt", "--json").out)
    assert [(r["since_timestamp"], r["last_timestamp"], r["until_timestamp"]) for r in rows] == [
        (s1, s1, s2),
        (s3, s3, None),
    ]
    assert [(r["size"], r["deleted"], r["type"]) for r in rows] == [
        (9, True, "file"),
        (10, False, "file"),
    ]
    text = cli("log", "proj/notes/todo.txt").out.splitlines()
    assert text[0].split() == ["since", "last", "size", "modified", "sha256", "mode", "entry"]
    assert [line.split()[0] for line in text[1:]] == [s1, s2, s3]
    assert text[2].split() == [s2, "(deleted)"]


def test_log_of_a_changed_file_is_not_a_deletion(
    made: FixtureHistory, cli: Callable[..., Run]
) -> None:
    rows = json.loads(cli("log", "proj/README.md", "--json").out)
    assert [(r["size"], r["deleted"]) for r in rows] == [(6, False), (12, False)]
    assert rows[0]["until"] == rows[1]["since"] == made.uris[1]


def test_log_takes_an_absolute_path_under_a_backed_up_tree(
    made: FixtureHistory, cli: Callable[..., Run]
) -> None:
    by_path = cli("log", str(made.source / "README.md"), "--json").out
    assert by_path == cli("log", "./proj/README.md", "--json").out
    directory = json.loads(cli("log", str(made.source) + "/", "--json").out)
    assert {r["path"] for r in directory} == {"proj"} and len(directory) == 3


def test_log_of_an_unknown_path_is_one_line(made: FixtureHistory, cli: Callable[..., Run]) -> None:
    result = cli("log", "proj/nothing.txt", ok=False)
    assert result.code == 14
    _one_line(result)
    outside = cli("log", "/somewhere/else", ok=False)
    assert outside.code == 14 and "not under any backed-up path" in outside.err


def test_log_reads_the_graph_without_the_key(
    made: FixtureHistory, cli: Callable[..., Run], tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-key"
    assert cli("--key-file", str(missing), "log", "proj/README.md").out
    assert cli("--key-file", str(missing), "diff", made.uris[0], ok=False).code != 0


def test_log_catches_up_with_the_repository_and_then_needs_the_key(
    tmp_path: Path, chute: Callable[..., Run], repo_ready: None, isolated_home: Path
) -> None:
    src = tmp_path / "docs"
    src.mkdir()
    (src / "a.txt").write_text("one")
    chute("put", str(src))
    shutil.rmtree(isolated_home / "data" / "chute" / "graph")
    wrong = tmp_path / "wrong.key"
    wrong.write_bytes(b"x" * 64)
    refused = chute("log", "docs/a.txt", "--key-file", str(wrong), ok=False)
    assert refused.code == 12
    _one_line(refused)
    assert json.loads(chute("log", "docs/a.txt", "--json").out)[0]["size"] == 3


# --------------------------------------------------------------------------- diff


def test_diff_lists_changes_with_sizes(made: FixtureHistory, cli: Callable[..., Run]) -> None:
    s1, _s2, s3 = made.timestamps
    out = cli("diff", s1, s3).out.splitlines()
    assert out == [
        "~ proj/README.md  6 B -> 12 B",
        "+ proj/data/copy3.txt  5 B",
        "+ proj/data/new-large.bin  4.9 KiB",
        "+ proj/data/new-small.txt  10 B",
        "~ proj/notes/todo.txt  9 B -> 10 B",
        "~ proj/shared.txt  (metadata only)",
        f"{s1} -> {s3}: 3 added, 3 changed, 0 deleted",
    ]


def test_diff_defaults_to_latest_and_works_backwards(
    made: FixtureHistory, cli: Callable[..., Run]
) -> None:
    _s1, s2, s3 = made.uris
    forward = json.loads(cli("diff", s2, "--json").out)
    assert [(c["path"], c["change"]) for c in forward] == [
        ("proj/data/copy3.txt", "added"),
        ("proj/notes/todo.txt", "added"),
        ("proj/shared.txt", "changed"),
    ]
    backward = json.loads(cli("diff", s3, s2, "--json").out)
    assert [(c["path"], c["change"]) for c in backward] == [
        ("proj/data/copy3.txt", "deleted"),
        ("proj/notes/todo.txt", "deleted"),
        ("proj/shared.txt", "changed"),
    ]
    assert backward[1]["old_size"] == 10 and backward[1]["new_size"] is None
    assert json.loads(cli("diff", s2, s2, "--json").out) == []


def test_diff_of_two_mounts_is_refused(
    tmp_path: Path, chute: Callable[..., Run], repo_ready: None
) -> None:
    uris = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x").write_text(name)
        uris.append(chute("put", str(tmp_path / name)).out.strip())
    result = chute("diff", *uris, ok=False)
    assert result.code == 2 and "one mount" in result.err
    _one_line(result)


# --------------------------------------------------------------------------- find


def test_find_by_glob(made: FixtureHistory, cli: Callable[..., Run]) -> None:
    s1, s2, _s3 = made.timestamps
    rows = json.loads(cli("find", "*.bin", "--json").out)
    assert [(r["path"], r["first_timestamp"], r["present"], r["versions"]) for r in rows] == [
        ("proj/data/big.bin", s1, True, 1),
        ("proj/data/new-large.bin", s2, True, 1),
    ]
    deep = json.loads(cli("find", "**/data/*.txt", "--json").out)
    assert [r["path"] for r in deep] == [
        f"proj/data/{n}" for n in ("copy1.txt", "copy2.txt", "copy3.txt", "new-small.txt")
    ]
    assert [r["path"] for r in json.loads(cli("find", "proj/*", "--json").out)] == [
        "proj/README.md",
        "proj/bin",
        "proj/data",
        "proj/notes",
        "proj/shared.txt",
        "proj/tagged.txt",
    ]


def test_find_by_regex_and_as_text(made: FixtureHistory, cli: Callable[..., Run]) -> None:
    s1, _s2, s3 = made.timestamps
    rows = json.loads(cli("find", "--regex", "todo", "--json").out)
    assert [
        (r["path"], r["versions"], r["first_timestamp"], r["last_timestamp"]) for r in rows
    ] == [("proj/notes/todo.txt", 2, s1, s3)]
    text = cli("find", "README*").out.splitlines()
    assert text[1].split() == [s1, "present", "2", "12", "B", "file", "proj/README.md"]
    assert "nothing matches" in cli("find", "*.nope").out


def test_find_with_a_bad_regex_is_one_line(made: FixtureHistory, cli: Callable[..., Run]) -> None:
    result = cli("find", "--regex", "(unclosed", ok=False)
    assert result.code == 2
    _one_line(result)


@pytest.mark.parametrize(
    "glob,yes,no",
    [
        ("*.toml", ["a.toml", "x/y/a.toml"], ["a.toml.bak", "xtoml"]),
        ("a?c", ["abc", "d/abc"], ["ac", "a/c", "abbc"]),
        ("docs/*.md", ["docs/x.md"], ["y/docs/x.md", "docs/a/x.md"]),
        ("docs/**/x.md", ["docs/a/b/x.md", "docs/a/x.md"], ["other/a/x.md"]),
        ("[!a]b", ["cb", "x/cb"], ["ab"]),
        ("a+b(c).md", ["a+b(c).md"], ["aab(c).md"]),
    ],
)
def test_glob_translation(glob: str, yes: list[str], no: list[str]) -> None:
    regex = re.compile(glob_regex(glob))
    assert all(regex.search(path) for path in yes), (glob, regex.pattern)
    assert not any(regex.search(path) for path in no), (glob, regex.pattern)
