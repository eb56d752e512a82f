"""Big writes past the page cache (chute.directio): aligned buffers, O_DIRECT, fallbacks."""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import random
from pathlib import Path

import pytest
from lifecycleutil import init_repo, open_repo

from chute import directio
from chute.crypto import T_DATA
from chute.ids import SnapshotName, timestamp_now
from chute.repository import BlobWriter
from chute.store.local import TMP, LocalStore

MIB = 1 << 20


def takes_direct(folder: Path) -> bool:
    """Tell whether the file system under `folder` accepts O_DIRECT."""
    probe = folder / "probe"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | directio.O_DIRECT, 0o644)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return False
        raise
    os.close(fd)
    probe.unlink()
    return True


def aligned_data(size: int, seed: int) -> tuple[mmap.mmap, memoryview]:
    buffer = mmap.mmap(-1, size + mmap.PAGESIZE)
    data = random.Random(seed).randbytes(size)
    buffer[:size] = data
    return buffer, memoryview(buffer)[:size]


def record_opens(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the flags of every os.open from now on."""
    flags: list[int] = []
    real_open = os.open

    def recording(path: object, how: int, *args: object, **kwargs: object) -> int:
        flags.append(how)
        return real_open(path, how, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", recording)
    return flags


def direct_opens(flags: list[int]) -> int:
    return sum(1 for how in flags if how & directio.O_DIRECT)


def test_only_writable_page_aligned_buffers_are_aligned() -> None:
    buffer = mmap.mmap(-1, 2 * mmap.PAGESIZE)
    assert directio.is_aligned(memoryview(buffer))
    assert directio.is_aligned(memoryview(buffer)[mmap.PAGESIZE :])
    assert not directio.is_aligned(memoryview(buffer)[1:])
    assert not directio.is_aligned(memoryview(buffer)[:0])
    assert not directio.is_aligned(bytes(2 * MIB))  # read-only: never
    assert not directio.wants_direct(memoryview(buffer))  # aligned, but too small to pay off
    assert directio.wants_direct(memoryview(mmap.mmap(-1, directio.DIRECT_MIN)))


@pytest.mark.parametrize("size", [3 * MIB, 3 * MIB + 123, directio.DIRECT_MIN])
def test_an_aligned_buffer_goes_past_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    if not takes_direct(tmp_path):
        pytest.skip("this file system refuses O_DIRECT (the fallback tests cover it)")
    store = LocalStore(tmp_path / "repo")
    _buffer, data = aligned_data(size, size)
    flags = record_opens(monkeypatch)
    store.put("a/window", data)
    monkeypatch.undo()
    assert direct_opens(flags) == 1
    assert store.get("a/window") == bytes(data)
    assert store._direct
    assert list((tmp_path / "repo" / TMP).iterdir()) == []


def test_bytes_and_small_buffers_go_through_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path / "repo")
    _buffer, small = aligned_data(64 << 10, 1)
    flags = record_opens(monkeypatch)
    store.put("big-bytes", bytes(3 * MIB))
    store.put("small", small)
    monkeypatch.undo()
    assert direct_opens(flags) == 0
    assert store.get("big-bytes") == bytes(3 * MIB)
    assert store.get("small") == bytes(small)


def test_a_file_system_refusing_o_direct_at_open_gets_cached_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path / "repo")
    real_open = os.open
    tries: list[int] = []

    def refusing(path: str, how: int, mode: int = 0o777) -> int:
        tries.append(how)
        if how & directio.O_DIRECT:
            os.close(real_open(path, how & ~directio.O_DIRECT, mode))  # Linux makes the file first
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return real_open(path, how, mode)

    monkeypatch.setattr(os, "open", refusing)
    buffers = [aligned_data(2 * MIB + 5, seed) for seed in (1, 2)]
    store.put("one", buffers[0][1])
    store.put("two", buffers[1][1])
    monkeypatch.undo()
    assert store.get("one") == bytes(buffers[0][1])
    assert store.get("two") == bytes(buffers[1][1])
    assert direct_opens(tries) == 1  # asked once: the store remembers the refusal
    assert not store._direct
    assert list((tmp_path / "repo" / TMP).iterdir()) == []


def test_a_file_system_refusing_the_first_direct_write_gets_cached_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path / "repo")
    real_open, real_write = os.open, os.write
    refused: list[int] = []

    def opening(path: str, how: int, mode: int = 0o777) -> int:
        return real_open(path, how & ~directio.O_DIRECT, mode)  # any file system opens it...

    def writing(fd: int, data: bytes) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & directio.O_DIRECT or not refused:
            refused.append(len(data))  # ...and this one refuses the first direct write
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return real_write(fd, data)

    monkeypatch.setattr(os, "open", opening)
    monkeypatch.setattr(os, "write", writing)
    _buffer, data = aligned_data(2 * MIB + 77, 3)
    store.put("window", data)
    monkeypatch.undo()
    assert refused == [2 * MIB]  # the aligned head, once
    assert store.get("window") == bytes(data)
    assert not store._direct


def test_a_blobs_windows_are_written_past_the_cache_and_read_back(
    tmp_path: Path, isolated_home: Path
) -> None:
    """A put's windows are built in reused aligned buffers; every object reads back."""
    init_repo(window=2 * MIB)
    repo = open_repo()
    name = SnapshotName("example.com", "node1", "m", timestamp_now())
    assert repo.claim_name(name)
    rng = random.Random(9)
    chunks = [rng.randbytes(rng.randrange(100 << 10, 900 << 10)) for _ in range(30)]
    with pytest.MonkeyPatch.context() as patch:  # not undo(): it would undo isolated_home
        flags = record_opens(patch)
        writer = BlobWriter(repo, name)
        ids = []
        for chunk in chunks:
            cid = repo.hasher.chunk_id(chunk)
            writer.append(T_DATA, cid, writer.seal(T_DATA, cid, chunk, compress=True))
            ids.append(cid)
        index = writer.commit({}, None)
    whole, last = divmod(writer.stored_bytes, 2 * MIB)
    assert index.name == name
    if takes_direct(tmp_path):  # every window of DIRECT_MIN or more, and nothing else
        assert direct_opens(flags) == whole + (last >= directio.DIRECT_MIN)
    reopened = open_repo()
    for cid, chunk in zip(ids, chunks, strict=True):
        assert reopened.read_object(cid, T_DATA) == chunk
