"""Seekable reads of one file of a snapshot, decrypted on the fly.

A file is a list of chunk ids; to serve bytes `a..b` only the chunks that
cover the range are fetched, authenticated and decrypted. That needs each
chunk's plaintext length. Tree entries record them (`sizes`); for entries
written before they did, the lengths come from, in this order:

* lengths learned earlier: every chunk this module decrypts has its length
  remembered (in memory, per process);
* the envelope header (19 clear bytes, read with one small ranged read): a
  chunk stored without compression has `length - OVERHEAD` plaintext bytes,
  where `length` comes from the sealed (authenticated) object table;
* otherwise (a compressed chunk never read before) the chunk is decrypted
  once to learn its length.

Incompressible files (media, archives: the large ones) are therefore seekable
at once; a compressible file pays one pass over the chunks before its first
range, then is seekable too. Every byte served comes from an authenticated
chunk whose length is checked against the assumed one; a whole-file read
also checks the recorded SHA-256 at the end and raises `IntegrityError`
(the server then aborts the response, so a client sees a short body, never
a silently wrong one). The header flag of a chunk *before* a range is not
authenticated until that chunk is read: a tampered flag there could shift
the offsets of a ranged read (never the bytes' authenticity); `chute check`
finds such damage.

New snapshots written by another process (`chute put`) are picked up: when
a file of a snapshot this process has not indexed yet is opened, the object
tables of the snapshots it lacks are added to the repository's chunk index.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

from chute.crypto import F_ZSTD, HEADER, HEADER_SIZE, OVERHEAD, T_DATA
from chute.errors import IntegrityError, NotFound
from chute.ids import ChunkId
from chute.repository import BlobIndex, Repository
from chute.restore import find_entry
from chute.tree import Entry

MAX_SIZES = 1 << 20  # remembered chunk lengths (about 100 MiB at most)
MAX_FILES = 256  # remembered per-file offset tables


@dataclass(frozen=True)
class FileVersion:
    """One file of one snapshot: what a download needs to know."""

    path: str
    size: int
    sha256: str
    mtime_ns: int
    chunks: tuple[str, ...]
    sizes: tuple[int, ...] = ()

    @property
    def etag(self) -> str:
        """A strong entity tag: the file's SHA-256 (the same bytes have the same tag)."""
        return f'"sha256-{self.sha256}"'


@dataclass
class ReadStats:
    """What the reader did (for tests and diagnostics)."""

    decrypted: int = 0
    headers_read: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, decrypted: int = 0, headers: int = 0) -> None:
        with self.lock:
            self.decrypted += decrypted
            self.headers_read += headers


class FileReader:
    """Open files of snapshots and read byte ranges of them (thread-safe)."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.stats = ReadStats()
        self._sizes: dict[bytes, int] = {}
        self._offsets: OrderedDict[tuple[str, ...], list[int]] = OrderedDict()
        self._indexed: set[str] | None = None
        self._lock = threading.Lock()

    # --- opening --------------------------------------------------------

    def open(self, index: BlobIndex, path: str) -> FileVersion:
        """Find a regular file in a snapshot; NotFound if the path is absent or not a file."""
        self._ensure_indexed(index)
        rel, entry = find_entry(self.repo, index, path)
        if entry is None or entry["type"] != "file":
            raise NotFound(f"{rel or '/'} is not a file in snapshot {index.name.path}")
        return _version(rel, entry)

    def _ensure_indexed(self, index: BlobIndex) -> None:
        with self._lock:
            if self._indexed is None:
                names = {n.path for n in self.repo.snapshots()}
                # Load afresh: an index loaded earlier (say by the graph sync at start-up)
                # lacks what other processes committed since, and names claims it all.
                self.repo.reset_index()
                self.repo.index()  # loads at least every snapshot listed just before
                self._indexed = names
            if index.name.path in self._indexed:
                return
            for name in self.repo.snapshots():
                if name.path not in self._indexed:
                    self.repo.remember_table(name, self.repo.read_index(name).table)
                    self._indexed.add(name.path)

    # --- reading --------------------------------------------------------

    def read(self, version: FileVersion, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield the plaintext bytes `start..end` (end exclusive, default: the file's end)."""
        stop = version.size if end is None else min(end, version.size)
        if start >= stop:
            return
        whole = start == 0 and stop == version.size
        sha = hashlib.sha256() if whole else None
        offsets = self._offsets_until(version, stop)
        for number, hexid in enumerate(version.chunks):
            begin = offsets[number]
            if begin >= stop:
                break
            length = offsets[number + 1] - begin  # known: offsets reach past `stop`
            if begin + length <= start:
                continue
            data = self._chunk(hexid, length)
            if sha is not None:
                sha.update(data)
            lo = max(start - begin, 0)
            hi = min(stop - begin, len(data))
            yield data[lo:hi] if (lo, hi) != (0, len(data)) else data
        if sha is not None and sha.hexdigest() != version.sha256:
            raise IntegrityError(f"{version.path} does not match its recorded SHA-256")

    def _chunk(self, hexid: str, expected: int | None) -> bytes:
        oid = ChunkId.from_hex(hexid)
        data = self.repo.read_object(oid, T_DATA)
        self.stats.count(decrypted=1)
        self._remember(oid.raw, len(data))
        if expected is not None and len(data) != expected:
            raise IntegrityError(f"chunk {hexid[:16]} is not the length its envelope claims")
        return data

    def _remember(self, raw: bytes, size: int) -> None:
        with self._lock:
            if len(self._sizes) >= MAX_SIZES:
                self._sizes.clear()
            self._sizes[raw] = size

    def _offsets_until(self, version: FileVersion, stop: int) -> list[int]:
        """Return chunk start offsets, at least up to the chunk that holds byte `stop - 1`."""
        key = version.chunks
        with self._lock:
            known = self._offsets.get(key)
            if known is not None:
                self._offsets.move_to_end(key)
        if known is not None and (len(known) > len(key) or known[-1] >= stop):
            return known
        offsets = [0]
        if len(version.sizes) == len(key):
            for size in version.sizes:
                offsets.append(offsets[-1] + size)
        for hexid in key[len(offsets) - 1 :]:
            if offsets[-1] >= stop:
                break
            offsets.append(offsets[-1] + self._plain_size(hexid))
        if len(offsets) > len(key) and offsets[-1] != version.size:
            raise IntegrityError(f"the chunks of {version.path} do not add up to its size")
        with self._lock:
            self._offsets[key] = offsets
            if len(self._offsets) > MAX_FILES:
                self._offsets.popitem(last=False)
        return offsets

    def _plain_size(self, hexid: str) -> int:
        oid = ChunkId.from_hex(hexid)
        with self._lock:
            size = self._sizes.get(oid.raw)
        if size is not None:
            return size
        loc = self.repo.index().get(oid)
        header = self.repo.read_stream(
            loc.blob, loc.offset, HEADER_SIZE, self.repo.window_of(loc.blob)
        )
        self.stats.count(headers=1)
        flags = HEADER.unpack(header)[3]
        if not flags & F_ZSTD:
            if loc.length < OVERHEAD:
                raise IntegrityError(f"chunk {hexid[:16]} is truncated")
            return loc.length - OVERHEAD
        return len(self._chunk(hexid, None))


def _version(path: str, entry: Entry) -> FileVersion:
    return FileVersion(
        path=path,
        size=int(entry["size"]),
        sha256=str(entry.get("sha256", "")),
        mtime_ns=int(entry["mtime"]),
        chunks=tuple(entry.get("chunks", [])),
        sizes=tuple(entry.get("sizes", [])),
    )
