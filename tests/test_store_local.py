"""The local directory store: the shared contract plus what only a directory has."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from store_contract import HOSTILE_NAMES, StoreContract

from chute.errors import BlobConflict, StorageError, UsageError
from chute.store.base import BlobStore, open_store
from chute.store.local import TMP, LocalStore


class TestLocalStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> BlobStore:
        return LocalStore(tmp_path / "repo")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "repo"


@pytest.fixture
def local(root: Path) -> LocalStore:
    return LocalStore(root)


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if not p.is_dir())


def tmp_files(root: Path) -> list[str]:
    return sorted(p.name for p in (root / TMP).iterdir())


def test_objects_are_plain_files(local: LocalStore, root: Path) -> None:
    local.put("a/b/c", b"contents")
    assert (root / "a" / "b" / "c").read_bytes() == b"contents"
    assert files_under(root) == ["a/b/c"]


def test_no_temporary_files_are_left(local: LocalStore, root: Path) -> None:
    local.put("one", b"1")
    local.put("one", b"1")
    with pytest.raises(BlobConflict):
        local.put("one", b"2")
    local.put("two", b"2", replace=True)
    local.put("two", b"3", replace=True)
    assert tmp_files(root) == []
    assert files_under(root) == ["one", "two"]


def test_tmp_is_never_listed_nor_addressable(local: LocalStore, root: Path) -> None:
    local.put("x", b"1")
    (root / TMP / "leftover-from-a-crash").write_bytes(b"half an obj")
    assert list(local.list()) == ["x"]
    for name in (TMP, f"{TMP}/leftover-from-a-crash", f"{TMP}/new"):
        with pytest.raises(UsageError):
            local.put(name, b"1")
        with pytest.raises(UsageError):
            local.get(name)
        with pytest.raises(UsageError):
            list(local.list(name))
        with pytest.raises(UsageError):
            local.delete(name)
    assert tmp_files(root) == ["leftover-from-a-crash"]
    local.put("a/.tmp/b", b"only the top-level .tmp is reserved")
    assert list(local.list()) == ["a/.tmp/b", "x"]


def test_a_crash_leftover_does_not_block_writes(local: LocalStore, root: Path) -> None:
    (root / TMP).mkdir(parents=True)
    (root / TMP / "partial").write_bytes(b"half")
    local.put("y", b"whole object")
    assert local.get("y") == b"whole object"
    assert list(local.list()) == ["y"]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=repr)
def test_hostile_names_touch_nothing(local: LocalStore, root: Path, name: str) -> None:
    for call in (lambda: local.put(name, b"x"), lambda: local.get(name), lambda: local.size(name)):
        with pytest.raises(UsageError):
            call()
    assert not root.exists()


def test_encoded_dots_stay_inside_the_root(local: LocalStore, root: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    local.put("%2e%2e/x", b"inside")
    local.put("%2e%2e/%2e%2e/y", b"inside too")
    assert (root / "%2e%2e" / "x").read_bytes() == b"inside"
    assert (root / "%2e%2e" / "%2e%2e" / "y").read_bytes() == b"inside too"
    assert files_under(root) == ["%2e%2e/%2e%2e/y", "%2e%2e/x"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({*before, "repo"})
    assert not (tmp_path / "x").exists()


def test_enospc_is_a_storage_error(
    local: LocalStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    calls = []

    def full_disk(fd: int, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data)[:100])  # a short write, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(StorageError, match="no space left") as caught:
        local.put("big", bytes(1000))
    monkeypatch.undo()
    assert caught.value.exit_code == 16
    assert len(calls) == 2
    assert not local.exists("big")
    assert tmp_files(root) == []
    assert list(local.list()) == []


def test_failed_fsync_publishes_nothing(
    local: LocalStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(StorageError):
        local.put("obj", b"data")
    monkeypatch.undo()
    assert not local.exists("obj")
    assert tmp_files(root) == []


def test_writes_are_fsynced(local: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    real_fsync = os.fsync
    synced: list[int] = []

    def record(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", record)
    local.put("a/b", b"data")
    assert len(synced) >= 2  # the file, then its directory


def test_open_store(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}/r")
    assert isinstance(store, LocalStore)
    assert store.location == f"{tmp_path}/r"
    assert isinstance(open_store(str(tmp_path / "s")), LocalStore)
    with pytest.raises(UsageError):
        open_store("ftp://example.com/repo")
