"""The local directory backend.

Writes go to `.tmp/` inside the store, are fsync'd, then linked into place
(`os.link` fails if the name exists, so two writers can never overwrite each
other's object) and the directory is fsync'd. A crash leaves at most a file
in `.tmp/`, which is never listed; names whose first segment is `.tmp` are
refused, so no object can reach that area. A big write from a page-aligned
buffer (a put's windows) goes past the page cache (`chute.directio`).

A directory is not an object: `d` is absent while only `d/f` exists.
"""

from __future__ import annotations

import errno
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

from chute import directio
from chute.errors import BlobConflict, NotFound, StorageError, UsageError
from chute.store.base import BlobStore, check_name, check_range

TMP = ".tmp"


def _storage_error(exc: OSError, what: str) -> StorageError:
    if exc.errno == errno.ENOSPC:
        return StorageError(f"{what}: no space left on device")
    return StorageError(f"{what}: {exc.strerror or exc}")


class LocalStore(BlobStore):
    """Objects as files under one directory."""

    forkable = True  # every read opens its own file

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)
        self._direct = True  # until the file system refuses O_DIRECT (chute.directio)

    def _path(self, name: str) -> Path:
        if check_name(name).split("/", 1)[0] == TMP:
            raise UsageError(f"invalid object name: {name!r} ({TMP} is reserved)")
        return self.root / name

    def put(self, name: str, data: bytes | memoryview, replace: bool = False) -> None:
        path = self._path(name)
        tmpdir = self.root / TMP
        tmp = tmpdir / uuid.uuid4().hex
        try:
            tmpdir.mkdir(parents=True, exist_ok=True)
            self._write(tmp, data)
            path.parent.mkdir(parents=True, exist_ok=True)
            if replace:
                os.replace(tmp, path)
            else:
                self._link_new(tmp, path, data)
            _fsync_dir(path.parent)
        except OSError as exc:
            raise _storage_error(exc, f"cannot write {name}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def _write(self, tmp: Path, data: bytes | memoryview) -> None:
        """Write and fsync a new file, past the page cache where the data allows it."""
        direct = self._direct and directio.wants_direct(data)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(tmp, flags | directio.O_DIRECT if direct else flags, 0o644)
        except OSError as exc:
            if not direct or exc.errno != errno.EINVAL:
                raise
            self._direct = direct = False  # this file system takes no O_DIRECT
            tmp.unlink(missing_ok=True)  # the refused open may have made it
            fd = os.open(tmp, flags, 0o644)
        try:
            went_direct = directio.write_all(fd, data, direct)
            if direct and not went_direct:
                self._direct = False  # refused at the first write
            os.fsync(fd)
        finally:
            os.close(fd)

    def _link_new(self, tmp: Path, path: Path, data: bytes | memoryview) -> None:
        try:
            os.link(tmp, path)
        except FileExistsError:
            if path.read_bytes() != bytes(data):
                name = path.relative_to(self.root)
                raise BlobConflict(f"{name} exists with other bytes") from None

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self._path(name)
        check_range(offset, length)
        try:
            with open(path, "rb", buffering=0) as handle:
                if length is None:
                    handle.seek(offset)
                    return handle.read()
                return os.pread(handle.fileno(), length, offset)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFound(f"no object {name}") from None
        except OSError as exc:
            raise _storage_error(exc, f"cannot read {name}") from exc

    def advise(self, name: str, offset: int, length: int) -> None:
        """Ask the kernel to start reading a range into the page cache."""
        try:
            fd = os.open(self._path(name), os.O_RDONLY)
        except OSError:
            return  # a hint only: the read itself reports what is wrong
        try:
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)
        except OSError:
            pass
        finally:
            os.close(fd)

    def size(self, name: str) -> int | None:
        path = self._path(name)
        try:
            info = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise _storage_error(exc, f"cannot stat {name}") from exc
        return info.st_size if stat.S_ISREG(info.st_mode) else None

    def list(self, prefix: str = "") -> Iterator[str]:
        start = self._path(prefix) if prefix else self.root
        if not start.is_dir():
            return
        # Names are built as strings while scanning: os.walk with a relpath and a Path per
        # directory listed a 1,000-snapshot repository (2,002 names) in 0.11 s, this in 0.044.
        base = os.path.relpath(start, self.root)
        names: list[str] = []
        stack = [(os.fspath(start), "" if base == "." else f"{base}/")]
        while stack:
            path, rel = stack.pop()
            try:
                entries = os.scandir(path)
            except OSError:
                continue  # gone meanwhile, or unreadable: skipped, as os.walk does
            with entries:
                for entry in entries:
                    if not entry.is_dir():
                        names.append(rel + entry.name)
                    elif not entry.is_symlink() and (rel or entry.name != TMP):
                        stack.append((entry.path, f"{rel}{entry.name}/"))
        yield from sorted(names)

    def delete(self, name: str) -> None:
        path = self._path(name)
        try:
            path.unlink(missing_ok=True)
        except (NotADirectoryError, IsADirectoryError):
            pass  # no object by that name: a file is in its path, or it is a directory
        except OSError as exc:
            raise _storage_error(exc, f"cannot delete {name}") from exc


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
