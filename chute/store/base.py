"""The blob store contract.

Names are `/`-separated segments of `[A-Za-z0-9._~%-]`, never `.` or `..`,
never empty, never absolute: checked here before any backend touches a disk
or a URL. Objects are immutable: writing different bytes under an existing
name is a `BlobConflict` unless the caller asks to `replace` (only small
mutable control objects such as locks do). A write is atomic: a reader sees
the whole object or none.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

from chute.errors import UsageError

# \Z, not $: `$` also matches before a trailing newline, which would let "a\n" in.
_SEGMENT = re.compile(r"^(?!\.{1,2}\Z)[A-Za-z0-9._~%-]{1,255}\Z")
MAX_NAME = 1024


def check_name(name: str) -> str:
    """Return `name` if it is a valid object name; raise UsageError otherwise."""
    if not name or len(name) > MAX_NAME or name.startswith("/") or name.endswith("/"):
        raise UsageError(f"invalid object name: {name!r}")
    for segment in name.split("/"):
        if not _SEGMENT.match(segment):
            raise UsageError(f"invalid object name: {name!r}")
    return name


def check_range(offset: int, length: int | None) -> None:
    """Raise UsageError for a negative offset or length (a caller's bug, not an I/O error)."""
    if offset < 0 or (length is not None and length < 0):
        raise UsageError(f"invalid byte range: offset {offset}, length {length}")


class BlobStore(ABC):
    """Named, immutable byte objects."""

    location: str
    # Whether a forked copy of this store may be used beside the original: not when
    # it holds network connections, which the copies would share (chute.forked).
    forkable = False

    @abstractmethod
    def put(self, name: str, data: bytes | memoryview, replace: bool = False) -> None:
        """Store `data` under `name` atomically and durably."""

    @abstractmethod
    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        """Return the object's bytes (a range of them); NotFound if absent."""

    def advise(self, name: str, offset: int, length: int) -> None:  # noqa: B027
        """Hint that a range will be read soon (nothing, unless the store can read ahead)."""

    @abstractmethod
    def size(self, name: str) -> int | None:
        """Return the object's size, or None if it does not exist."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Yield the names of all objects under `prefix` (recursively), sorted."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove an object (no error if it is already gone)."""

    def exists(self, name: str) -> bool:
        """Tell whether an object exists."""
        return self.size(name) is not None


def open_store(location: str) -> BlobStore:
    """Open the store at `location` (a directory path, `file://` or `s3://bucket/prefix` URL)."""
    from chute.store.local import LocalStore

    if location.startswith("s3:"):  # s3:/x is a typo, not a directory named "s3:"
        from chute.store.s3 import S3Store

        return S3Store.from_url(location)
    if location.startswith("file://"):
        location = location[len("file://") :]
    if "://" in location:
        raise UsageError(f"unsupported repository location: {location}")
    return LocalStore(Path(location).expanduser())
