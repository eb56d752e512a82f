"""put -> get round trips through the CLI, with every kind of entry."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest
import treeutil
import xattr
from conftest import Run
from lifecycleutil import (
    SMALL_WINDOW,
    init_repo,
    open_repo,
    restore_equals,
    snapshot_tree,
    write_random,
)
from treeutil import assert_trees_equal, make_every_kind_tree

from chute.crypto import HEADER, INDEX_STREAM, NONCE, T_DATA, T_TREE
from chute.repository import RECORD, BlobWriter
from chute.restore import find_entry


def _repo_dir(home: Path) -> Path:
    return home / "data" / "chute" / "repo"


def _repo_bytes(home: Path) -> int:
    return sum(p.stat().st_size for p in _repo_dir(home).rglob("*") if p.is_file())


def test_every_kind_of_entry_restores_identically(
    tmp_path: Path, chute: Callable[..., Run], repo_ready: None
) -> None:
    src = tmp_path / "src"
    make_every_kind_tree(src)
    # The comparison covers xattrs only where the filesystem keeps them: say so, don't skip.
    assert treeutil.XATTRS_SUPPORTED, "this filesystem refuses user xattrs"
    uri = chute("put", str(src)).out.strip()
    assert uri.startswith("https://example.com/chute/blob/example.com/node1/")
    target = tmp_path / "restored"
    chute("get", "latest", "--target", str(target))
    assert_trees_equal(src, target / "src")


def test_second_put_of_unchanged_tree_adds_almost_nothing(
    tmp_path: Path, chute: Callable[..., Run], repo_ready: None, isolated_home: Path
) -> None:
    src = tmp_path / "src"
    make_every_kind_tree(src)
    many = src / "many"
    for i in range(200):  # a snapshot's own ~20 triples are < 1% of a 200-file tree's
        (many / f"d{i % 10}").mkdir(parents=True, exist_ok=True)
        (many / f"d{i % 10}" / f"f{i}.txt").write_text(f"file {i}\n" * (i + 1))
    first = json.loads(chute("put", "--json", str(src)).out)
    size_before = _repo_bytes(isolated_home)
    second = json.loads(chute("put", "--json", str(src)).out)
    assert second["files_read"] == 0 and second["bytes_read"] == 0
    assert second["chunks_new"] == 0 and second["trees_new"] == 0
    assert second["triples_added"] < 0.01 * first["triples_added"]
    assert _repo_bytes(isolated_home) - size_before < 64 * 1024
    assert second["snapshot"] != first["snapshot"]
    for summary in (first, second):  # where the time went: the backup, then the graph
        assert summary["backup_seconds"] > 0 and summary["graph_seconds"] > 0


def test_changed_file_is_read_and_others_are_not(
    tmp_path: Path, chute: Callable[..., Run], repo_ready: None
) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "a.txt").write_text("alpha\n")
    (src / "b.txt").write_text("bravo\n")
    chute("put", str(src))
    (src / "d" / "a.txt").write_text("alpha two\n")
    second = json.loads(chute("put", "--json", str(src)).out)
    assert second["files_read"] == 1 and second["files_unchanged"] == 1
    target = tmp_path / "r"
    chute("get", "latest", "src/d/a.txt", "--target", str(target))
    assert (target / "src" / "d" / "a.txt").read_text() == "alpha two\n"
    assert not (target / "src" / "b.txt").exists()


def test_an_unchanged_directory_keeps_its_listing_and_the_whole_tree_restores(
    tmp_path: Path, chute: Callable[..., Run], repo_ready: None
) -> None:
    src = tmp_path / "src"
    make_every_kind_tree(src)
    for d in ("same", "edited"):
        (src / d / "sub").mkdir(parents=True)
        for i in range(3):
            (src / d / "sub" / f"f{i}.txt").write_text(f"{d} {i}\n")
    chute("put", str(src))
    (src / "edited" / "sub" / "f1.txt").write_text("edited again\n")
    second = json.loads(chute("put", "--json", str(src)).out)
    assert second["files_read"] == 1
    repo = open_repo()
    first_index, second_index = (repo.read_index(name) for name in repo.snapshots()[-2:])
    for path, same in (("src/same", True), ("src/same/sub", True), ("src/edited/sub", False)):
        before = find_entry(repo, first_index, path)[1]
        after = find_entry(repo, second_index, path)[1]
        assert before is not None and after is not None
        assert (before["tree"] == after["tree"]) is same, path
    target = tmp_path / "r"
    chute("get", "latest", "--target", str(target))
    assert_trees_equal(src, target / "src")


def test_xattrs_are_kept_for_unchanged_entries_and_a_changed_xattr_is_seen(
    tmp_path: Path, chute: Callable[..., Run], repo_ready: None
) -> None:
    assert treeutil.XATTRS_SUPPORTED, "this filesystem refuses user xattrs"
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for name in ("kept.txt", "changed.txt"):
        (src / "d" / name).write_text(name)
        xattr.setxattr(str(src / "d" / name), "user.chute.note", b"first")
    xattr.setxattr(str(src / "d"), "user.chute.note", b"a directory's")
    chute("put", str(src))
    # Only the ctime moves: that file is read again, xattrs and all; the other one is not.
    xattr.setxattr(str(src / "d" / "changed.txt"), "user.chute.note", b"second")
    second = json.loads(chute("put", "--json", str(src)).out)
    assert second["files_read"] == 1 and second["files_unchanged"] == 1
    target = tmp_path / "r"
    chute("get", "latest", "--target", str(target))
    restored = target / "src" / "d"
    assert xattr.getxattr(str(restored / "kept.txt"), "user.chute.note") == b"first"
    assert xattr.getxattr(str(restored / "changed.txt"), "user.chute.note") == b"second"
    assert xattr.getxattr(str(restored), "user.chute.note") == b"a directory's"


def test_repository_holds_no_plaintext(
    tmp_path: Path, chute: Callable[..., Run], repo_ready: None, isolated_home: Path
) -> None:
    src = tmp_path / "secret-tree"
    (src / "private-folder-name").mkdir(parents=True)
    markers = {
        "private-folder-name/confidential-report.txt": b"MARKER-CONTENT-7f3a9 " * 50,
        "holiday-photos-list.csv": b"name,place\nMARKER-CSV-LINE-2c81,Lisbon\n",
        "binary.bin": os.urandom(300_000),
    }
    for rel, data in markers.items():
        (src / rel).write_bytes(data)
    chute("put", "--label", "opaque", str(src))
    needles = [
        b"MARKER-CONTENT-7f3a9",
        b"MARKER-CSV-LINE-2c81",
        b"confidential-report",
        b"holiday-photos-list",
        b"private-folder-name",
        b"secret-tree",
        markers["binary.bin"][1000:1064],
    ]
    for data in markers.values():
        digest = hashlib.sha256(data).digest()
        needles += [digest, digest.hex().encode()]
    for path in _repo_dir(isolated_home).rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            for needle in needles:
                assert needle not in blob, f"{needle[:30]!r} found in {path}"
            assert b"secret-tree" not in os.fsencode(path)


def test_get_refuses_a_target_that_is_not_empty(
    tmp_path: Path, chute: Callable[..., Run], repo_ready: None
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    chute("put", str(src))
    target = tmp_path / "t"
    target.mkdir()
    (target / "keep").write_text("mine")
    result = chute("get", "latest", "--target", str(target), ok=False)
    assert result.code == 15 and result.err.count("\n") == 1
    assert (target / "keep").read_text() == "mine"


def test_excludes_tags_labels_and_metadata(
    tmp_path: Path, chute: Callable[..., Run], repo_ready: None
) -> None:
    src = tmp_path / "proj"
    (src / "build").mkdir(parents=True)
    (src / "build" / "out.o").write_text("obj")
    (src / "main.c").write_text("int main(){}")
    (src / "notes.tmp").write_text("tmp")
    excl = tmp_path / "excludes"
    excl.write_text("# build output\nbuild/\n")
    out = chute(
        "put",
        "--exclude",
        "*.tmp",
        "--exclude-file",
        str(excl),
        "--tag",
        "nightly",
        "--label",
        "projects/c",
        "--meta",
        "owner=ada",
        str(src),
    ).out
    assert "/example.com/node1/projects/c/" in out
    listing = json.loads(chute("ls", "--json").out)
    assert listing[0]["tags"] == ["nightly"] and listing[0]["meta"] == {"owner": "ada"}
    paths = [e["path"] for e in json.loads(chute("ls", "latest", "--json").out)]
    assert paths == ["proj", "proj/main.c"]


def test_ls_mtree_lists_hashes_and_links(
    tmp_path: Path, chute: Callable[..., Run], repo_ready: None
) -> None:
    src = tmp_path / "m"
    src.mkdir()
    (src / "a file").write_bytes(b"abc")
    os.symlink("a file", src / "ln")
    chute("put", str(src))
    spec = chute("ls", "latest", "--format", "mtree").out.splitlines()
    assert spec[0] == "#mtree"
    digest = hashlib.sha256(b"abc").hexdigest()
    assert any(
        line.startswith("./m/a\\040file type=file") and f"sha256digest={digest}" in line
        for line in spec
    )
    assert any(line.startswith("./m/ln type=link") and "link=a\\040file" in line for line in spec)


def test_single_file_mount(tmp_path: Path, chute: Callable[..., Run], repo_ready: None) -> None:
    f = tmp_path / "only.txt"
    f.write_text("just me")
    chute("put", str(f))
    target = tmp_path / "r"
    chute("get", "latest", "--target", str(target))
    assert (target / "only.txt").read_text() == "just me"


def test_restore_by_absolute_source_path(
    tmp_path: Path, chute: Callable[..., Run], repo_ready: None
) -> None:
    src = tmp_path / "Movies"
    src.mkdir()
    (src / "a.mkv").write_bytes(b"\0movie" * 1000)
    (src / "b.mkv").write_bytes(b"other")
    chute("put", str(src))
    target = tmp_path / "r"
    chute("get", "latest", str(src / "a.mkv"), "--target", str(target))
    assert (target / "Movies" / "a.mkv").read_bytes() == b"\0movie" * 1000
    missing = chute("get", "latest", "Movies/nope", "--target", str(tmp_path / "r2"), ok=False)
    assert missing.code == 14


def test_unchanged_file_is_read_again_when_its_chunks_are_lost(
    tmp_path: Path, chute: Callable[..., Run], repo_ready: None, isolated_home: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "kept.bin").write_bytes(os.urandom(50_000))
    chute("put", str(src))
    for window in _repo_dir(isolated_home).rglob("0/*/*"):
        window.unlink()  # storage lost every window of the first snapshot
    second = json.loads(chute("put", "--json", str(src)).out)
    assert second["files_read"] == 1 and second["chunks_new"] == 1
    target = tmp_path / "r"
    chute("get", "latest", "--target", str(target))
    assert (target / "src" / "kept.bin").read_bytes() == (src / "kept.bin").read_bytes()


def test_file_changing_while_read_is_reported(
    tmp_path: Path,
    chute: Callable[..., Run],
    repo_ready: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import chute.backup as backup

    src = tmp_path / "src"
    src.mkdir()
    (src / "busy.log").write_bytes(b"line\n" * 1000)
    (src / "calm.txt").write_text("still")
    real_fstat = os.fstat

    class Touched:
        """A stat result whose times moved: a writer touched the file during the read."""

        def __init__(self, st: os.stat_result) -> None:
            self.st_size = st.st_size
            self.st_mtime_ns = st.st_mtime_ns + 1
            self.st_ctime_ns = st.st_ctime_ns + 1

    def fstat(fd: int) -> object:
        st = real_fstat(fd)
        if os.readlink(f"/proc/self/fd/{fd}").endswith("busy.log"):
            return Touched(st)  # the check after the read sees other times than the walk
        return st

    monkeypatch.setattr(backup.os, "fstat", fstat)
    result = chute("put", "--json", str(src), ok=False)
    assert result.code == 3
    assert "busy.log changed while it was read" in result.err
    summary = json.loads(result.out)
    assert summary["files"] == 2 and len(summary["warnings"]) == 1


@pytest.mark.parametrize("size", [100, 300_000], ids=["small batch", "large batch"])
def test_a_file_that_cannot_be_opened_is_reported_and_the_rest_kept(
    tmp_path: Path,
    chute: Callable[..., Run],
    repo_ready: None,
    monkeypatch: pytest.MonkeyPatch,
    size: int,
) -> None:
    import chute.backup as backup

    # Small batches open all their files ahead (chute.backup._open_ahead), large ones
    # one by one: either way the file that cannot be opened is left out, and said.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.txt", "locked.txt", "z.txt"):
        (src / name).write_bytes(name.encode() * (size // len(name)))
    real_open = backup._open_noatime

    def refuse(path: bytes) -> int:
        if path.endswith(b"locked.txt"):
            raise PermissionError(13, "Permission denied")
        return real_open(path)

    monkeypatch.setattr(backup, "_open_noatime", refuse)
    result = chute("put", "--json", str(src), ok=False)
    assert result.code == 3
    assert "locked.txt: Permission denied" in result.err
    target = tmp_path / "r"
    chute("get", "latest", "--target", str(target))
    assert sorted(p.name for p in (target / "src").iterdir()) == ["a.txt", "z.txt"]
    for name in ("a.txt", "z.txt"):
        assert (target / "src" / name).read_bytes() == (src / name).read_bytes()


def test_a_big_file_is_cut_as_one_buffer_would_be_and_an_insertion_adds_few_chunks(
    tmp_path: Path, chute: Callable[..., Run], repo_ready: None
) -> None:
    rng = random.Random(3)
    data = bytearray(rng.randbytes(40 << 20))  # streamed: several read windows
    src = tmp_path / "src"
    src.mkdir()
    big = src / "big.bin"
    big.write_bytes(data)
    chute("put", str(src))
    repo = open_repo()
    _, entry = find_entry(repo, repo.read_index(repo.snapshots()[-1]), "src/big.bin")
    assert entry is not None
    assert entry["sizes"] == repo.chunker.boundaries(data)

    data[17 << 20 : 17 << 20] = b"inserted in the middle"
    big.write_bytes(data)
    second = json.loads(chute("put", "--json", str(src)).out)
    assert 1 <= second["chunks_new"] <= 3  # the chunk that holds the insertion, maybe its neighbour
    target = tmp_path / "r"
    chute("get", "latest", "--target", str(target))
    assert (target / "src" / "big.bin").read_bytes() == bytes(data)


@pytest.mark.parametrize("run_bytes", [None, 2048])
def test_listings_lie_together_in_their_blob_and_restore(
    tmp_path: Path,
    chute: Callable[..., Run],
    monkeypatch: pytest.MonkeyPatch,
    run_bytes: int | None,
) -> None:
    """A put's listings enter its stream in runs, not one by one among the data."""
    if run_bytes is not None:  # several runs, flushed while the put goes on
        monkeypatch.setattr(BlobWriter, "TREE_RUN", run_bytes)
    init_repo(window=SMALL_WINDOW)
    rng = random.Random(5)
    src = tmp_path / "src"
    for i in range(40):
        write_random(src / f"d{i:02}" / f"e{i % 3}" / "data.bin", 40 << 10, rng)
    state = snapshot_tree(src)
    chute("put", str(src))
    repo = open_repo()
    (name,) = repo.snapshots()
    records = list(RECORD.iter_unpack(repo.blob_table(name.path)))
    trees = [i for i, (_, _, _, otype) in enumerate(records) if otype == T_TREE]
    runs = 1 + sum(1 for a, b in itertools.pairwise(trees) if b != a + 1)
    tree_bytes = sum(records[i][2] for i in trees)
    assert len(trees) == 2 + 40 + 40  # the root, src, src/d*, src/d*/e*
    assert runs == 1 if run_bytes is None else 1 < runs <= 1 + tree_bytes // run_bytes
    restore_equals(chute, "latest", state, tmp_path / "r")


def test_a_puts_readers_seal_with_nonces_of_their_own(
    tmp_path: Path, chute: Callable[..., Run], repo_ready: None
) -> None:
    """Small files are sealed in forked readers: each counts in its own nonce stream."""
    rng = random.Random(11)
    src = tmp_path / "src"
    for i in range(600):  # small files: the put hands them to its readers in batches
        write_random(src / f"d{i % 12:02}" / f"f{i}.bin", rng.randrange(100, 8 << 10), rng)
    state = snapshot_tree(src)
    chute("put", str(src))
    repo = open_repo()
    (name,) = repo.snapshots()
    window = repo.window_of(name.path)
    nonces: dict[int, list[bytes]] = {T_DATA: [], T_TREE: []}
    for _, offset, _, otype in RECORD.iter_unpack(repo.blob_table(name.path)):
        header = repo.read_stream(name.path, offset, HEADER.size, window)
        nonces[otype].append(HEADER.unpack(header)[4])
    every = nonces[T_DATA] + nonces[T_TREE]
    assert len(nonces[T_DATA]) >= 600
    assert len(set(every)) == len(every)  # no nonce of the blob is used twice
    data_streams = {NONCE.unpack(nonce)[0] for nonce in nonces[T_DATA]}
    assert data_streams and 0 not in data_streams  # every small file went through a reader
    assert data_streams <= {1, 2, 3, 4} and max(data_streams) < INDEX_STREAM
    assert {NONCE.unpack(nonce)[0] for nonce in nonces[T_TREE]} == {0}  # the put's own
    restore_equals(chute, "latest", state, tmp_path / "r")


def test_hard_links_share_the_content_of_the_first_path_in_every_put(
    tmp_path: Path, chute: Callable[..., Run], repo_ready: None
) -> None:
    """Later links copy the first path's content: read now, read by a reader, or unchanged."""
    rng = random.Random(12)
    src, outside = tmp_path / "src", tmp_path / "outside"
    outside.mkdir()
    for j in range(5):
        (src / f"b{j}").mkdir(parents=True)
    for i in range(300):  # small files: read in batches by the forked readers
        first = src / f"a{i % 7}" / f"f{i}.bin"
        write_random(first, rng.randrange(1, 9000), rng)
        os.link(first, src / f"b{i % 5}" / f"g{i}.bin")
        if i % 3 == 0:
            os.link(first, outside / f"o{i}")  # a link outside the tree too
    write_random(src / "big.bin", 3 << 20, rng)  # a big one, read by a worker thread
    os.link(src / "big.bin", src / "a0" / "big-again.bin")
    state = snapshot_tree(src)
    for _ in range(2):  # the second put takes every first path unchanged
        chute("put", str(src))
        repo = open_repo()
        index = repo.read_index(repo.snapshots()[-1])
        for i in (0, 1, 150, 299):
            first = find_entry(repo, index, f"src/a{i % 7}/f{i}.bin")[1]
            later = find_entry(repo, index, f"src/b{i % 5}/g{i}.bin")[1]
            assert first is not None and later is not None
            assert later["link"] == f"src/a{i % 7}/f{i}.bin"
            for key in ("sha256", "chunks", "sizes"):
                assert later[key] == first[key]
        restore_equals(chute, "latest", state, tmp_path / "r")


def test_compression_levels_store_the_same_files_in_fewer_or_more_bytes(
    tmp_path: Path, chute: Callable[..., Run], repo_ready: None, isolated_home: Path
) -> None:
    from chute.bench.content import TextMaker

    # Text in many small files (read by the forked readers) and a few big ones (threads).
    rng = random.Random(7)
    maker = TextMaker("compression-test")
    src = tmp_path / "src"
    for i in range(240):
        (src / "small" / f"d{i % 6}").mkdir(parents=True, exist_ok=True)
        text = maker.text(rng, rng.randint(2000, 6000), "log")
        (src / "small" / f"d{i % 6}" / f"f{i}.log").write_bytes(text)
    (src / "big").mkdir()
    for i in range(3):
        (src / "big" / f"b{i}.csv").write_bytes(maker.text(rng, (1 << 20) + i * 4099, "csv"))
    raw = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    key = isolated_home / "config" / "chute" / "key"  # repo_ready's
    stored = {}
    for level in ("off", "fast", "auto", "max"):
        repo = str(tmp_path / f"repo-{level}")
        chute("init", "--repo", repo, "--key-file", str(key))
        out = chute("put", "--repo", repo, "--compression", level, "--json", str(src)).out
        stored[level] = json.loads(out)["stored_bytes"]
        target = tmp_path / f"restored-{level}"
        chute("get", "--repo", repo, "latest", "--target", str(target))
        assert_trees_equal(src, target / "src")
        assert json.loads(chute("check", "--repo", repo, "--read-data", "--json").out)["ok"]
    assert stored["off"] > raw  # every chunk as it is, plus listings and envelopes
    assert stored["off"] > 2 * stored["fast"]
    assert stored["fast"] > stored["auto"] > stored["max"], stored
    # Without the option, the setting decides (`auto` unless configured).
    default = json.loads(chute("put", "--json", str(src)).out)["stored_bytes"]
    assert stored["fast"] > default > stored["max"]


def test_a_directory_that_cannot_be_listed_is_kept_empty_and_reported(
    tmp_path: Path, chute: Callable[..., Run], repo_ready: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chute.backup as backup

    src = tmp_path / "src"
    (src / "closed").mkdir(parents=True)
    (src / "closed" / "inside.txt").write_text("unseen")
    (src / "open.txt").write_text("seen")
    real_scandir = os.scandir

    def refuse(path: str | bytes) -> object:  # (`os` is shared: the store lists with it too)
        if os.fsencode(path).endswith(b"/src/closed"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(backup.os, "scandir", refuse)
    result = chute("put", "--json", str(src), ok=False)
    assert result.code == 3
    assert "cannot list" in result.err and "closed: Permission denied" in result.err
    monkeypatch.setattr(backup.os, "scandir", real_scandir)
    target = tmp_path / "r"
    chute("get", "latest", "--target", str(target))
    assert sorted(p.name for p in (target / "src").iterdir()) == ["closed", "open.txt"]
    assert list((target / "src" / "closed").iterdir()) == []
    # What the walk marked stays out of the stored listing.
    repo = open_repo()
    _, entry = find_entry(repo, repo.read_index(repo.snapshots()[-1]), "src/closed")
    assert entry is not None and entry["type"] == "dir"
    assert not [key for key in entry if key.startswith("_")]
