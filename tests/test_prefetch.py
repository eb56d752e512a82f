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
