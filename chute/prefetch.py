"""Read the data objects a worker needs next with few, large reads.

A restore asks for the chunks of a batch of files in order. Chunks that lie
close together in a blob's stream (they usually do: a restore walks the tree
in about the order a put stored it) are read with one ranged read per span
instead of one read each, holes of up to `SPAN_GAP` bytes read through. The
plan is cut into groups of about `GROUP_BYTES` of envelopes; a group is read
when its first object is asked for and dropped when the next one is, so
memory stays flat however big the batch is, and the chunks of a file given
up midway are skipped unread.

Nothing here is trusted: every envelope is authenticated and checked against
its id by `Repository.open_object`. An object that was not planned, or whose
span could not be read, is read alone, so its error names the object.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterable

from chute.crypto import T_DATA
from chute.errors import IntegrityError, NotFound, StorageError
from chute.ids import ChunkId
from chute.repository import Location, Repository

SPAN_GAP = 64 << 10
GROUP_BYTES = 4 << 20

Planned = tuple[ChunkId, Location]


class Prefetcher:
    """Serve the data objects of a planned sequence, read a group of spans at a time."""

    def __init__(self, repo: Repository, ids: Iterable[ChunkId]) -> None:
        self.repo = repo
        self._groups = _groups(_locate(repo, ids))
        self._loaded: dict[bytes, tuple[Location, memoryview]] = {}

    def read(self, oid: ChunkId) -> bytes:
        """Return the verified plaintext of a data object asked for in plan order."""
        found = self._loaded.get(oid.raw) or self._load_through(oid)
        if found is None:
            return self.repo.read_object(oid, T_DATA)
        loc, envelope = found
        return self.repo.open_object(oid, loc, envelope)

    def _load_through(self, oid: ChunkId) -> tuple[Location, memoryview] | None:
        """Drop groups up to the one that plans `oid`, read that one, return the object."""
        while self._groups:
            group = self._groups.popleft()
            if any(planned.raw == oid.raw for planned, _ in group):
                self._loaded = self._read_group(group)
                return self._loaded.get(oid.raw)
        return None

    def _read_group(self, group: list[Planned]) -> dict[bytes, tuple[Location, memoryview]]:
        self._loaded = {}  # let the previous group go before reading the next
        loaded: dict[bytes, tuple[Location, memoryview]] = {}
        for span in _spans(group):
            blob, start, length = _extent(span)
            try:
                window = self.repo.window_of(blob)
                data = self.repo.read_stream(blob, start, length, window, cached=False)
            except (IntegrityError, NotFound, StorageError):
                continue  # read alone on demand, which reports the object's own error
            view = memoryview(data)
            for oid, loc in span:
                at = loc.offset - start
                loaded[oid.raw] = (loc, view[at : at + loc.length])
        if self._groups:  # the disk reads the next group while this one is decrypted
            for span in _spans(self._groups[0]):
                blob, start, length = _extent(span)
                with contextlib.suppress(IntegrityError, NotFound, StorageError):
                    self.repo.advise_stream(blob, start, length, self.repo.window_of(blob))
        return loaded


def _locate(repo: Repository, ids: Iterable[ChunkId]) -> list[Planned]:
    index = repo.index()
    planned = []
    for oid in ids:
        try:
            loc = index.get(oid)
        except NotFound:
            continue  # read alone when asked for: NotFound then names the object
        if loc.otype == T_DATA:
            planned.append((oid, loc))
    return planned


def _groups(planned: list[Planned]) -> deque[list[Planned]]:
    groups: deque[list[Planned]] = deque()
    group: list[Planned] = []
    size = 0
    for item in planned:
        group.append(item)
        size += item[1].length
        if size >= GROUP_BYTES:
            groups.append(group)
            group, size = [], 0
    if group:
        groups.append(group)
    return groups


def _spans(group: list[Planned]) -> list[list[Planned]]:
    """Sort a group's objects by place and split them where a hole is too big to read."""
    ordered = sorted({oid.raw: (oid, loc) for oid, loc in group}.values(), key=_place)
    spans: list[list[Planned]] = []
    end = -1
    blob = ""
    for oid, loc in ordered:
        if spans and loc.blob == blob and loc.offset <= end + SPAN_GAP:
            spans[-1].append((oid, loc))
        else:
            spans.append([(oid, loc)])
            blob, end = loc.blob, 0
        end = max(end, loc.offset + loc.length)
    return spans


def _extent(span: list[Planned]) -> tuple[str, int, int]:
    """Return the blob, start and length of the stream range a span covers."""
    first = span[0][1]
    end = max(loc.offset + loc.length for _, loc in span)
    return first.blob, first.offset, end - first.offset


def _place(item: Planned) -> tuple[str, int]:
    return item[1].blob, item[1].offset
