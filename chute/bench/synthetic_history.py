"""A synthetic backup history: a tree of N files changing a little between snapshots.

Nothing is read from disk: the tree lives in memory as tree entries (the
same dicts a put records, see `chute.tree`), and each snapshot is written
as a real blob — its new directory listings, sealed, and an `index.json` —
into a real repository, then recorded in the graph by the same call a put
makes (`History.add_snapshot(repo, index, listings)`). File contents are
not stored (their hashes and chunk ids are made up), so the repository
restores nothing, but `chute log`, `diff`, `find` and `query` run on it as
on any other.

The shape aims at a home or project directory, not at a best case:
directories about a tenth as many as files, up to eight levels deep, file
counts per directory skewed (a few hold hundreds), log-normal sizes
(median ~8 KiB, some of many MiB), a few symlinks and extended attributes.
Churn per snapshot is a fraction of the files (`churn`, default 1%):
75% rewritten, 5% metadata-only changes (chmod, touch), 10% created, 10%
deleted, and now and then a new directory with a few files. One file in a
hundred is a copy of another (duplicate content); a few in a thousand are
setuid or world-writable. Seven in ten
changes fall in a "hot" 5% of the directories, as work does; the rest
anywhere. Everything follows from the seed.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from chute.crypto import T_TREE
from chute.graph import History
from chute.ids import ChunkId, SnapshotName, timestamp_now
from chute.repository import BlobIndex, BlobWriter, Repository
from chute.tree import Entry, encode_listing

DAY = 86_400
START = 1_767_225_600  # 2026-01-01T00:00:00Z
NS = 1_000_000_000
MAX_DEPTH = 8


@dataclass
class Dir:
    """A directory of the synthetic tree: its entry, children and cached listing id."""

    entry: Entry
    path: str
    depth: int
    parent: Dir | None
    dirs: dict[str, Dir] = field(default_factory=dict)
    files: dict[str, Entry] = field(default_factory=dict)
    tree: ChunkId | None = None  # None: changed since its listing was last stored

    def touch(self) -> None:
        """Mark this directory and its ancestors as changed."""
        node: Dir | None = self
        while node is not None and node.tree is not None:
            node.tree = None
            node = node.parent


@dataclass(frozen=True)
class Params:
    """The size of the history to make."""

    files: int = 10_000
    snapshots: int = 100
    churn: float = 0.01
    seed: int = 1
    domain: str = "example.com"
    node: str = "node1"
    mount: str = "srv/data"


class SyntheticTree:
    """A tree of entries that changes between snapshots."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self.rng = random.Random(params.seed)
        self.now = START
        self.inode = 1000
        self.serial = 0
        self.top = Dir(self._dir_entry("data"), "data", 1, None)
        self.dirs: list[Dir] = [self.top]
        self.files: list[tuple[Dir, str]] = []
        self.where: dict[tuple[str, str], int] = {}  # (dir path, name) -> index in files
        self.deleted: list[str] = []  # paths of files deleted so far
        self._grow(params.files)
        count = max(1, len(self.dirs) // 20)
        self.hot = self.rng.sample(self.dirs, count)

    # --- building --------------------------------------------------------

    def _grow(self, files: int) -> None:
        rng = self.rng
        for _ in range(max(1, files // 10)):
            parent = rng.choice([d for d in self.dirs[-200:] if d.depth < MAX_DEPTH] or self.dirs)
            if rng.random() < 0.5:
                parent = rng.choice(self.dirs)
            self._add_dir(parent)
        weights = [rng.paretovariate(1.1) for _ in self.dirs]
        for place in rng.choices(self.dirs, weights, k=files):
            self._add_file(place)

    def _add_dir(self, parent: Dir) -> Dir:
        if parent.depth >= MAX_DEPTH:
            parent = self.top
        self.serial += 1
        name = f"d{self.serial:05d}"
        node = Dir(self._dir_entry(name), f"{parent.path}/{name}", parent.depth + 1, parent)
        parent.dirs[name] = node
        parent.entry["mtime"] = parent.entry["ctime"] = self.now * NS
        parent.touch()
        self.dirs.append(node)
        return node

    def _dir_entry(self, name: str) -> Entry:
        self.inode += 1
        when = self.now * NS
        return {
            "name": name,
            "type": "dir",
            "mode": 0o40755,
            "uid": 1000,
            "gid": 1000,
            "user": "alice",
            "group": "staff",
            "mtime": when,
            "ctime": when,
            "ino": self.inode,
        }

    def _add_file(self, place: Dir) -> None:
        rng = self.rng
        self.serial += 1
        self.inode += 1
        kind = rng.random()
        name = f"f{self.serial:06d}" + rng.choice((".txt", ".md", ".py", ".jpg", ".json", ".log"))
        when = (self.now - rng.randrange(DAY * 365)) * NS
        mode = 0o104755 if kind < 0.001 else 0o100666 if kind < 0.002 else 0o100644
        entry: Entry = {
            "name": name,
            "type": "file",
            "mode": 0o100755 if 0.002 <= kind < 0.03 else mode,
            "uid": 1000,
            "gid": 1000,
            "user": "alice",
            "group": "staff",
            "mtime": when,
            "ctime": when,
            "ino": self.inode,
        }
        if kind > 0.99:
            entry.update(type="symlink", mode=0o120777, target=f"../{name}.orig")
        elif 0.97 < kind <= 0.98 and self.files:
            self._copy_content(entry)
        else:
            self._new_content(entry)
        if 0.98 < kind <= 0.99:
            entry["xattrs"] = {"user.origin": "c3luY2VkIGZyb20gbGFwdG9w"}
        place.files[name] = entry
        place.entry["mtime"] = place.entry["ctime"] = self.now * NS
        place.touch()
        self.where[(place.path, name)] = len(self.files)
        self.files.append((place, name))

    def _new_content(self, entry: Entry) -> None:
        size = min(int(self.rng.lognormvariate(9.0, 2.2)), 4 << 30)
        entry["size"] = size
        entry["sha256"] = self.rng.randbytes(32).hex()
        entry["chunks"] = [self.rng.randbytes(32).hex() for _ in range(1 + (size >> 20))]

    def _copy_content(self, entry: Entry) -> None:
        """Make a file a copy of another (duplicate content, as people do)."""
        place, name = self.files[self.rng.randrange(len(self.files))]
        other = place.files[name]
        if other["type"] != "file":
            self._new_content(entry)
            return
        for key in ("size", "sha256", "chunks"):
            entry[key] = other[key]

    # --- changing --------------------------------------------------------

    def advance(self) -> None:
        """Move one day on and apply one snapshot's worth of churn."""
        self.now += DAY
        rng = self.rng
        for _ in range(max(1, round(self.params.files * self.params.churn))):
            roll = rng.random()
            if roll < 0.80:
                self._change(rng.random() < 0.05 / 0.80)
            elif roll < 0.90:
                self._add_file(self._pick_dir())
            else:
                self._delete()
        if rng.random() < 0.05:
            fresh = self._add_dir(self._pick_dir())
            for _ in range(rng.randint(1, 8)):
                self._add_file(fresh)

    def _pick_dir(self) -> Dir:
        return self.rng.choice(self.hot if self.rng.random() < 0.7 else self.dirs)

    def _pick_file(self) -> int:
        for _ in range(20):
            place = self._pick_dir()
            if place.files:
                name = self.rng.choice(list(place.files))
                return self.where[(place.path, name)]
        return self.rng.randrange(len(self.files))

    def _change(self, metadata_only: bool) -> None:
        place, name = self.files[self._pick_file()]
        entry = dict(place.files[name])
        when = (self.now - self.rng.randrange(3600)) * NS
        entry["ctime"] = when
        if metadata_only:
            entry["mode"] ^= 0o020  # group write on or off
        else:
            entry["mtime"] = when
            if entry["type"] == "file":
                self._new_content(entry)
        place.files[name] = entry
        place.touch()

    def _delete(self) -> None:
        if len(self.files) < 2:
            return
        at = self._pick_file()
        place, name = self.files[at]
        self.deleted.append(f"{place.path}/{name}")
        del place.files[name]
        del self.where[(place.path, name)]
        last = self.files.pop()
        if at < len(self.files):
            self.files[at] = last
            self.where[(last[0].path, last[1])] = at
        place.entry["mtime"] = place.entry["ctime"] = self.now * NS
        place.touch()

    # --- listings ----------------------------------------------------------

    def listings(self, hasher: Any) -> tuple[ChunkId, dict[ChunkId, bytes]]:
        """Return the root listing's id and the listings that changed since the last call."""
        fresh: dict[ChunkId, bytes] = {}

        def store(entries: list[Entry]) -> ChunkId:
            data = encode_listing(entries)
            tid: ChunkId = hasher.tree_id(data)
            fresh[tid] = data
            return tid

        def visit(node: Dir) -> ChunkId:
            if node.tree is None:
                entries = list(node.files.values())
                for child in node.dirs.values():
                    entries.append({**child.entry, "tree": visit(child).hex})
                node.tree = store(entries)
            return node.tree

        top = visit(self.top)
        return store([{**self.top.entry, "tree": top.hex}]), fresh

    def stats(self) -> dict[str, int]:
        """Return what a put would count: files, directories and bytes."""
        entries = [e for d in self.dirs for e in d.files.values()]
        return {
            "files": sum(1 for e in entries if e["type"] == "file"),
            "dirs": len(self.dirs),
            "bytes_total": sum(e.get("size", 0) for e in entries),
        }


@dataclass
class Written:
    """One snapshot of the synthetic history: its name and what recording it cost."""

    name: SnapshotName
    triples: int
    seconds: float


def write_snapshot(
    repo: Repository,
    history: History,
    tree: SyntheticTree,
    parent: SnapshotName | None,
    tags: tuple[str, ...] = (),
) -> Written:
    """Store one snapshot of the tree as a blob and record it as a put does; time the graph."""
    p = tree.params
    name = SnapshotName(p.domain, p.node, p.mount, timestamp_now(tree.now))
    root, listings = tree.listings(repo.hasher)
    meta = {
        "tree": root.hex,
        "source": f"/{p.mount}",
        "tags": list(tags),
        "meta": {"generator": "chute.bench.synthetic_history", "seed": str(p.seed)},
        "hostname": f"{p.node}.{p.domain}",
        "started": float(tree.now),
        "ended": float(tree.now + 60),
        "version": "synthetic",
        "stats": tree.stats(),
    }
    writer = BlobWriter(repo, name)
    try:
        index = repo.index()
        for tid, data in listings.items():
            if index.claim(tid):
                writer.append(T_TREE, tid, writer.seal(T_TREE, tid, data, compress=True))
    except BaseException:
        writer.abort()
        raise
    committed: BlobIndex = writer.commit(meta, parent)
    started = time.perf_counter()
    triples = history.add_snapshot(repo, committed, listings)
    return Written(name, triples, time.perf_counter() - started)
