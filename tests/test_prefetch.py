"""prefetch: span reads serve what single reads serve, and fail per object."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Run
from lifecycleutil import init_repo, make_tree, open_repo, put_json

from chute import prefetch
from chute.crypto import T_DATA
from chute.errors import IntegrityError, NotFound
from chute.ids import ChunkId
from chute.prefetch import Prefetcher
from chute.repository import Repository
from chute.session import iter_entries


@pytest.fixture
def stored(tmp_path: Path, chute: Callable[..., Run]) -> tuple[Repository, list[ChunkId]]:
    """A repository with one snapshot, and its data chunk ids in restore order."""
    init_repo()
    src = tmp_path / "src"
    make_tree(src, random.Random(3), files=40)
    name = put_json(chute, src)["snapshot"]
    repo = open_repo()
    index = repo.read_index(next(n for n in repo.snapshots() if n.path == name))
    ids = [
        ChunkId.from_hex(h)
        for _, entry in iter_entries(repo, index, "")
        if entry["type"] == "file"
        for h in entry.get("chunks", [])
    ]
    return repo, ids


def test_serves_what_single_reads_serve(
    stored: tuple[Repository, list[ChunkId]], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, ids = stored
    expected = [repo.read_object(oid, T_DATA) for oid in ids]
    monkeypatch.setattr(prefetch, "GROUP_BYTES", 100_000)  # several groups
    reads = 0
    real = repo.read_stream

    def counted(*args: object, **kwargs: object) -> bytes:
        nonlocal reads
        reads += 1
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(repo, "read_stream", counted)
    fetcher = Prefetcher(repo, ids)
    assert [fetcher.read(oid) for oid in ids] == expected
    assert 0 < reads < len(ids) / 2


def test_skipped_objects_are_not_read_and_missing_ones_fail_alone(
    stored: tuple[Repository, list[ChunkId]],
) -> None:
    repo, ids = stored
    missing = ChunkId(bytes(32))
    fetcher = Prefetcher(repo, [*ids[:3], missing, *ids[3:]])
    assert fetcher.read(ids[0]) == repo.read_object(ids[0], T_DATA)
    with pytest.raises(NotFound):
        fetcher.read(missing)
    assert fetcher.read(ids[-1]) == repo.read_object(ids[-1], T_DATA)


def test_a_damaged_span_fails_only_its_damaged_object(
    stored: tuple[Repository, list[ChunkId]], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, ids = stored
    victim = repo.index().get(ids[1])
    real = repo.read_stream

    def flipped(blob: str, offset: int, length: int, window: int, cached: bool = True) -> bytes:
        data = bytearray(real(blob, offset, length, window, cached))
        at = victim.offset + victim.length - 1 - offset  # the victim's last tag byte
        if blob == victim.blob and 0 <= at < len(data):
            data[at] ^= 1
        return bytes(data)

    monkeypatch.setattr(repo, "read_stream", flipped)
    fetcher = Prefetcher(repo, ids[:4])
    fetcher.read(ids[0])
    with pytest.raises(IntegrityError):
        fetcher.read(ids[1])
    fetcher.read(ids[2])


def test_each_group_asks_the_store_to_read_the_next_one_ahead(
    stored: tuple[Repository, list[ChunkId]], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, ids = stored
    monkeypatch.setattr(prefetch, "GROUP_BYTES", 100_000)  # several groups
    events: list[tuple[str, str, int, int]] = []
    real_get = repo.store.get

    def get(name: str, offset: int = 0, length: int | None = None) -> bytes:
        events.append(("get", name, offset, length or 0))
        return real_get(name, offset, length)

    def advise(name: str, offset: int, length: int) -> None:
        events.append(("advise", name, offset, length))

    fetcher = Prefetcher(repo, ids)
    monkeypatch.setattr(repo.store, "get", get)
    monkeypatch.setattr(repo.store, "advise", advise)
    for oid in ids:
        fetcher.read(oid)
    first = next(i for i, e in enumerate(events) if e[0] == "advise")
    later = [(i, e) for i, e in enumerate(events) if e[0] == "get" and i > first]
    assert later  # several groups: reads after the first group's
    for i, (_, name, offset, length) in later:  # each was advised before it was read
        assert any(
            kind == "advise" and n == name and o <= offset and offset + length <= o + size
            for kind, n, o, size in events[:i]
        ), (name, offset, length)


def test_a_hint_for_a_missing_object_is_silent(tmp_path: Path) -> None:
    from chute.store.local import LocalStore

    LocalStore(tmp_path).advise("no/such/object", 0, 100)
