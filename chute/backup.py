"""`chute put`: snapshot a file or tree into the repository.

The walk (`os.scandir` + lstat, main thread) builds the tree in memory and
decides per file whether its content must be read: a file whose size,
mtime_ns, ctime_ns and inode equal its entry in the parent snapshot (the
latest of the same mount) takes that entry's hash and chunk list unread.
Files to read go to two worker threads in batches of several MiB; workers
read, cut (FastCDC), hash (keyed BLAKE3 ids, SHA-256 of the file), compress
and encrypt new chunks and append them to the blob. All of those release
the GIL, so both cores work. Batches of small files, whose cost is system
calls and per-file Python that would hold the GIL, are read, hashed, cut
compressed and encrypted by two forked reader processes (`chute.forked`,
each sealing with a nonce stream of its own); the worker thread then claims
and appends what they made. A directory's
listing is built and stored as soon as the walk has left it and every file
and subdirectory in it is done (an unchanged directory has the same id as
before and costs nothing); its entries are let go then, so memory follows
the files in flight, not the size of the tree. Then `index.json` commits
the blob and the snapshot's triples go to the graph.

A file that changes while it is read (size, mtime or ctime differ after the
read) is kept as read and reported; a file that cannot be read is left out
and reported; either makes the snapshot "incomplete" (exit code 3).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from chute import __version__, compression, forked
from chute.chunking import WHOLE_FILE_LIMIT
from chute.compression import ZSTD_LEVEL
from chute.crypto import T_DATA, T_TREE, BlobCipher
from chute.errors import ChuteError, UsageError
from chute.excludes import ExcludeMatcher
from chute.ids import ChunkId, SnapshotName, check_label, mount_label, timestamp_now
from chute.repository import BlobIndex, BlobWriter, Repository, pack
from chute.tree import (
    Entry,
    base_entry,
    decode_listing,
    encode_listing,
    read_xattrs,
    same_inode,
    unchanged,
)

BATCH_BYTES = 8 << 20
BATCH_FILES = 256
# Big files are read this much at a time into a buffer of twice that (a chunk is at
# most 4 MiB); small files are read whole into the same buffer, one per worker.
STREAM_READ = 4 << 20
MAX_IN_FLIGHT = 4
# A batch of files this small on average is mostly short system calls, each of which
# hands the GIL over: two such batches at once spend more on handovers than they gain.
# So they run one at a time. Bigger files (source trees: tens of KiB, compressed
# while the GIL is free) run two batches at once: 16 KiB rather than 64 KiB cut a
# cold first backup of `mixed` by 9%. Every batch opens its files first and asks
# the kernel to read them ahead (WILLNEED), so its disk reads overlap its work.
SMALL_FILE = 16 << 10
# How far ahead of the reads the kernel is asked to read a file (bounded, so a huge
# file does not flood the page cache). 8 MiB ahead did not help a cold backup; a
# whole 200 MiB file did; 64 MiB covers the difference.
READ_AHEAD = 64 << 20
# Forked processes that read, hash, cut and compress the files of small batches: in
# threads, their system calls and per-file Python kept the walk and the workers
# waiting on one another's GIL. They fork when the walk hands out its first batch of
# files to read, before any file is read, while this process is small: forked at the
# first small batch, after the windows and read buffers had grown, each kept ~50 MiB
# of pages the put's process had since rewritten (copy on write), and on `mixed` the
# put's processes together peaked at 245-276 MiB of PSS instead of 170-200. A put
# that reads nothing (no file changed) forks none.
READERS = 2

Progress = Callable[[int, int], None]
# Marks an entry the walk could not read (a file: left out of its listing) or list (a
# directory: recorded empty); never stored.
_ERROR = "_error"


@dataclass
class PutOptions:
    """What to back up and how to label it."""

    path: Path
    domain: str
    node: str
    label: str | None = None
    tags: tuple[str, ...] = ()
    meta: dict[str, str] = field(default_factory=dict)
    excludes: ExcludeMatcher | None = None
    skip: frozenset[tuple[int, int]] = frozenset()  # (dev, ino) never to descend into
    progress: Progress | None = None
    compression: int = ZSTD_LEVEL  # zstd's level for new chunks and listings (OFF: none)


@dataclass
class PutStats:
    """What a put did."""

    files: int = 0
    dirs: int = 0
    other: int = 0
    files_read: int = 0
    files_unchanged: int = 0
    bytes_total: int = 0
    bytes_read: int = 0
    chunks_new: int = 0
    trees_new: int = 0
    stored_bytes: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "warnings"}


@dataclass
class _Dir:
    """A directory during the walk: its entry and its children until it is listed.

    `pending` counts what its listing waits for: the walk of it, each of its
    files being read, each subdirectory not yet listed, each hard link whose
    first path is still being read.
    """

    entry: Entry
    path: str
    parent: _Dir | None
    children: list[Entry | _Dir] = field(default_factory=list)
    pending: int = 1
    old: _Listing | None = None  # the listing of the same directory in the parent snapshot


@dataclass(frozen=True)
class PutResult:
    """The committed snapshot, its listings and what the put did."""

    index: BlobIndex
    listings: dict[ChunkId, bytes]
    stats: PutStats


class _Walker:
    """Walk a tree, hand file contents to workers, build and store listings."""

    def __init__(self, repo: Repository, writer: BlobWriter, opts: PutOptions) -> None:
        self.repo = repo
        self.writer = writer
        self.opts = opts
        self.index = repo.index()
        self.stats = PutStats()
        self.listings: dict[ChunkId, bytes] = {}
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="chute-put")
        self._readers: ProcessPoolExecutor | None = None  # forked, for small files
        self._may_fork = False  # until the walk starts, from the main thread
        self._slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        self._one_small = threading.Lock()
        self._futures: list[Future[None]] = []
        self._batch: list[_Job] = []
        self._batch_bytes = 0
        self._links: dict[tuple[int, int], _Inode] = {}  # (dev, ino) of files with links
        self._lock = threading.Lock()
        self._local = threading.local()
        self._strip = 0

    # --- walking --------------------------------------------------------

    def run(self, root: bytes, parent_root: ChunkId | None) -> ChunkId:
        try:
            st = os.stat(root)
        except OSError as exc:
            raise UsageError(f"cannot read {os.fsdecode(root)}: {exc.strerror}") from exc
        name = os.path.basename(root.rstrip(b"/")) or b"-"
        old = self._old_children(parent_root)
        top_name = os.fsdecode(name)
        self._strip = len(top_name) + 1
        self._may_fork = stat.S_ISDIR(st.st_mode) and forked.available()
        try:
            top = self._visit(root, top_name, st, top_name, old, None)
            self._submit_batch()
            for future in self._futures:
                future.result()
        except BrokenExecutor as exc:
            raise ChuteError("a reader process ended abruptly (killed?); nothing saved") from exc
        finally:
            self._pool.shutdown(wait=True)
            if self._readers is not None:
                self._readers.shutdown(wait=True, cancel_futures=True)
        if isinstance(top, _Dir) and "tree" not in top.entry:
            raise ChuteError(f"internal error: the listing of {top.path} was never stored")
        return self._store_listing([] if top is None else [top])

    def _old_children(self, tree: ChunkId | None) -> dict[str, Entry]:
        if tree is None:
            return {}
        try:
            listing = decode_listing(self.repo.read_tree(tree))
        except Exception:
            return {}
        return {e["name"]: e for e in listing}

    def _visit(
        self,
        path: bytes,
        name: str,
        st: os.stat_result,
        rel: str,
        old: dict[str, Entry],
        parent: _Dir | None,
    ) -> Entry | _Dir | None:
        entry = base_entry(name, st)
        prev = old.get(name)
        # Setting or removing an xattr changes the ctime: the same inode with the same
        # ctime has the xattrs it had (one system call less per unchanged entry).
        if prev is not None and same_inode(entry, prev):
            xattrs = prev.get("xattrs", {})
        else:
            xattrs = read_xattrs(path)
        if xattrs:
            entry["xattrs"] = xattrs
        kind = entry["type"]
        if kind == "dir":
            self.stats.dirs += 1
            node = _Dir(entry, rel, parent)
            self._hold(parent)  # until this directory is listed
            sub_old: dict[str, Entry] = {}
            if prev and prev.get("type") == "dir" and "tree" in prev:
                old_tree = ChunkId.from_hex(prev["tree"])
                sub_old = self._old_children(old_tree)
                if sub_old:
                    node.old = _Listing(old_tree, sub_old)
            self._walk_dir(path, node, sub_old)
            self._release(node)  # the walk has left it
            return node
        if kind == "symlink":
            self.stats.other += 1
            entry["target"] = os.fsdecode(os.readlink(path))
            return entry
        if kind != "file":
            self.stats.other += 1
            return entry
        return self._visit_file(path, entry, st, rel, prev, parent)

    def _visit_file(
        self,
        path: bytes,
        entry: Entry,
        st: os.stat_result,
        rel: str,
        prev: Entry | None,
        parent: _Dir | None,
    ) -> Entry:
        self.stats.files += 1
        self.stats.bytes_total += st.st_size
        entry["size"] = st.st_size
        inode = None
        if st.st_nlink > 1:
            entry["nlink"] = st.st_nlink
            first = self._links.get((st.st_dev, st.st_ino))
            if first is not None:
                entry["link"] = first.path
                self._follow(entry, first, parent)
                return entry
            inode = self._links[(st.st_dev, st.st_ino)] = _Inode(rel)
        if st.st_size > 0 and st.st_blocks * 512 < st.st_size:
            entry["sparse"] = True
        # An unchanged file takes its previous chunk list, but only if every chunk
        # is still there: after a lost window the file is read and stored again.
        if prev is not None and unchanged(entry, prev) and self.index.has_all(prev["chunks"]):
            for key in ("sha256", "chunks", "sizes"):
                if key in prev:
                    entry[key] = prev[key]
            if inode is not None:
                inode.content = _Content.of(entry)
            self.stats.files_unchanged += 1
            self._report()
            return entry
        if inode is not None:  # a first hard link: later ones wait until it is read
            inode.waiting = []
        self._hold(parent)  # until this file is read
        self._batch.append(_Job(path, entry, parent, inode))
        self._batch_bytes += st.st_size
        if self._batch_bytes >= BATCH_BYTES or len(self._batch) >= BATCH_FILES:
            self._submit_batch()
        return entry

    def _walk_dir(self, path: bytes, node: _Dir, old: dict[str, Entry]) -> None:
        try:
            with os.scandir(path) as it:
                items = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            self._warn(f"cannot list {os.fsdecode(path)}: {exc.strerror}")
            node.entry[_ERROR] = True
            return
        for item in items:
            name = os.fsdecode(item.name)
            rel = f"{node.path}/{name}" if node.path else name
            try:
                st = item.stat(follow_symlinks=False)
            except OSError as exc:
                self._warn(f"cannot stat {os.fsdecode(item.path)}: {exc.strerror}")
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            excludes = self.opts.excludes
            if excludes is not None and excludes.excluded(rel[self._strip :], is_dir):
                continue
            if is_dir and (st.st_dev, st.st_ino) in self.opts.skip:
                continue
            child = self._visit(item.path, name, st, rel, old, node)
            if child is not None:
                node.children.append(child)

    # --- file contents (worker threads) ---------------------------------

    def _submit_batch(self) -> None:
        if not self._batch:
            return
        if self._may_fork:  # the first batch, from the walk: no worker thread runs yet
            self._may_fork = False
            with contextlib.suppress(OSError):  # cannot fork: small batches stay in threads
                reader = _Reader(self.repo, self.writer.salt, self.writer.level)
                self._readers = forked.pool(READERS, reader)
        small = self._batch_bytes < len(self._batch) * SMALL_FILE
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        self._slots.acquire()
        if small and self._readers is not None:
            work = self._process_forked
        else:
            work = self._process_small if small else self._process_batch
        future = self._pool.submit(work, batch)
        future.add_done_callback(lambda _f: self._slots.release())
        self._futures.append(future)

    def _process_small(self, batch: list[_Job]) -> None:
        with self._one_small:
            self._process_batch(batch)

    def _process_forked(self, batch: list[_Job]) -> None:
        """Have a forked reader read a batch of small files; store what it made of them."""
        assert self._readers is not None
        files = [(job.path, job.entry["size"]) for job in batch]
        reads = self._readers.submit(_read_in_worker, files).result()
        for job, read in zip(batch, reads, strict=True):
            if read.error is not None:
                job.entry[_ERROR] = True
                self._warn(f"cannot read {os.fsdecode(job.path)}: {read.error}")
            else:
                ids = [self._store_sealed(*chunk) for chunk in read.chunks]
                sizes = [length for _, length, _ in read.chunks]
                self._finish(job.path, job.entry, read.size, read.after, read.sha256, ids, sizes)
            self._file_done(job)

    def _process_batch(self, batch: list[_Job]) -> None:
        def process(at: int, fd: int | OSError) -> None:
            self._process_one(batch[at].path, batch[at].entry, fd)
            self._file_done(batch[at])

        _each_opened([job.path for job in batch], process)

    def _process_one(self, path: bytes, entry: Entry, fd: int | OSError) -> None:
        """Read, hash and store one file (`fd`: opened ahead, or the error opening it)."""
        try:
            if isinstance(fd, OSError):
                raise fd
            self._process_file(path, entry, fd)
        except OSError as exc:
            entry[_ERROR] = True
            self._warn(f"cannot read {os.fsdecode(path)}: {exc.strerror}")

    def _process_file(self, path: bytes, entry: Entry, fd: int) -> None:
        sha = hashlib.sha256()
        chunks: list[str] = []
        sizes: list[int] = []
        try:
            if entry["size"] <= WHOLE_FILE_LIMIT:  # the size the walk saw (lstat)
                data = self._read_small(fd, entry["size"])
                size = len(data)
                sha.update(data)
                for chunk in self.repo.chunker.cut(data):
                    chunks.append(self._store_chunk(chunk))
                    sizes.append(len(chunk))
            else:
                size = self._stream_file(fd, sha, chunks, sizes)
            after = os.fstat(fd)
        finally:
            os.close(fd)
        seen = (after.st_size, after.st_mtime_ns, after.st_ctime_ns)
        self._finish(path, entry, size, seen, sha.hexdigest(), chunks, sizes)

    def _finish(
        self,
        path: bytes,
        entry: Entry,
        size: int,
        after: tuple[int, int, int],
        sha256: str,
        chunks: list[str],
        sizes: list[int],
    ) -> None:
        """Record a file as read: `after` is its (size, mtime_ns, ctime_ns) once read."""
        # Compared with what the walk saw: a file changed or replaced since is noticed too.
        if (entry["size"], entry["mtime"], entry["ctime"]) != after or size != entry["size"]:
            self._warn(f"{os.fsdecode(path)} changed while it was read; saved as read")
            entry["size"] = size
            entry["mtime"], entry["ctime"] = after[1], after[2]
        entry["sha256"] = sha256
        entry["chunks"] = chunks
        entry["sizes"] = sizes
        with self._lock:
            self.stats.files_read += 1
            self.stats.bytes_read += size
        self._report()

    def _read_small(self, fd: int, expected: int) -> memoryview:
        """Read a whole file into this thread's reusable buffer (no fresh pages per file)."""
        return _read_whole(fd, expected, self._buffer(expected + 1))

    def _buffer(self, size: int) -> bytearray:
        """Return this thread's read buffer, grown to at least `size` bytes."""
        buf: bytearray | None = getattr(self._local, "buf", None)
        if buf is None or len(buf) < size:
            buf = self._local.buf = bytearray(max(size, 1 << 20))
        return buf

    def _stream_file(self, fd: int, sha: Any, chunks: list[str], sizes: list[int]) -> int:
        """Read a big file through this thread's window buffer, cutting as it fills.

        The bytes after the last boundary found (at most one chunk) move to the
        front of the buffer; nothing else is copied, so a worker holds one
        buffer however big the file is.
        """
        buf = self._buffer(2 * STREAM_READ)
        view = memoryview(buf)
        filled = size = 0
        while True:
            _advise(fd, size, READ_AHEAD)  # the reads to come, while this one is cut
            count = os.readv(fd, [view[filled : filled + STREAM_READ]])
            sha.update(view[filled : filled + count])
            filled += count
            size += count
            final = count == 0
            if filled + STREAM_READ > len(buf) or final:
                cut, used = self.repo.chunker.cut_stream_part(view[:filled], final)
                for chunk in cut:
                    chunks.append(self._store_chunk(chunk))
                    sizes.append(len(chunk))
                del cut
                view[: filled - used] = view[used:filled]  # overlapping: memoryview copies safely
                filled -= used
            if final:
                return size

    def _store_sealed(self, raw: bytes, length: int, envelope: tuple[bytes, bytes] | None) -> str:
        """Store a chunk a reader sealed (`envelope` None: it was stored before the put)."""
        cid = ChunkId(raw)
        if envelope is not None and self.index.claim(cid):
            self.writer.append(T_DATA, cid, envelope)
            with self._lock:
                self.stats.chunks_new += 1
        return cid.hex

    def _store_chunk(self, chunk: memoryview) -> str:
        cid = self.repo.hasher.chunk_id(chunk)
        if self.index.claim(cid):
            envelope = self.writer.seal(T_DATA, cid, chunk, compress=True)
            self.writer.append(T_DATA, cid, envelope)
            with self._lock:
                self.stats.chunks_new += 1
        return cid.hex

    # --- listings -------------------------------------------------------

    def _hold(self, node: _Dir | None) -> None:
        """Make `node`'s listing wait for one more thing."""
        if node is not None:
            with self._lock:
                node.pending += 1

    def _release(self, node: _Dir | None) -> None:
        """One thing `node` waited for is done: list it if that was the last, and so up the tree."""
        while node is not None:
            with self._lock:
                node.pending -= 1
                if node.pending:
                    return
            # (An unlistable directory is recorded, empty.)
            node.entry["tree"] = self._store_listing(node.children, node.old).hex
            node.children, node.old = [], None  # in the listing now: let the entries go
            node = node.parent

    def _follow(self, entry: Entry, first: _Inode, parent: _Dir | None) -> None:
        """Give a later hard link its first path's content, now or once that is read."""
        with self._lock:
            if first.waiting is not None:
                first.waiting.append((entry, parent))
                if parent is not None:
                    parent.pending += 1
                return
            content = first.content
        if content is not None:
            content.give(entry)

    def _file_done(self, job: _Job) -> None:
        """A file is read (or failed): its directory, and links waiting on it, may be listed."""
        waiting: list[tuple[Entry, _Dir | None]] = []
        if job.inode is not None:
            content = _Content.of(job.entry)
            with self._lock:
                job.inode.content = content
                waiting, job.inode.waiting = job.inode.waiting or [], None
            for link, link_parent in waiting:
                content.give(link)
                self._release(link_parent)
        self._release(job.parent)

    def _store_listing(self, children: list[Entry | _Dir], old: _Listing | None = None) -> ChunkId:
        """Store a directory's listing; return its id (`old`'s, when nothing in it changed)."""
        entries: list[Entry] = []
        for child in children:
            entry = child.entry if isinstance(child, _Dir) else child
            if _ERROR in entry:  # the walk's only private key
                if entry["type"] == "file":
                    continue  # not read: left out
                entry = {k: v for k, v in entry.items() if k != _ERROR}  # unlistable: empty
            entries.append(entry)  # as it is: a copy per entry cost 2-4 us (50k files: 0.1-0.2 s)
        if old is not None and old.same(entries):
            return old.tree  # the same entries in the same order: the same canonical bytes
        data = encode_listing(entries)
        tid = self.repo.hasher.tree_id(data)
        self.listings[tid] = data
        if self.index.claim(tid):
            self.writer.append(T_TREE, tid, self.writer.seal(T_TREE, tid, data, compress=True))
            with self._lock:
                self.stats.trees_new += 1
        return tid

    def _warn(self, message: str) -> None:
        with self._lock:
            self.stats.warnings.append(message)

    def _report(self) -> None:
        if self.opts.progress is not None:
            self.opts.progress(
                self.stats.files_read + self.stats.files_unchanged, self.stats.bytes_read
            )


@dataclass(frozen=True)
class _Listing:
    """A directory's listing in the parent snapshot: its id and its entries, in order."""

    tree: ChunkId
    entries: dict[str, Entry]

    def same(self, entries: list[Entry]) -> bool:
        """Tell whether `entries` (in walk order, which is listing order) are these."""
        return entries == list(self.entries.values())


@dataclass(frozen=True)
class _Read:
    """What a forked reader made of one file: its chunks, sealed if new."""

    error: str | None  # why it could not be read
    size: int = 0
    after: tuple[int, int, int] = (0, 0, 0)  # size, mtime_ns, ctime_ns once read
    sha256: str = ""
    # (id, length, envelope (header, ciphertext) or None if stored before the put)
    chunks: list[tuple[bytes, int, tuple[bytes, bytes] | None]] = field(default_factory=list)


class _Reader:
    """Read, hash, cut, compress and encrypt small files in a forked worker.

    It has what a chunk's id and stored form need (the chunker, the id key,
    the chunk index as it was when the put began, the key and salt of the
    put's blob) and nothing that writes: the put's process claims each chunk
    and appends it. A chunk two files share is sealed by both readers that
    meet it and appended once. Each reader seals with the nonce stream of its
    worker number (the put's process has stream 0), so no nonce of the blob
    is used twice.
    """

    def __init__(self, repo: Repository, salt: bytes, level: int) -> None:
        self.chunker = repo.chunker
        self.hasher = repo.hasher
        self.index = repo.index()
        self._key = repo.key
        self._salt = salt
        self._level = level
        self._buf = bytearray(1 << 20)
        self._zstd: zstandard.ZstdCompressor | None = None
        self._cipher: BlobCipher | None = None

    def read(self, files: list[tuple[bytes, int]]) -> list[_Read]:
        reads: list[_Read] = []

        def read(at: int, fd: int | OSError) -> None:
            if isinstance(fd, OSError):
                reads.append(_Read(fd.strerror or str(fd)))
                return
            try:
                reads.append(self._read_one(fd, files[at][1]))
            except OSError as exc:
                reads.append(_Read(exc.strerror or str(exc)))
            finally:
                os.close(fd)

        _each_opened([path for path, _ in files], read)
        return reads

    def _read_one(self, fd: int, expected: int) -> _Read:
        if len(self._buf) < expected + 1:
            self._buf = bytearray(expected + 1)
        data = _read_whole(fd, expected, self._buf)
        after = os.fstat(fd)
        if self._cipher is None:
            self._zstd = compression.compressor(self._level)
            number = forked.number()
            if number == 0:
                raise ChuteError("internal error: a reader runs outside its worker process")
            self._cipher = self._key.blob_cipher(self._salt, stream=number)
        chunks: list[tuple[bytes, int, tuple[bytes, bytes] | None]] = []
        for chunk in self.chunker.cut(data):
            cid = self.hasher.chunk_id(chunk)
            if cid in self.index:
                chunks.append((cid.raw, len(chunk), None))
            else:
                packed, flags = pack(self._zstd, chunk)
                sealed = self._cipher.seal_parts(T_DATA, cid.raw, packed, flags)
                chunks.append((cid.raw, len(chunk), sealed))
        seen = (after.st_size, after.st_mtime_ns, after.st_ctime_ns)
        return _Read(None, len(data), seen, hashlib.sha256(data).hexdigest(), chunks)


def _read_in_worker(files: list[tuple[bytes, int]]) -> list[_Read]:
    """Read a batch of small files in a forked worker (`chute.forked`)."""
    reader: _Reader = forked.state()
    return reader.read(files)


def _read_whole(fd: int, expected: int, buf: bytearray) -> memoryview:
    """Read a whole file into `buf` (at least `expected` + 1 bytes long).

    A read asks for one byte more than the walk saw, which tells whether the
    file grew. One that comes back short with exactly the expected size has
    hit the end: no second read to see it return nothing (one system call
    less per file; a file that grows after the read is caught by the fstat
    that follows it).
    """
    want = expected + 1
    view = memoryview(buf)
    got = 0
    while got < want:
        count = os.readv(fd, [view[got:want]])
        if count == 0:
            return view[:got]
        got += count
        if got == expected:
            return view[:got]
    rest = _read_rest(fd)  # it grew while we read: take all of it, as read
    return memoryview(bytes(view[:got]) + rest)


@dataclass(frozen=True)
class _Job:
    """A file to read, its entry, and the directory whose listing waits for it."""

    path: bytes
    entry: Entry
    parent: _Dir | None
    inode: _Inode | None = None  # set for the first path of a file with more links


@dataclass(frozen=True, slots=True)
class _Content:
    """A file's content as its entry gives it (hash, chunks, sizes, sparse), packed small.

    Kept for every file with more than one link until the put ends: in a tree
    of hard links into an older copy (rsync --link-dest, link farms) that is
    every file, and its whole entry was about a kilobyte.
    """

    sha256: bytes | None
    chunks: bytes | None  # the raw ids, joined
    sizes: tuple[int, ...] | None
    sparse: bool | None

    @classmethod
    def of(cls, entry: Entry) -> _Content:
        sha, chunks, sizes = entry.get("sha256"), entry.get("chunks"), entry.get("sizes")
        return cls(
            bytes.fromhex(sha) if sha is not None else None,
            b"".join(bytes.fromhex(c) for c in chunks) if chunks is not None else None,
            tuple(sizes) if sizes is not None else None,
            entry.get("sparse"),
        )

    def give(self, link: Entry) -> None:
        """Set a later link's content keys to these (only those the first path has)."""
        if self.sha256 is not None:
            link["sha256"] = self.sha256.hex()
        if self.chunks is not None:
            raw = self.chunks
            link["chunks"] = [raw[at : at + 32].hex() for at in range(0, len(raw), 32)]
        if self.sizes is not None:
            link["sizes"] = list(self.sizes)
        if self.sparse is not None:
            link["sparse"] = self.sparse


@dataclass(slots=True)
class _Inode:
    """The first path of a file with more links, and what later links copy from it."""

    path: str
    content: _Content | None = None  # once known
    waiting: list[tuple[Entry, _Dir | None]] | None = None  # later links until it is read


def _each_opened(paths: list[bytes], use: Callable[[int, int | OSError], None]) -> None:
    """Open every file first (its reads start), then hand each to `use(index, fd or error)`.

    `use` closes the files it is handed; the ones a failure left unhanded are closed here.
    """
    opened = [_open_ahead(path) for path in paths]
    taken = 0
    try:
        for at, fd in enumerate(opened):
            taken += 1
            use(at, fd)
    finally:
        for left in opened[taken:]:
            if isinstance(left, int):
                os.close(left)


def _open_ahead(path: bytes) -> int | OSError:
    """Open a file and ask the kernel to start reading its head; return the fd or the error."""
    try:
        fd = _open_noatime(path)
    except OSError as exc:
        return exc
    _advise(fd, 0, READ_AHEAD)  # a bigger file is asked for more as it streams
    return fd


def _advise(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to read a range of a file into the page cache, in the background."""
    with contextlib.suppress(OSError):
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)


def _open_noatime(path: bytes) -> int:
    try:
        return os.open(path, os.O_RDONLY | getattr(os, "O_NOATIME", 0))
    except PermissionError:
        return os.open(path, os.O_RDONLY)  # O_NOATIME needs ownership


def _read_rest(fd: int) -> bytes:
    parts = []
    while block := os.read(fd, STREAM_READ):
        parts.append(block)
    return b"".join(parts)


def find_parent(repo: Repository, domain: str, node: str, mount: str) -> SnapshotName | None:
    """Return the latest snapshot of the same mount, if any."""
    same = [s for s in repo.snapshots() if (s.domain, s.node, s.mount) == (domain, node, mount)]
    return same[-1] if same else None


def _free_name(repo: Repository, domain: str, node: str, mount: str) -> SnapshotName:
    moment = time.time()
    while True:
        name = SnapshotName(domain, node, mount, timestamp_now(moment))
        if repo.claim_name(name):  # atomic: two puts at once never share a name
            return name
        moment += 1


def put(repo: Repository, opts: PutOptions) -> PutResult:
    """Take a snapshot of `opts.path`; return the committed blob index and stats."""
    source = os.path.abspath(os.fspath(opts.path))
    if not os.path.lexists(source):
        raise UsageError(f"no such file or directory: {source}")
    mount = check_label(opts.label) if opts.label else mount_label(source)
    parent = find_parent(repo, opts.domain, opts.node, mount)
    parent_root = repo.read_index(parent).root if parent else None
    name = _free_name(repo, opts.domain, opts.node, mount)
    started = time.time()
    writer = BlobWriter(repo, name, opts.compression)
    walker = _Walker(repo, writer, opts)
    try:
        root = walker.run(os.fsencode(source), parent_root)
    except BaseException:
        writer.abort()
        raise
    stats = walker.stats
    stats.stored_bytes = writer.stored_bytes
    meta = {
        "tree": root.hex,
        "source": source,
        "tags": list(opts.tags),
        "meta": dict(opts.meta),
        "hostname": socket.gethostname(),
        "started": started,
        "ended": time.time(),
        "version": __version__,
        "stats": stats.as_dict(),
    }
    index = writer.commit(meta, parent)
    return PutResult(index, walker.listings, stats)
