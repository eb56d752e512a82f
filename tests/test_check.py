"""check: damage is found, named as the files and snapshots it breaks, and the rest restores."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Run
from lifecycleutil import (
    SMALL_WINDOW,
    check_json,
    init_repo,
    make_tree,
    mutate,
    open_repo,
    put_json,
    repo_dir,
)

from chute.ids import ChunkId, SnapshotName
from chute.repository import RECORD, Repository
from chute.session import iter_entries
from chute.tree import decode_listing

Broken = set[tuple[str, str, str]]  # (snapshot, path, kind)
Contents = dict[tuple[str, str], str]  # (snapshot, path) -> SHA-256 of the file


@pytest.fixture
def two_snapshots(tmp_path: Path, chute: Callable[..., Run]) -> tuple[list[str], Contents]:
    init_repo()
    rng = random.Random(7)
    src = tmp_path / "src"
    make_tree(src, rng, files=30)
    names = []
    contents: Contents = {}
    for i in range(2):
        if i:
            mutate(src, rng, changes=8)
        name = put_json(chute, src)["snapshot"]
        names.append(name)
        for path in src.rglob("*"):
            if path.is_file():
                rel = f"src/{path.relative_to(src)}"
                contents[(name, rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return names, contents


def _bad_objects(repo: Repository, blob: str, start: int, end: int) -> set[bytes]:
    """Ids whose copy the index resolves to overlaps [start, end) of a blob's stream."""
    index = repo.index()
    bad = set()
    for raw, offset, length, _ in RECORD.iter_unpack(repo.blob_table(blob)):
        if offset < end and offset + length > start:
            loc = index.get(ChunkId(raw))
            if loc.blob == blob and loc.offset == offset:
                bad.add(raw)
    return bad


def _expected(repo: Repository, names: list[str], bad: set[bytes]) -> Broken:
    """What a restore of each snapshot would fail on, walking the undamaged truth.

    A listing in `bad` is never read: listings lie among the data in a blob,
    so the damage may have reached them.
    """
    broken: Broken = set()
    for name in names:
        index = repo.read_index(SnapshotName.parse(name))
        if index.root.raw in bad:
            broken.add((name, "", "snapshot"))
            continue
        stack = [("", index.root)]
        while stack:
            base, tree = stack.pop()
            for entry in decode_listing(repo.read_tree(tree)):
                path = f"{base}/{entry['name']}" if base else entry["name"]
                if entry["type"] == "dir":
                    sub = ChunkId.from_hex(entry["tree"])
                    if sub.raw in bad:
                        broken.add((name, path, "dir"))
                    else:
                        stack.append((path, sub))
                elif any(bytes.fromhex(h) in bad for h in entry.get("chunks", ())):
                    broken.add((name, path, "file"))
    return broken


def _reported(report: dict[str, object]) -> Broken:
    rows = report["broken"]
    assert isinstance(rows, list)
    return {(b["snapshot"], b["path"], b["kind"]) for b in rows}


def _windows() -> list[Path]:
    return sorted(p for p in repo_dir().rglob("*") if p.is_file() and p.parent.name.isdigit())


def _blob_of(window: Path) -> tuple[str, int]:
    rel = window.relative_to(repo_dir())
    return str(rel.parent.parent.parent), int(window.name)


def _restores_as_expected(
    chute: Callable[..., Run], tmp: Path, contents: Contents, broken: Broken
) -> None:
    """Every file outside the damage restores bit-exact; every broken one fails clearly."""
    for i, ((snapshot, path), digest) in enumerate(sorted(contents.items())):
        target = tmp / f"r{i}"
        hit = [b for b in broken if b[0] == snapshot and (path + "/").startswith(b[1] + "/")]
        if (snapshot, "", "snapshot") in broken:
            hit.append((snapshot, "", "snapshot"))
        result = chute("get", snapshot, path, "--target", str(target), ok=None)
        if hit:
            assert result.code in (13, 14), (path, result)
            assert "object" in result.err or "verification" in result.err, result.err
            assert len(result.err.strip().splitlines()) == 1
        else:
            assert result.code == 0, (snapshot, path, result.err)
            assert hashlib.sha256((target / path).read_bytes()).hexdigest() == digest


def test_a_clean_repository_passes(
    chute: Callable[..., Run], two_snapshots: tuple[list[str], Contents]
) -> None:
    report = check_json(chute, "--read-data")
    assert report["ok"] and report["broken"] == [] and report["damage"] == []
    assert report["windows_read"] == report["windows"] == len(_windows())
    assert "no damage found" in chute("check").out


def test_a_flipped_byte_in_random_windows_names_exactly_the_broken_files(
    chute: Callable[..., Run], two_snapshots: tuple[list[str], Contents], tmp_path: Path
) -> None:
    names, contents = two_snapshots
    repo = open_repo()
    rng = random.Random(11)
    bad: set[bytes] = set()
    for window in rng.sample(_windows(), 5):
        blob, m = _blob_of(window)
        data = bytearray(window.read_bytes())
        at = rng.randrange(len(data))
        data[at] ^= 1 << rng.randrange(8)
        window.write_bytes(bytes(data))
        bad |= _bad_objects(repo, blob, m * SMALL_WINDOW + at, m * SMALL_WINDOW + at + 1)
    expected = _expected(repo, names, bad)
    assert expected, "the flips should break something"
    report = check_json(chute, "--read-data", ok=False)
    assert _reported(report) == expected
    assert chute("check", "--read-data", ok=False).code == 13
    _restores_as_expected(chute, tmp_path, contents, expected)


def test_a_missing_window_is_found_without_reading_data(
    chute: Callable[..., Run], two_snapshots: tuple[list[str], Contents], tmp_path: Path
) -> None:
    names, contents = two_snapshots
    repo = open_repo()
    window = _windows()[3]
    blob, m = _blob_of(window)
    bad = _bad_objects(repo, blob, m * SMALL_WINDOW, (m + 1) * SMALL_WINDOW)
    window.unlink()
    expected = _expected(repo, names, bad)
    report = check_json(chute, ok=False)
    assert _reported(report) == expected
    assert any("missing" in d for d in report["damage"])
    _restores_as_expected(chute, tmp_path, contents, expected)


def test_a_truncated_window_breaks_only_what_lies_past_the_cut(
    chute: Callable[..., Run], two_snapshots: tuple[list[str], Contents], tmp_path: Path
) -> None:
    names, contents = two_snapshots
    repo = open_repo()
    window = _windows()[5]
    blob, m = _blob_of(window)
    cut = SMALL_WINDOW // 2
    window.write_bytes(window.read_bytes()[:cut])
    bad = _bad_objects(repo, blob, m * SMALL_WINDOW + cut, (m + 1) * SMALL_WINDOW)
    expected = _expected(repo, names, bad)
    report = check_json(chute, ok=False)
    assert _reported(report) == expected
    assert any("has 32768 bytes" in d for d in report["damage"])
    _restores_as_expected(chute, tmp_path, contents, expected)


def test_a_lost_index_breaks_its_snapshot_and_what_later_ones_share_with_it(
    chute: Callable[..., Run], two_snapshots: tuple[list[str], Contents], tmp_path: Path
) -> None:
    names, contents = two_snapshots
    repo = open_repo()
    first = names[0]
    table = repo.blob_table(first)
    bad = _bad_objects(repo, first, 0, 1 << 62)
    expected = _expected(repo, names[1:], bad) | {(first, "", "snapshot")}
    (repo_dir() / first / "index.json").unlink()
    report = check_json(chute, ok=False)
    assert _reported(report) == expected
    assert len(table) // RECORD.size == len(bad)
    _restores_as_expected(
        chute, tmp_path, {k: v for k, v in contents.items() if k[0] != first}, expected
    )


def test_a_damaged_index_is_named(
    chute: Callable[..., Run], two_snapshots: tuple[list[str], Contents]
) -> None:
    names, _ = two_snapshots
    path = repo_dir() / names[1] / "index.json"
    doc = json.loads(path.read_bytes())
    sealed = bytearray(doc["sealed"].encode())
    sealed[40] = ord("A") if sealed[40] != ord("A") else ord("B")
    doc["sealed"] = sealed.decode()
    path.write_text(json.dumps(doc))
    report = check_json(chute, ok=False)
    assert (names[1], "", "snapshot") in _reported(report)
    assert any(names[1] in d and "cannot be opened" in d for d in report["damage"])


@pytest.mark.parametrize("groups", [3])
def test_read_data_subsets_cover_every_window_once(
    chute: Callable[..., Run], two_snapshots: tuple[list[str], Contents], groups: int
) -> None:
    total = len(_windows())
    read = [check_json(chute, "--read-data-subset", f"{n}/{groups}") for n in range(1, groups + 1)]
    assert sum(r["windows_read"] for r in read) == total
    assert check_json(chute, "--read-data-subset", "50%")["windows_read"] == round(total / 2)
    for bad in ("0/3", "4/3", "x", "0%", "101%"):
        assert chute("check", "--read-data-subset", bad, ok=False).code == 2


def test_a_subset_finds_damage_in_the_windows_it_reads(
    chute: Callable[..., Run], two_snapshots: tuple[list[str], Contents]
) -> None:
    windows = _windows()
    data = bytearray(windows[0].read_bytes())
    data[100] ^= 0xFF
    windows[0].write_bytes(bytes(data))
    found = [
        not check_json(chute, "--read-data-subset", f"{n}/4", ok=None)["ok"] for n in range(1, 5)
    ]
    assert found == [True, False, False, False]  # the damaged window is the first of group 1


def _flip_object(repo: Repository, raw: bytes) -> None:
    loc = repo.index().get(ChunkId(raw))
    m, inner = divmod(loc.offset + loc.length // 2, SMALL_WINDOW)
    window = repo_dir() / loc.blob / "0" / str(SMALL_WINDOW) / str(m)
    data = bytearray(window.read_bytes())
    data[inner] ^= 0x10
    window.write_bytes(bytes(data))


def test_a_damaged_listing_names_its_directory_once_and_a_damaged_root_its_snapshot(
    chute: Callable[..., Run], two_snapshots: tuple[list[str], Contents], tmp_path: Path
) -> None:
    names, contents = two_snapshots
    repo = open_repo()
    entries = dict(iter_entries(repo, repo.read_index(SnapshotName.parse(names[1]))))
    listing = bytes.fromhex(entries["src/d2"]["tree"])
    root = repo.read_index(SnapshotName.parse(names[0])).root.raw
    _flip_object(repo, listing)
    _flip_object(repo, root)
    expected = _expected(repo, names, {listing, root})
    assert expected == {(names[0], "", "snapshot"), (names[1], "src/d2", "dir")}
    for structure_only in (True, False):
        report = check_json(chute, *(() if structure_only else ("--read-data",)), ok=False)
        assert _reported(report) == expected
    _restores_as_expected(chute, tmp_path, contents, expected)
