"""`chute check`: find damage and name the files and snapshots it breaks.

Structure (always): every blob's index.json opens; every window the index
lists is there with its size; tombstones authenticate; every tree of
every live snapshot is read and verified, and every chunk a file uses is
in the chunk index (which leaves out windows that are gone); the graph
and the repository agree on the snapshots. `--read-data` also reads every
window (`--read-data-subset n/t` the n-th of t groups, `p%` a random
sample) and authenticates every object in it, checks it against its id,
and compares the window's SHA-256 with the public one.

Damage is then mapped to what it breaks: a file whose chunk is missing or
damaged, a directory whose listing is (what lies below it cannot be
reached: it is named once), a whole snapshot whose index or root is.
Damage that nothing kept uses (a lost window of a forgotten snapshot, say)
is a note. So are the leftovers of interrupted puts and prunes (prune
removes them), a graph that lags behind the repository, and stale
tombstoned snapshots in the graph (the next command that opens it drops
them). Only damage makes the report fail (exit code 13).
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import zstandard

from chute.crypto import F_ZSTD, T_DATA, BlobCipher
from chute.errors import ChuteError, IntegrityError, UsageError
from chute.ids import ChunkId, SnapshotName
from chute.layout import BlobFiles, Layout
from chute.repository import RECORD, ChunkIndex, Repository
from chute.tombstone import read_tombstone
from chute.tree import decode_listing

Record = tuple[bytes, int, int, int]  # id, offset, length, type
_SUBSET = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*\Z")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*\Z")


@dataclass(frozen=True)
class Subset:
    """Which windows `--read-data` reads: group n of t, or a random fraction."""

    group: int = 1
    groups: int = 1
    fraction: float | None = None

    @classmethod
    def parse(cls, text: str) -> Subset:
        match = _SUBSET.match(text)
        if match:
            n, t = int(match[1]), int(match[2])
            if not 1 <= n <= t:
                raise UsageError(f"bad subset {text!r}: n/t needs 1 <= n <= t")
            return cls(n, t)
        match = _PERCENT.match(text)
        if match and 0 < float(match[1]) <= 100:
            return cls(fraction=float(match[1]) / 100)
        raise UsageError(f"bad subset {text!r}: use n/t (e.g. 2/5) or a percentage (e.g. 10%)")

    def pick(self, windows: list[tuple[str, int]]) -> list[tuple[str, int]]:
        if self.fraction is not None:
            count = max(1, round(len(windows) * self.fraction)) if windows else 0
            return sorted(random.sample(windows, count))
        return [w for i, w in enumerate(windows) if i % self.groups == self.group - 1]


@dataclass(frozen=True)
class Broken:
    """Something a restore will fail on: a file, a directory or a whole snapshot."""

    snapshot: str
    path: str
    kind: str
    reason: str


@dataclass
class CheckReport:
    """What check found."""

    snapshots: int = 0
    blobs: int = 0
    windows: int = 0
    trees: int = 0
    windows_read: int = 0
    bytes_read: int = 0
    objects_read: int = 0
    damage: list[str] = field(default_factory=list)
    broken: list[Broken] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damage and not self.broken

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["broken"] = [b.__dict__ for b in self.broken]
        out["ok"] = self.ok
        return out


@dataclass
class _Blob:
    files: BlobFiles
    public: dict[str, Any]
    table: bytes
    cipher: BlobCipher


class _Checker:
    def __init__(self, repo: Repository, layout: Layout, report: CheckReport) -> None:
        self.repo = repo
        self.layout = layout
        self.report = report
        self.index: ChunkIndex = repo.index()
        self.blobs: dict[str, _Blob] = {}
        self.damaged: dict[bytes, str] = {}  # id -> why its copy the index resolves to is bad
        self.stray: list[str] = []  # damage in copies that the index does not resolve to
        self.used: set[bytes] = set()
        self.missing: set[bytes] = set()
        self.absent: dict[str, int] = {}  # blob -> windows its index lists that are gone
        self._trees: dict[bytes, list[tuple[str, str, str]]] = {}

    # --- structure --------------------------------------------------------

    def blobs_and_windows(self) -> None:
        for files in self.layout.indexed():
            self.report.blobs += 1
            try:
                public, _, table = self.repo.open_blob_index(files.path)
                cipher = self.repo.key.blob_cipher(base64.b64decode(public["salt"]))
                int(public["window"]), int(public["size"])
            except (ChuteError, ValueError, KeyError, TypeError) as exc:
                self._index_damage(files, exc)
                continue
            self.blobs[files.path] = _Blob(files, public, table, cipher)
            self._windows(self.blobs[files.path])
        if self.absent:
            self.report.notes.append(
                f"{sum(self.absent.values())} window(s) of {len(self.absent)} blob(s) are gone "
                "(pruned, or lost: what kept snapshots still use from them is reported)"
            )
        for files in self.layout.unfinished():
            self.report.notes.append(
                f"{files.path}: data without index.json: a put in progress, or the leftover "
                "of an interrupted put or prune (prune removes it)"
            )
        for name in self.layout.unknown:
            self.report.notes.append(f"{name}: not a chute object")

    def _index_damage(self, files: BlobFiles, exc: Exception) -> None:
        message = f"{files.path}/index.json cannot be opened: {exc}"
        if files.live and files.snapshot is not None:
            self.report.damage.append(message)
            self.report.broken.append(Broken(files.path, "", "snapshot", "its index is damaged"))
        else:
            self.report.notes.append(message + " (no live snapshot's own index)")

    def _windows(self, blob: _Blob) -> None:
        window, size = int(blob.public["window"]), int(blob.public["size"])
        expected = -(-size // window)
        present = blob.files.windows
        self.report.windows += len(present)
        absent = sum(1 for m in range(expected) if m not in present)
        if absent:
            self.absent[blob.files.path] = absent
        for m in sorted(present):
            if m >= expected or (present[m].split("/")[-2] != str(window)):
                self.report.notes.append(f"{present[m]}: not a window this blob's index lists")
                continue
            want = min(window, size - m * window)
            got = self.repo.store.size(present[m]) or 0
            why = f"window {m} of {blob.files.path} has {got} bytes, not {want}"
            if got < want:
                self._bad_range(blob, m * window + got, (m + 1) * window, why)
            elif got > want:
                self.report.notes.append(why)

    def _bad_range(self, blob: _Blob, start: int, end: int, why: str) -> None:
        for raw, offset, length, _ in RECORD.iter_unpack(blob.table):
            if offset < end and offset + length > start:
                self._mark(raw, blob.files.path, offset, why)

    def _mark(self, raw: bytes, blob: str, offset: int, why: str) -> None:
        oid = ChunkId(raw)
        if oid in self.index:
            loc = self.index.get(oid)
            if loc.blob == blob and loc.offset == offset:
                self.damaged.setdefault(raw, why)
                return
        self.stray.append(f"{why} (object {raw.hex()[:16]}, a copy nothing reads)")

    def tombstones(self) -> None:
        for files in self.layout.forgotten():
            try:
                read_tombstone(self.repo.store, self.repo.key, files.path)
            except ChuteError as exc:
                self.report.damage.append(
                    f"{files.path}/forgotten fails to authenticate ({exc}): the snapshot is "
                    "hidden from the list, its data kept"
                )

    # --- reading data -----------------------------------------------------

    def read_data(self, subset: Subset) -> None:
        windows = [
            (path, m) for path, blob in self.blobs.items() for m in sorted(blob.files.windows)
        ]
        starting: dict[str, dict[int, list[Record]]] = {}  # blob -> window -> records
        for path, m in subset.pick(windows):
            blob = self.blobs[path]
            if path not in starting:
                starting[path] = _by_first_window(blob.table, int(blob.public["window"]))
            self._read_window(blob, m, starting[path].get(m, []))

    def _read_window(self, blob: _Blob, m: int, records: list[Record]) -> None:
        """Read a window and verify every object that starts in it."""
        window = int(blob.public["window"])
        try:
            data = self.repo.store.get(blob.files.windows[m])
        except ChuteError as exc:
            self._bad_range(blob, m * window, (m + 1) * window, f"{blob.files.windows[m]}: {exc}")
            return
        self.report.windows_read += 1
        self.report.bytes_read += len(data)
        hashes = blob.public.get("windows") or []
        if m < len(hashes) and hashlib.sha256(data).hexdigest() != hashes[m]:
            self.report.notes.append(f"{blob.files.windows[m]}: SHA-256 differs from the index")
        start = m * window
        for raw, offset, length, otype in records:
            inner = offset - start
            if inner + length <= len(data):
                envelope = data[inner : inner + length]
            else:
                try:
                    envelope = self.repo.read_stream(blob.files.path, offset, length, window)
                except ChuteError as exc:
                    self._mark(raw, blob.files.path, offset, str(exc))
                    continue
            self.report.objects_read += 1
            why = _verify(self.repo, blob.cipher, envelope, raw, otype)
            if why:
                self._mark(raw, blob.files.path, offset, f"{why} (in {blob.files.windows[m]})")

    # --- what the damage breaks --------------------------------------------

    def snapshots(self) -> None:
        for name in self.layout.snapshots():
            if name.path not in self.blobs:
                continue  # its index is damaged: reported already
            self.report.snapshots += 1
            meta_root = self._root(name)
            if meta_root is None:
                continue
            for rel, kind, why in self._tree(meta_root):
                self.report.broken.append(Broken(name.path, rel, kind if rel else "snapshot", why))

    def _root(self, name: SnapshotName) -> ChunkId | None:
        try:
            return self.repo.read_index(name).root
        except (ChuteError, KeyError, ValueError) as exc:
            self.report.broken.append(Broken(name.path, "", "snapshot", f"no root: {exc}"))
            return None

    def _tree(self, tree: ChunkId) -> list[tuple[str, str, str]]:
        """Broken entries below a listing, paths relative to it (memoized: trees are shared)."""
        found = self._trees.get(tree.raw)
        if found is not None:
            return found
        self.used.add(tree.raw)
        self.report.trees += 1
        found = []
        why = self._object_problem(tree.raw)
        listing = None
        if why is None:
            try:
                listing = decode_listing(self.repo.read_tree(tree))
            except (ChuteError, ValueError, KeyError) as exc:
                why = str(exc)
        if listing is None:
            found.append(("", "dir", f"listing unreadable: {why}"))
        else:
            for entry in listing:
                found.extend(self._entry(entry))
        self._trees[tree.raw] = found
        return found

    def _entry(self, entry: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
        name = entry["name"]
        if entry["type"] == "dir":
            for rel, kind, why in self._tree(ChunkId.from_hex(entry["tree"])):
                yield (f"{name}/{rel}" if rel else name), kind, why
            return
        problems = []
        for hexid in entry.get("chunks", ()):
            raw = bytes.fromhex(hexid)
            self.used.add(raw)
            problem = self._object_problem(raw)
            if problem is not None:
                problems.append(problem)
        if problems:
            yield name, "file", problems[0]

    def _object_problem(self, raw: bytes) -> str | None:
        if raw in self.damaged:
            return self.damaged[raw]
        if ChunkId(raw) not in self.index:
            self.missing.add(raw)
            return f"object {raw.hex()[:16]} is missing"
        return None

    def graph(self, snapshot_iris: set[str]) -> None:
        in_graph = {SnapshotName.parse(iri).path for iri in snapshot_iris}
        live = {n.path for n in self.layout.snapshots()}
        lagging = live - in_graph
        if lagging:
            self.report.notes.append(
                f"the graph lacks {len(lagging)} snapshot(s); the next command that opens it "
                "adds them"
            )
        for path in sorted(in_graph - live):
            files = self.layout.blobs.get(path)
            if files is not None and files.tombstone:
                self.report.notes.append(
                    f"the graph still lists forgotten {path}; the next command that opens it "
                    "drops it"
                )
            else:
                self.report.damage.append(f"{path}: in the graph, but its index.json is gone")
                self.report.broken.append(Broken(path, "", "snapshot", "its index.json is gone"))

    def finish(self) -> None:
        if self.missing:
            self.report.damage.append(
                f"{len(self.missing)} object(s) that snapshots use are missing from the repository"
            )
        for raw, why in sorted(self.damaged.items(), key=lambda item: item[1]):
            if raw in self.used:
                self.report.damage.append(why)
            else:
                self.report.notes.append(f"{why} (object {raw.hex()[:16]}, which nothing uses)")
        self.report.notes.extend(self.stray)
        self.report.damage = sorted(set(self.report.damage))
        self.report.broken.sort(key=lambda b: (b.snapshot, b.path))


def _by_first_window(table: bytes, window: int) -> dict[int, list[Record]]:
    grouped: dict[int, list[Record]] = {}
    for record in RECORD.iter_unpack(table):
        grouped.setdefault(record[1] // window, []).append(record)
    return grouped


def _verify(repo: Repository, cipher: BlobCipher, envelope: bytes, raw: bytes, otype: int) -> str:
    """Return why an object is bad, or "" if it opens and matches its id."""
    try:
        payload, flags = cipher.open(envelope, otype, raw)
        plain = zstandard.ZstdDecompressor().decompress(payload) if flags & F_ZSTD else payload
    except (IntegrityError, zstandard.ZstdError) as exc:
        return f"object {raw.hex()[:16]}: {exc}"
    check = repo.hasher.chunk_id(plain) if otype == T_DATA else repo.hasher.tree_id(plain)
    if check.raw != raw:
        return f"object {raw.hex()[:16]} does not match its id"
    return ""


def check(
    repo: Repository, graph_snapshots: set[str] | None = None, read: Subset | None = None
) -> CheckReport:
    """Check a repository (the caller holds a shared lock).

    `graph_snapshots` are the snapshot IRIs of the graph (History.snapshot_iris), to
    compare with the repository; `read` makes check read that subset of the windows.
    """
    repo.reset_index()
    report = CheckReport()
    checker = _Checker(repo, repo.layout(), report)
    checker.blobs_and_windows()
    checker.tombstones()
    if read is not None:
        checker.read_data(read)
    checker.snapshots()
    if graph_snapshots is not None:
        checker.graph(graph_snapshots)
    checker.finish()
    return report
