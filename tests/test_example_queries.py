"""Every example query in examples/queries answers its question exactly on a real history.

The history (see historyutil) is made once per module by real `chute put`
runs; each test runs one query with `chute query -f ... --bind ...`, as a
user would, and compares the whole answer.
"""

from __future__ import annotations

import base64
import grp
import hashlib
import json
import os
import pwd
from collections.abc import Callable
from typing import Any

import pytest
from conftest import ROOT, Run
from historyutil import FILES, SAME, SIZES, FixtureHistory, apply, build_history

QUERIES = ROOT / "examples" / "queries"
INTEGER = "http://www.w3.org/2001/XMLSchema#integer"
TESTED: set[str] = set()


def answers(name: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Mark a test as the one for example query `name`."""
    TESTED.add(name)
    return lambda func: func


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> FixtureHistory:
    return build_history(tmp_path_factory.mktemp("history"))


@pytest.fixture
def ask(
    made: FixtureHistory, chute: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., list[dict[str, Any]]]:
    """Run an example query with bindings; return its rows (integers as int)."""
    apply(made, monkeypatch)

    def run(query: str, /, **binds: str) -> list[dict[str, Any]]:
        args = ["query", "-f", str(QUERIES / query), "--format", "json"]
        for var, value in binds.items():
            args += ["--bind", f"{var}={value}"]
        answer = json.loads(chute(*args).out)
        rows = []
        for binding in answer["results"]["bindings"]:
            row: dict[str, Any] = dict.fromkeys(answer["head"]["vars"])
            for var, term in binding.items():
                value = term["value"]
                row[var] = int(value) if term.get("datatype") == INTEGER else value
            rows.append(row)
        return rows

    return run


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pick(rows: list[dict[str, Any]], *names: str) -> list[tuple[Any, ...]]:
    return [tuple(row[n] for n in names) for row in rows]


# --------------------------------------------------------------------------- the examples


def test_every_example_has_a_comment_line_and_a_test() -> None:
    names = {path.name for path in QUERIES.glob("*.rq")}
    assert len(names) >= 12
    for name in names:
        first = (QUERIES / name).read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# ") and len(first) > 20, name
    assert names == TESTED


def test_the_commands_run_the_examples() -> None:
    for packaged in (ROOT / "chute" / "queries").glob("*.rq"):
        assert packaged.read_bytes() == (QUERIES / packaged.name).read_bytes(), packaged.name


@answers("path-log.rq")
def test_path_log(made: FixtureHistory, ask: Callable[..., list[dict[str, Any]]]) -> None:
    s1, s2, s3 = made.uris
    rows = ask("path-log.rq", path="proj/README.md")
    assert pick(rows, "since", "last", "until", "type", "size", "sha256") == [
        (s1, s1, s2, "File", 6, sha(b"hello\n")),
        (s2, s3, None, "File", 12, sha(b"hello world\n")),
    ]
    assert [r["permissions"] for r in rows] == ["-rw-r--r--"] * 2
    # Owners come through the versions' shared attribute nodes.
    assert [(r["owner"], r["group"]) for r in rows] == [_own_names()] * 2
    assert [r["sinceTime"] for r in rows] == [made.time(0), made.time(1)]


def _own_names() -> tuple[str | None, str | None]:
    """The user and group names that files this process makes get (None: unresolvable)."""
    try:
        user: str | None = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = None
    try:
        group: str | None = grp.getgrgid(os.getgid()).gr_name
    except KeyError:
        group = None
    return user, group


@answers("versions-of-path.rq")
def test_versions_of_path(made: FixtureHistory, ask: Callable[..., list[dict[str, Any]]]) -> None:
    rows = ask("versions-of-path.rq", path="proj/README.md")
    assert pick(rows, "snapshot", "size", "sha256") == [
        (made.uris[0], 6, sha(b"hello\n")),
        (made.uris[1], 12, sha(b"hello world\n")),
        (made.uris[2], 12, sha(b"hello world\n")),
    ]


@answers("changed-between.rq")
def test_changed_between(made: FixtureHistory, ask: Callable[..., list[dict[str, Any]]]) -> None:
    s1, s2, s3 = (f"<{uri}>" for uri in made.uris)
    columns = ("path", "change", "type", "oldSize", "newSize")
    assert pick(ask("changed-between.rq", old=s1, new=s2), *columns) == [
        ("proj/README.md", "changed", "File", 6, 12),
        ("proj/data/new-large.bin", "added", "File", None, 5000),
        ("proj/data/new-small.txt", "added", "File", None, 10),
        ("proj/notes/todo.txt", "deleted", "File", 9, None),
    ]
    across = ask("changed-between.rq", old=s1, new=s3)
    assert pick(across, *columns) == [
        ("proj/README.md", "changed", "File", 6, 12),
        ("proj/data/copy3.txt", "added", "File", None, 5),
        ("proj/data/new-large.bin", "added", "File", None, 5000),
        ("proj/data/new-small.txt", "added", "File", None, 10),
        ("proj/notes/todo.txt", "changed", "File", 9, 10),
        ("proj/shared.txt", "changed", "File", 5, 5),  # chmod only: same content
    ]
    shared = next(r for r in across if r["path"] == "proj/shared.txt")
    assert shared["oldSha256"] == shared["newSha256"] == sha(b"open\n")
    assert ask("changed-between.rq", old=s2, new=s2) == []


@answers("find-paths.rq")
def test_find_paths(made: FixtureHistory, ask: Callable[..., list[dict[str, Any]]]) -> None:
    s1, s2, s3 = made.uris
    rows = ask("find-paths.rq", pattern=r"\.bin$")
    assert pick(rows, "path", "since", "last", "until", "size") == [
        ("proj/data/big.bin", s1, s3, None, 3000),
        ("proj/data/new-large.bin", s2, s3, None, 5000),
    ]
    todo = ask("find-paths.rq", pattern="todo")
    assert pick(todo, "path", "since", "last", "until") == [
        ("proj/notes/todo.txt", s1, s1, s2),
        ("proj/notes/todo.txt", s3, s3, None),
    ]


@answers("largest-new-files.rq")
def test_largest_new_files(made: FixtureHistory, ask: Callable[..., list[dict[str, Any]]]) -> None:
    _s1, s2, s3 = made.uris
    rows = ask("largest-new-files.rq", **{"from": made.time(1), "to": made.time(2, 1)})
    assert pick(rows, "path", "size", "snapshot") == [
        ("proj/data/new-large.bin", 5000, s2),
        ("proj/data/new-small.txt", 10, s2),
        ("proj/notes/todo.txt", 10, s3),  # gone in snapshot 2: new again in 3
        ("proj/data/copy3.txt", 5, s3),
    ]
    assert ask("largest-new-files.rq", **{"from": made.time(2), "to": made.time(2, 1)})[-1][
        "path"
    ] == ("proj/data/copy3.txt")


@answers("when-deleted.rq")
def test_when_deleted(made: FixtureHistory, ask: Callable[..., list[dict[str, Any]]]) -> None:
    s1, s2, _ = made.uris
    rows = ask("when-deleted.rq", path="proj/notes/todo.txt")
    assert pick(rows, "lastSeen", "goneIn", "goneTime") == [(s1, s2, made.time(1))]
    assert ask("when-deleted.rq", path="proj/README.md") == []  # changed, never gone


@answers("snapshots-with-hash.rq")
def test_snapshots_with_hash(
    made: FixtureHistory, ask: Callable[..., list[dict[str, Any]]]
) -> None:
    s1, s2, s3 = made.uris
    rows = ask("snapshots-with-hash.rq", sha256=sha(SAME))
    copies = [f"proj/data/copy{i}.txt" for i in (1, 2, 3)]
    assert pick(rows, "snapshot", "path") == [
        (s1, copies[0]),
        (s1, copies[1]),
        (s2, copies[0]),
        (s2, copies[1]),
        (s3, copies[0]),
        (s3, copies[1]),
        (s3, copies[2]),
    ]
    assert pick(ask("snapshots-with-hash.rq", sha256=sha(b"buy milk\n")), "snapshot") == [(s1,)]


@answers("duplicate-files.rq")
def test_duplicate_files(made: FixtureHistory, ask: Callable[..., list[dict[str, Any]]]) -> None:
    rows = ask("duplicate-files.rq", snapshot=f"<{made.uris[2]}>")
    assert pick(rows, "sha256", "size", "copies", "wasted") == [(sha(SAME), 5, 3, 10)]
    assert set(rows[0]["paths"].split(" | ")) == {f"proj/data/copy{i}.txt" for i in (1, 2, 3)}
    first = ask("duplicate-files.rq", snapshot=f"<{made.uris[0]}>")
    assert pick(first, "copies", "wasted") == [(2, 5)]


@answers("growth-per-snapshot.rq")
def test_growth_per_snapshot(
    made: FixtureHistory, ask: Callable[..., list[dict[str, Any]]]
) -> None:
    rows = ask("growth-per-snapshot.rq")
    stored = [s["stored"] for s in made.snapshots]
    # versions that came and went: files, plus the directories whose listing changed
    assert pick(rows, "snapshot", "files", "size", "growth", "cameVersions", "wentVersions") == [
        (made.uris[0], FILES[1], SIZES[1], SIZES[1], 12, 0),
        (made.uris[1], FILES[2], SIZES[2], SIZES[2] - SIZES[1], 6, 5),
        (made.uris[2], FILES[3], SIZES[3], SIZES[3] - SIZES[2], 6, 4),
    ]
    assert [r["stored"] for r in rows] == stored


@answers("world-writable-or-setuid.rq")
def test_world_writable_or_setuid(
    made: FixtureHistory, ask: Callable[..., list[dict[str, Any]]]
) -> None:
    s1, _, s3 = made.uris
    rows = ask("world-writable-or-setuid.rq")
    assert pick(rows, "path", "permissions", "risk", "since", "until") == [
        ("proj/bin/tool.sh", "-rwsr-xr-x", "setid", s1, None),
        ("proj/shared.txt", "-rw-rw-rw-", "world-writable", s1, s3),
    ]


@answers("files-with-xattr.rq")
def test_files_with_xattr(made: FixtureHistory, ask: Callable[..., list[dict[str, Any]]]) -> None:
    if not made.xattrs:
        pytest.skip("this file system takes no user extended attributes")
    rows = ask("files-with-xattr.rq", name="user.comment")
    expected = base64.b64encode(b"hi").decode()
    assert pick(rows, "path", "value", "since", "until") == [
        ("proj/tagged.txt", expected, made.uris[0], None)
    ]
    assert ask("files-with-xattr.rq", name="user.other") == []


@answers("snapshots-by-tag.rq")
def test_snapshots_by_tag(made: FixtureHistory, ask: Callable[..., list[dict[str, Any]]]) -> None:
    assert pick(ask("snapshots-by-tag.rq", tag="nightly"), "snapshot", "files") == [
        (made.uris[1], FILES[2]),
        (made.uris[2], FILES[3]),
    ]
    assert pick(ask("snapshots-by-tag.rq", tag="initial"), "snapshot") == [(made.uris[0],)]


@answers("snapshots-by-meta.rq")
def test_snapshots_by_meta(made: FixtureHistory, ask: Callable[..., list[dict[str, Any]]]) -> None:
    rows = ask("snapshots-by-meta.rq", key="ticket", value="OPS-43")
    assert pick(rows, "snapshot") == [(made.uris[2],)]
    assert ask("snapshots-by-meta.rq", key="ticket", value="OPS-1") == []


@answers("restore-as-of.rq")
def test_restore_as_of(made: FixtureHistory, ask: Callable[..., list[dict[str, Any]]]) -> None:
    s1, s2, _ = made.uris
    readme = ask("restore-as-of.rq", path="proj/README.md", at=made.time(1))
    assert pick(readme, "snapshot", "type", "size", "sha256") == [
        (s2, "File", 12, sha(b"hello world\n"))
    ]
    early = ask("restore-as-of.rq", path="proj/README.md", at=made.time(0))
    assert pick(early, "snapshot", "size") == [(s1, 6)]
    assert ask("restore-as-of.rq", path="proj/notes/todo.txt", at=made.time(1)) == []
    assert ask("restore-as-of.rq", path="proj/README.md", at=made.time(0, -86400)) == []


@answers("stored-bytes-per-mount.rq")
def test_stored_bytes_per_mount(
    made: FixtureHistory, ask: Callable[..., list[dict[str, Any]]]
) -> None:
    months: dict[str, list[dict[str, Any]]] = {}
    for snap in made.snapshots:
        months.setdefault(str(snap["timestamp"])[:6], []).append(snap)
    mount = made.uris[0].rsplit("/", 2)[0] + "/"
    assert pick(
        ask("stored-bytes-per-mount.rq"), "mount", "month", "snapshots", "storedBytes", "dataBytes"
    ) == [
        (mount, month, len(snaps), sum(int(str(s["stored"])) for s in snaps), snaps[-1]["size"])
        for month, snaps in sorted(months.items())
    ]


@answers("run-summary.rq")
def test_run_summary(made: FixtureHistory, ask: Callable[..., list[dict[str, Any]]]) -> None:
    rows = ask("run-summary.rq")
    assert pick(rows, "s", "ts", "files", "size") == [
        (uri, ts, FILES[i + 1], SIZES[i + 1])
        for i, (uri, ts) in enumerate(zip(made.uris, made.timestamps, strict=True))
    ]


def test_history_conforms_to_the_shapes(
    made: FixtureHistory, chute: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyshacl
    from rdflib import Graph

    apply(made, monkeypatch)
    dump = chute("query", "CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o }", "--format", "ntriples")
    data = Graph().parse(data=dump.out, format="nt")
    shapes = Graph().parse(ROOT / "ontology" / "shapes.ttl")
    ontology = Graph().parse(ROOT / "ontology" / "chute.ttl")
    conforms, _, report = pyshacl.validate(
        data, shacl_graph=shapes, ont_graph=ontology, inference="rdfs"
    )
    assert conforms, report


def test_every_query_is_listed_in_the_readme() -> None:
    readme = (QUERIES / "README.md").read_text(encoding="utf-8")
    for path in QUERIES.glob("*.rq"):
        assert f"`{path.name}`" in readme, path.name
