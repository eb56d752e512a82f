"""`chute get`: restore a snapshot, or one path of it, verified.

A snapshot restores to `<target>/<name of the backed-up file or dir>/...`.
Every chunk is authenticated (AEAD) and checked against its keyed id, and
every file's SHA-256 is compared with the recorded one before its metadata
is set; a file that fails verification is removed, reported by path, and
the rest of the restore goes on; the command then fails with the list.
(Files are written under their own names: a temporary name plus a rename
doubled the directory operations, which dominate when restoring many small
files. A restore killed midway can leave its last files incomplete.)

Files are written by workers in batches (a batch per task keeps the
per-file overhead low): from a local repository by forked processes
(`chute.forked`: the per-file system calls and Python of many small files
kept two threads waiting on each other's GIL; processes restore mixed data
about a quarter faster), from a remote one by threads (decryption and I/O
release the GIL; forked copies would share its connections). The tree walk,
directories and metadata stay in the parent. A batch's chunks are read in
spans of neighbouring objects (chute.prefetch), and only a few batches are
queued ahead of the workers, so memory stays flat.
Sparse files stay sparse: all-zero chunks of a file recorded as sparse are
skipped with a seek. Metadata is applied last and deepest first: owners
(when root), modes, xattrs, then times in nanoseconds, so a read-only
directory is filled before it becomes read-only.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import stat
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import xattr

from chute import directio, forked
from chute.crypto import T_DATA
from chute.errors import ChuteError, IntegrityError, NotFound, StorageError, TargetExists
from chute.ids import ChunkId
from chute.prefetch import Prefetcher
from chute.repository import BlobIndex, Repository
from chute.tree import Entry, decode_listing

# One worker per core: more threads only fight over the GIL (4 workers on
# 2 cores spent a fifth of the restore's CPU time handing it over), and a
# third forked worker on 2 cores was slower too.
WORKERS = min(8, os.cpu_count() or 2)
QUEUED = 2 * WORKERS  # batches handed to the pool and not yet done
BATCH_FILES = 128
BATCH_BYTES = 8 << 20
SMALL_FILE = 64 << 10  # a batch of files this size on average is bound by system calls
Progress = Callable[[int, int], None]
Fetch = Callable[[ChunkId], bytes]


@dataclass
class RestoreStats:
    """What a restore did."""

    files: int = 0
    dirs: int = 0
    links: int = 0
    other: int = 0
    bytes: int = 0
    failed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def find_entry(repo: Repository, index: BlobIndex, subpath: str) -> tuple[str, Entry | None]:
    """Resolve a path inside a snapshot; return (path, entry), entry None for the root."""
    rel = _relative(index, subpath)
    if not rel:
        return "", None
    entries = decode_listing(repo.read_tree(index.root))
    entry: Entry | None = None
    parts = rel.split("/")
    for i, part in enumerate(parts):
        entry = next((e for e in entries if e["name"] == part), None)
        if entry is None:
            raise NotFound(f"{rel} is not in snapshot {index.name.path}")
        if i < len(parts) - 1:
            if entry["type"] != "dir":
                raise NotFound(f"{rel} is not in snapshot {index.name.path}")
            entries = decode_listing(repo.read_tree(ChunkId.from_hex(entry["tree"])))
    return rel, entry


def _relative(index: BlobIndex, subpath: str) -> str:
    """Accept `Movies/a.mkv`, `/home/u/Movies/a.mkv` (the source path) or `/Movies/a.mkv`."""
    path = subpath.strip()
    source = index.meta.get("source", "")
    parent = os.path.dirname(source.rstrip("/"))
    if path.startswith("/") and parent not in ("", "/") and path.startswith(parent + "/"):
        path = path[len(parent) :]
    return "/".join(p for p in path.split("/") if p and p != ".")


@dataclass
class _Done:
    """What a worker did with one batch of files."""

    restored: list[str] = field(default_factory=list)  # written and verified, by path
    bytes: int = 0
    failed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


Batch = list[tuple[bytes, str, Entry]]


class _Restorer:
    def __init__(self, repo: Repository, target: Path, progress: Progress | None) -> None:
        self.repo = repo
        self.target = os.fsencode(target)
        self.progress = progress
        self.stats = RestoreStats()
        self.is_root = os.geteuid() == 0
        self._pool: Executor | None = None
        self._forked = False
        self._pending: deque[Future[_Done]] = deque()
        self._slots = threading.BoundedSemaphore(QUEUED)
        self._one_small = threading.Lock()
        self._batch: Batch = []
        self._batch_bytes = 0
        self._links: list[tuple[bytes, str, Entry]] = []
        self._dirs: list[tuple[bytes, Entry]] = []
        self._restored: set[str] = set()

    def path_of(self, rel: str) -> bytes:
        return os.path.join(self.target, os.fsencode(rel))

    def run(self, base: str, entry: Entry | None, tree: ChunkId) -> RestoreStats:
        self._pool = self._start_pool()
        try:
            if entry is None:
                self.listing(base, tree)
            else:
                self.parents(base)
                self.visit(base, entry)
            self._submit()
            self._collect(wait=True)
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
        for path, rel, entry in self._links:
            self.hardlink(path, rel, entry)
        for path, entry in sorted(self._dirs, key=lambda d: -d[0].count(b"/")):
            self.apply_meta(path, entry, self.stats.warnings)
        return self.stats

    def _start_pool(self) -> Executor:
        """Forked workers for a local store (no GIL between them); threads otherwise."""
        if WORKERS > 1 and self.repo.store.forkable and forked.available():
            self.repo.index()  # loaded once, before the fork: the workers share its pages
            with contextlib.suppress(OSError):  # cannot fork (memory, process limit): threads
                pool = forked.pool(WORKERS, self)
                self._forked = True
                return pool
        return ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="chute-get")

    def parents(self, rel: str) -> None:
        parent = os.path.dirname(rel)
        if parent:
            os.makedirs(self.path_of(parent), exist_ok=True)

    def listing(self, base: str, tree: ChunkId) -> None:
        for entry in decode_listing(self.repo.read_tree(tree)):
            self.visit(f"{base}/{entry['name']}" if base else entry["name"], entry)

    def visit(self, rel: str, entry: Entry) -> None:
        path = self.path_of(rel)
        kind = entry["type"]
        if kind == "dir":
            os.mkdir(path, 0o700)
            self.stats.dirs += 1
            self.listing(rel, ChunkId.from_hex(entry["tree"]))
            self._dirs.append((path, entry))
        elif kind == "file" and "link" in entry:
            self._links.append((path, rel, entry))
        elif kind == "file":
            self._batch.append((path, rel, entry))
            self._batch_bytes += entry["size"]
            if len(self._batch) >= BATCH_FILES or self._batch_bytes >= BATCH_BYTES:
                self._submit()
        elif kind == "symlink":
            os.symlink(os.fsencode(entry["target"]), path)
            self.apply_meta(path, entry, self.stats.warnings)
            self.stats.other += 1
        elif kind == "fifo":
            os.mkfifo(path, 0o600)
            self.apply_meta(path, entry, self.stats.warnings)
            self.stats.other += 1
        elif kind in ("chr", "blk") and self.is_root:
            devtype = stat.S_IFCHR if kind == "chr" else stat.S_IFBLK
            os.mknod(path, 0o600 | devtype, entry.get("rdev", 0))
            self.apply_meta(path, entry, self.stats.warnings)
            self.stats.other += 1
        else:
            self.stats.warnings.append(f"{rel}: a {kind} cannot be restored here; skipped")

    def _submit(self) -> None:
        if not self._batch:
            return
        assert self._pool is not None
        self._slots.acquire()  # the tree walk waits here rather than run far ahead
        if self._forked:
            future = self._pool.submit(_files_in_worker, self._batch)
        else:
            small = self._batch_bytes < len(self._batch) * SMALL_FILE
            future = self._pool.submit(self.files, self._batch, small)
        future.add_done_callback(lambda _: self._slots.release())
        self._pending.append(future)
        self._batch, self._batch_bytes = [], 0
        self._collect(wait=False)

    def _collect(self, wait: bool) -> None:
        """Count the batches done, in order (all of them if `wait`)."""
        while self._pending and (wait or self._pending[0].done()):
            done = self._pending.popleft().result()
            self._restored.update(done.restored)
            self.stats.files += len(done.restored)
            self.stats.bytes += done.bytes
            self.stats.failed += done.failed
            self.stats.warnings += done.warnings
            if self.progress is not None:
                self.progress(self.stats.files, self.stats.bytes)

    def files(self, batch: Batch, small: bool) -> _Done:
        """Restore a batch of files on a worker thread.

        Batches of `small` files run one at a time: their work is mostly short
        system calls, each of which hands the GIL over, and two such workers
        spent more time handing it back and forth than restoring.
        """
        with self._one_small if small else contextlib.nullcontext():
            return self.files_of(batch)

    def files_of(self, batch: Batch) -> _Done:
        """Restore a batch of files (in a worker); failures are reported, not raised."""
        ids = (ChunkId.from_hex(h) for _, _, entry in batch for h in entry.get("chunks", []))
        fetch = Prefetcher(self.repo, ids).read
        done = _Done()
        for path, rel, entry in batch:
            try:
                self.file(path, entry, fetch, done.warnings)
            except (IntegrityError, NotFound, StorageError) as exc:
                done.failed.append(f"{rel}: {exc}")
            else:
                done.restored.append(rel)
                done.bytes += entry["size"]
        return done

    def file(self, path: bytes, entry: Entry, fetch: Fetch, warnings: list[str]) -> None:
        sha = hashlib.sha256()
        sparse = bool(entry.get("sparse"))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            for hexid in entry.get("chunks", []):
                data = fetch(ChunkId.from_hex(hexid))
                sha.update(data)
                if sparse and data == bytes(len(data)):
                    os.lseek(fd, len(data), os.SEEK_CUR)
                else:
                    directio.write_all(fd, data, direct=False)
            if sparse or entry["size"] == 0:
                os.ftruncate(fd, entry["size"])
            if sha.hexdigest() != entry["sha256"]:
                raise IntegrityError("content does not match its recorded SHA-256")
            self.apply_meta(fd, entry, warnings)
        except BaseException:
            os.close(fd)
            os.unlink(path)  # never leave an unverified file behind
            raise
        os.close(fd)

    def hardlink(self, path: bytes, rel: str, entry: Entry) -> None:
        first = entry["link"]
        if first in self._restored:
            os.link(self.path_of(first), path)
            self.stats.links += 1
            return
        # The first name of this inode is not part of this restore: restore the content.
        try:
            self.file(path, entry, self._read_data, self.stats.warnings)
        except (IntegrityError, NotFound, StorageError) as exc:
            self.stats.failed.append(f"{rel}: {exc}")
        else:
            self.stats.files += 1
            self.stats.bytes += entry["size"]

    def _read_data(self, oid: ChunkId) -> bytes:
        return self.repo.read_object(oid, T_DATA)

    def apply_meta(self, where: bytes | int, entry: Entry, warnings: list[str]) -> None:
        """Set owner (as root), mode, xattrs and times on a path or an open file."""
        link = entry["type"] == "symlink"
        follow = {} if isinstance(where, int) else {"follow_symlinks": False}
        if self.is_root:
            os.chown(where, entry["uid"], entry["gid"], **follow)
        if not link:
            os.chmod(where, stat.S_IMODE(entry["mode"]))
            for name, value in entry.get("xattrs", {}).items():
                try:
                    xattr.setxattr(where, name, base64.b64decode(value))
                except OSError as exc:
                    warnings.append(f"{entry['name']}: cannot set xattr {name}: {exc.strerror}")
        times = (entry["mtime"], entry["mtime"])
        if isinstance(where, int):
            os.utime(where, ns=times)
        else:
            os.utime(where, ns=times, follow_symlinks=not link)


def _files_in_worker(batch: Batch) -> _Done:
    """Restore a batch in a forked worker, with the restorer it was started from."""
    restorer: _Restorer = forked.state()
    return restorer.files_of(batch)


def prepare_target(target: Path) -> None:
    """Create the restore target; refuse one that exists and is not empty."""
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise TargetExists(f"target {target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()):
        raise TargetExists(f"target {target} exists and is not empty")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TargetExists(f"cannot create target {target}: {exc.strerror}") from exc


def restore(
    repo: Repository,
    index: BlobIndex,
    target: Path,
    subpath: str = "",
    progress: Progress | None = None,
) -> RestoreStats:
    """Restore `subpath` (default: everything) of a snapshot under `target`."""
    rel, entry = find_entry(repo, index, subpath)
    prepare_target(target)
    if entry is not None and entry["type"] == "file" and "link" in entry:
        entry = {k: v for k, v in entry.items() if k != "link"}
    try:
        stats = _Restorer(repo, target, progress).run(rel, entry, index.root)
    except OSError as exc:
        raise StorageError(f"cannot write under {target}: {exc.strerror}") from exc
    except BrokenExecutor as exc:
        raise ChuteError(
            "a restore worker ended abruptly (killed?); the restore is incomplete"
        ) from exc
    if stats.failed:
        shown = "; ".join(stats.failed[:5])
        more = f" (and {len(stats.failed) - 5} more)" if len(stats.failed) > 5 else ""
        raise IntegrityError(f"{len(stats.failed)} file(s) failed verification: {shown}{more}")
    return stats
