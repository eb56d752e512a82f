"""Open what a command needs: the repository, the key, the graph.

The plain functions here do the work of the CLI verbs, so the CLI only
parses, calls and prints; the web app (and tests) call the same functions.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chute import forked
from chute.backup import Progress, PutOptions, PutResult, put
from chute.config import Settings
from chute.crypto import Secret
from chute.errors import Locked, NotFound, StorageError, TargetExists, Unauthorized, UsageError
from chute.ids import ChunkId, SnapshotName
from chute.locking import SHARED, GuardedStore, Lock, lock
from chute.memory import release_free_memory
from chute.repository import BlobIndex, Repository
from chute.restore import find_entry
from chute.store.base import open_store
from chute.tree import Entry, decode_listing

if TYPE_CHECKING:  # the graph (pyoxigraph: ~13 MiB) is loaded by the commands that use it
    from chute.graph import History


def open_repository(settings: Settings, secret: Secret | None = None) -> Repository:
    """Open the configured repository with the configured secret."""
    store = open_store(settings.repo)
    Repository.read_config(store)  # "no repository" comes before "no key"
    return Repository.open(store, secret or settings.secret(), settings.cache_root())


@contextmanager
def history(settings: Settings, repo: Repository, sync: bool = True) -> Iterator[History]:
    """Open the graph for a repository, synced with its committed snapshots."""
    from chute.graph import History
    from chute.graph_remote import graph_store

    remote = graph_store(settings, repo.repo_id)  # a SPARQL server, or None: embedded
    graph = History(settings.graph_path(repo.repo_id), settings.base_url, remote)
    try:
        if sync:
            graph.sync(repo)
        yield graph
    finally:
        graph.close()


def generate_key_file(path: Path) -> None:
    """Write 64 random bytes to a new key file readable only by its owner."""
    if path.exists():
        raise TargetExists(f"key file {path} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "wb") as handle:
        handle.write(os.urandom(64))
        handle.flush()
        os.fsync(handle.fileno())


def select_snapshot(repo: Repository, selector: str) -> SnapshotName:
    """Resolve `latest`, a snapshot URI or blob path, or a unique timestamp or prefix."""
    names = repo.snapshots()
    if not names:
        raise NotFound("the repository holds no snapshot yet")
    if selector == "latest":
        return names[-1]
    if selector.startswith("latest:"):
        mount = selector.split(":", 1)[1].strip("/")
        same = [n for n in names if n.mount == mount or n.mount_path.strip("/") == mount]
        if not same:
            raise NotFound(f"no snapshot of mount {mount}")
        return same[-1]
    if "/" in selector:
        wanted = SnapshotName.parse(selector)
        if wanted in names:
            return wanted
        raise NotFound(f"no snapshot {wanted.path}")
    found = [n for n in names if n.timestamp.startswith(selector)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise NotFound(f"no snapshot matches {selector!r}")
    raise UsageError(f"{selector!r} matches {len(found)} snapshots; give the full name")


@dataclass(frozen=True)
class PutOutcome:
    """A committed snapshot, how many triples it added to the graph, and how long each took.

    `backup_seconds` is the wall time of the backup (walk, read, chunk,
    compress, encrypt, write, commit the blob); `graph_seconds` that of
    recording it in the graph (its triples, then a sync with the snapshots
    other puts committed meanwhile).
    """

    result: PutResult
    uri: str
    triples: int
    backup_seconds: float
    graph_seconds: float

    def summary(self) -> dict[str, Any]:
        """Return what `chute put --json` and `POST /chute/snapshot` answer."""
        return {
            "uri": self.uri,
            "snapshot": self.result.index.name.path,
            "triples_added": self.triples,
            "warnings": self.result.stats.warnings,
            **self.result.stats.as_dict(),
            "backup_seconds": round(self.backup_seconds, 3),
            "graph_seconds": round(self.graph_seconds, 3),
        }


def take_snapshot(settings: Settings, repo: Repository, opts: PutOptions) -> PutOutcome:
    """Run a put under a shared repository lock and record it in the graph."""
    with lock(repo.store, SHARED, "put") as held:
        # Opened after the lock: the chunk index it loads cannot lose a window to prune.
        locked = repo.with_store(GuardedStore(repo.store, held))
        started = time.perf_counter()
        result = _backup(locked, opts, held)
        held.verify()  # the lease held all along, so no prune ran under this put
        backed_up = time.perf_counter()
        try:
            with history(settings, locked, sync=False) as graph:
                triples = graph.add_snapshot(locked, result.index, result.listings)
                # Snapshots an interrupted put or a concurrent one committed: read through a
                # fresh view, whose chunk index (loaded only if needed) includes their blobs.
                graph.sync(locked.with_store(locked.store))
        # A full disk, a busy graph, a graph server that refuses: the blob is safe.
        except (StorageError, Locked, UsageError, Unauthorized) as exc:
            raise type(exc)(
                f"{exc.message} (snapshot {result.index.name.path} is stored; the next command"
                " that opens the graph adds it)"
            ) from exc
    uri = result.index.name.uri(settings.base_url)
    return PutOutcome(result, uri, triples, backed_up - started, time.perf_counter() - backed_up)


def _backup(repo: Repository, opts: PutOptions, held: Lock) -> PutResult:
    """Back up, apart in a forked copy of this process where one can be made.

    The graph phase then starts from this process's own small footprint plus
    the listings and index handed back: for 1 GiB of mixed files ~60 MiB
    instead of ~95 (the backup's buffers and the arenas its threads
    fragmented, which `malloc_trim` cannot wholly return, all go with the
    copy). Only from the main thread (a server's
    threads back up in place), and with a store a copy may use beside this
    process (not one holding network connections, which both would share);
    the copy renews the lock meanwhile.
    """
    main = threading.current_thread() is threading.main_thread()
    if not (repo.store.forkable and main and forked.available()):
        result = put(repo, opts)
        release_free_memory()  # the backup's buffers, before the graph phase allocates
        return result

    def in_copy(progress: Progress | None) -> PutResult:
        held.resume()
        try:
            return put(repo, replace(opts, progress=progress))
        finally:
            held.pause()  # before the result goes back: this process takes the lease back

    held.pause()
    try:
        return forked.apart(in_copy, opts.progress, "the backup process")
    finally:
        held.take_back()


def iter_entries(
    repo: Repository, index: BlobIndex, subpath: str = ""
) -> Iterator[tuple[str, Entry]]:
    """Yield (path, entry) for everything at and below `subpath`, directory by directory."""
    rel, entry = find_entry(repo, index, subpath)
    if entry is not None:
        yield rel, entry
        if entry["type"] != "dir":
            return
        tree = ChunkId.from_hex(entry["tree"])
    else:
        tree = index.root
    stack = [(rel, tree)]
    while stack:
        base, tree = stack.pop()
        children = []
        for child in decode_listing(repo.read_tree(tree)):
            path = f"{base}/{child['name']}" if base else child["name"]
            yield path, child
            if child["type"] == "dir":
                children.append((path, ChunkId.from_hex(child["tree"])))
        stack.extend(reversed(children))


def read_snapshot(repo: Repository, selector: str) -> BlobIndex:
    """Select a snapshot and read its index."""
    return repo.read_index(select_snapshot(repo, selector))
