"""`chute prune`: delete what no kept snapshot uses, repack what is mostly unused.

Under an exclusive lock (see chute.locking), prune

1. walks the trees of every live snapshot and collects the ids they use
   (a tree it cannot read stops it before anything is deleted: what lies
   below is unknown); a blob whose tombstone fails to authenticate counts
   as live, so a forged tombstone cannot make prune delete a snapshot;
2. resolves each used id through the chunk index, as a restore would, and
   adds up per window how many bytes those objects occupy;
3. plans: a window with no used byte goes; of the partly used windows, the
   emptiest are repacked until the unused bytes left are within
   `--max-unused` (restic's rule: `p%` allows p% of the repository to be
   unused, a size allows that many bytes, `unlimited` repacks nothing).
   Repacking a window moves every used object that touches it, so the
   neighbours it spans lose those bytes too (and may go altogether);
4. copies the objects to move into a new pack blob,
   `packs/<timestamp>-<random>`: each is authenticated and checked against
   its id, then sealed again under the pack's own subkey, compressed bytes
   kept as they are. The pack's `index.json` (its sealed table, written
   last) is the commit point: from then on the objects live twice;
5. deletes the planned windows. The chunk index leaves out records whose
   window is gone (chute.layout), so each deletion makes the index find
   the pack's copy instead, and nothing is ever unreachable in between;
6. deletes the index.json of forgotten blobs and packs that have no window
   left (keeping the tombstone), and the leftovers of interrupted puts and
   prunes (windows and claims of blobs that never got an index.json; the
   exclusive lock guarantees that no put is writing one).

A kill at any point leaves only a state that an earlier step made safe:
before 4's commit, a pack without index.json (a leftover); after it,
duplicates and some of the windows still there. The next prune finishes
the work. A storage peer sees windows disappear and a new pack appear: the
amount of data still used in the windows that were repacked, nothing else.
It can match the sizes of moved objects (envelope headers are in clear),
as it could match them in the old windows.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import json
import os
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zstandard

from chute.compression import ZSTD_LEVEL
from chute.crypto import F_ZSTD, SALT_SIZE, T_DATA, BlobCipher
from chute.errors import IntegrityError, NotFound, StorageError, UsageError
from chute.ids import ChunkId, SnapshotName, timestamp_now
from chute.layout import INDEX, PACKS, BlobFiles, Layout
from chute.repository import FORMAT_VERSION, Repository, pack_table
from chute.tombstone import is_forgotten
from chute.tree import decode_listing

KEEP, DELETE, REPACK = "keep", "delete", "repack"
DEFAULT_MAX_UNUSED = "5%"
_SIZE = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

Limit = Callable[[int], float]
Record = tuple[bytes, int, int, int]  # id, offset, length, type


def parse_max_unused(text: str) -> Limit:
    """Parse `--max-unused`: `5%`, a size such as `100M`, or `unlimited`."""
    value = text.strip().lower()
    if value == "unlimited":
        return lambda used: float("inf")
    try:
        if value.endswith("%"):
            percent = float(value[:-1])
            if not 0 <= percent < 100:
                raise ValueError(value)
            return lambda used: used * percent / (100 - percent)
        number, unit = (value[:-1], value[-1]) if value[-1:] in "kmgt" else (value, "")
        limit = float(number) * _SIZE[unit]
        if limit < 0:
            raise ValueError(value)
    except ValueError:
        raise UsageError(f"bad --max-unused {text!r}: use e.g. 5%, 100M or unlimited") from None
    return lambda used: limit


@dataclass
class Window:
    """One window of a blob, and how much of it live objects use."""

    blob: str
    number: int
    length: int
    used: int = 0
    status: str = KEEP
    objects: list[Record] = field(default_factory=list)

    @property
    def unused(self) -> int:
        return self.length - self.used


@dataclass
class PruneReport:
    """What prune found and did (or, in a dry run, would do)."""

    snapshots: int = 0
    objects_live: int = 0
    objects_missing: int = 0
    bytes_used: int = 0
    bytes_unused_before: int = 0
    bytes_unused_after: int = 0
    windows: int = 0
    windows_deleted: int = 0
    windows_repacked: int = 0
    objects_moved: int = 0
    bytes_deleted: int = 0
    bytes_written: int = 0
    blobs_removed: int = 0
    leftovers_removed: int = 0
    pack: str | None = None
    dry_run: bool = False
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Plan:
    windows: dict[tuple[str, int], Window]
    blobs: dict[str, BlobFiles]
    publics: dict[str, dict[str, Any]]
    removable: set[str]  # blobs whose index.json may go once no window is left
    moves: list[tuple[str, Record]]
    leftovers: list[BlobFiles]


def prune(
    repo: Repository, max_unused: str = DEFAULT_MAX_UNUSED, dry_run: bool = False
) -> PruneReport:
    """Run prune on a repository the caller holds an exclusive lock on."""
    started = time.monotonic()
    limit = parse_max_unused(max_unused)
    report = PruneReport(dry_run=dry_run)
    repo.reset_index()
    layout = repo.layout()
    plan = _plan(repo, layout, limit, report)
    if not dry_run:
        _execute(repo, plan, report)
        repo.reset_index()
    report.seconds = round(time.monotonic() - started, 3)
    return report


# --- planning -------------------------------------------------------------


def _plan(repo: Repository, layout: Layout, limit: Limit, report: PruneReport) -> _Plan:
    roots, removable = _roots(repo, layout, report)
    live = _referenced(repo, roots)
    index = repo.index()
    plan = _Plan({}, layout.blobs, {}, removable, [], layout.unfinished())
    for blob in layout.indexed():
        if not blob.windows:
            continue
        public = _public(repo, blob.path)
        if public is None:
            if blob.path not in removable:
                raise IntegrityError(
                    f"prune stopped, nothing deleted: index of {blob.path} is malformed; "
                    "run `chute check`, or forget that snapshot"
                )
            report.warnings.append(f"index of {blob.path} is malformed: its windows go")
            for m, name in blob.windows.items():
                plan.windows[(blob.path, m)] = Window(blob.path, m, repo.store.size(name) or 0)
            continue
        plan.publics[blob.path] = public
        size, window = int(public["size"]), int(public["window"])
        for m in blob.windows:
            length = max(0, min(window, size - m * window))
            plan.windows[(blob.path, m)] = Window(blob.path, m, length)
    for raw in live:
        try:
            loc = index.get(ChunkId(raw))
        except NotFound:
            report.objects_missing += 1
            continue
        report.objects_live += 1
        record = (raw, loc.offset, loc.length, loc.otype)
        for win, overlap in _overlaps(plan, loc.blob, loc.offset, loc.length):
            win.used += overlap
            win.objects.append(record)
    if report.objects_missing:
        report.warnings.append(
            f"{report.objects_missing} object(s) that kept snapshots use are missing: "
            "run `chute check`"
        )
    for win in plan.windows.values():
        if win.used == 0:
            win.status = DELETE
    report.windows = len(plan.windows)
    report.bytes_used = sum(w.used for w in plan.windows.values())
    report.bytes_unused_before = sum(w.unused for w in plan.windows.values())
    _choose_repacks(plan, limit(report.bytes_used))
    report.bytes_unused_after = sum(w.unused for w in plan.windows.values() if w.status == KEEP)
    report.windows_deleted = sum(w.status == DELETE for w in plan.windows.values())
    report.windows_repacked = sum(w.status == REPACK for w in plan.windows.values())
    report.bytes_deleted = sum(w.length for w in plan.windows.values() if w.status != KEEP)
    report.objects_moved = len(plan.moves)
    report.bytes_written = sum(r[2] for _, r in plan.moves)
    report.leftovers_removed = len(plan.leftovers)
    report.blobs_removed = sum(
        1 for path in removable if _all_gone(plan, path) and plan.blobs[path].index
    )
    return plan


def _roots(repo: Repository, layout: Layout, report: PruneReport) -> tuple[list[ChunkId], set[str]]:
    """The root trees to keep, and the blobs whose index may go once they hold nothing used."""
    keep: list[SnapshotName] = list(layout.snapshots())
    removable = {b.path for b in layout.indexed() if b.is_pack}
    for blob in layout.forgotten():
        name = blob.snapshot
        if not blob.index or name is None:
            continue
        if is_forgotten(repo.store, repo.key, blob.path):
            removable.add(blob.path)
        else:
            keep.append(name)
            report.warnings.append(f"tombstone of {blob.path} fails to authenticate: kept")
    report.snapshots = len(keep)
    roots = []
    for name in keep:
        try:
            roots.append(repo.read_index(name).root)
        except (IntegrityError, NotFound, StorageError) as exc:
            raise IntegrityError(
                f"prune stopped, nothing deleted: the index of {name.path} cannot be read ({exc}); "
                "run `chute check`, or forget that snapshot"
            ) from None
    return roots, removable


def _referenced(repo: Repository, roots: list[ChunkId]) -> set[bytes]:
    """Every tree and chunk id the given trees use."""
    seen: set[bytes] = set()
    live: set[bytes] = set()
    stack = list(roots)
    while stack:
        tree = stack.pop()
        if tree.raw in seen:
            continue
        seen.add(tree.raw)
        live.add(tree.raw)
        try:
            listing = decode_listing(repo.read_tree(tree))
        except (IntegrityError, NotFound, StorageError, ValueError) as exc:
            raise IntegrityError(
                f"prune stopped, nothing deleted: listing {tree.hex[:16]} cannot be read ({exc}); "
                "run `chute check`"
            ) from None
        for entry in listing:
            if entry["type"] == "dir":
                stack.append(ChunkId.from_hex(entry["tree"]))
            else:
                live.update(bytes.fromhex(h) for h in entry.get("chunks", ()))
    return live


def _public(repo: Repository, blob: str) -> dict[str, Any] | None:
    """A blob's public index fields, None if they are malformed."""
    try:
        public: dict[str, Any] = json.loads(repo.store.get(f"{blob}/{INDEX}"))
        if int(public["size"]) < 0 or int(public["window"]) <= 0:
            return None
        base64.b64decode(public["salt"])
    except (ValueError, KeyError, TypeError):
        return None
    return public


def _overlaps(plan: _Plan, blob: str, offset: int, length: int) -> list[tuple[Window, int]]:
    found: list[tuple[Window, int]] = []
    end = offset + length
    window = int(plan.publics[blob]["window"]) if blob in plan.publics else 0
    if not window:
        return found
    for m in range(offset // window, (end - 1) // window + 1):
        win = plan.windows.get((blob, m))
        if win is not None:
            found.append((win, min(end, (m + 1) * window) - max(offset, m * window)))
    return found


def _choose_repacks(plan: _Plan, allowed: float) -> None:
    """Repack the emptiest partly used windows until the unused bytes are within `allowed`.

    Repacking a window moves objects that also lie in its neighbours, which
    then hold less: they are queued again with their new share.
    """
    unused = sum(w.unused for w in plan.windows.values() if w.status == KEEP)
    heap = [_entry(w) for w in plan.windows.values() if w.status == KEEP and w.unused]
    heapq.heapify(heap)
    moved: set[tuple[str, int]] = set()
    while heap and unused > allowed:
        share, blob, number = heapq.heappop(heap)
        win = plan.windows[(blob, number)]
        if win.status != KEEP or (share, blob, number) != _entry(win):
            continue  # repacked or deleted meanwhile, or queued again with a newer share
        win.status = REPACK
        unused -= win.unused
        for record in win.objects:
            if (blob, record[1]) in moved:
                continue
            moved.add((blob, record[1]))
            plan.moves.append((blob, record))
            for other, overlap in _overlaps(plan, blob, record[1], record[2]):
                if other is win or other.status != KEEP:
                    continue
                other.used -= overlap
                unused += overlap
                if other.used == 0:
                    other.status = DELETE
                    unused -= other.length
                else:
                    heapq.heappush(heap, _entry(other))
    plan.moves.sort(key=lambda move: (move[0], move[1][1]))


def _entry(win: Window) -> tuple[float, str, int]:
    """Heap order: the largest unused share first."""
    return (-win.unused / max(win.length, 1), win.blob, win.number)


def _all_gone(plan: _Plan, blob: str) -> bool:
    return all(
        plan.windows.get((blob, m), Window(blob, m, 0, status=DELETE)).status != KEEP
        for m in plan.blobs[blob].windows
    )


# --- doing it ---------------------------------------------------------------


def _execute(repo: Repository, plan: _Plan, report: PruneReport) -> None:
    if plan.moves:
        writer = PackWriter(repo)
        ciphers: dict[str, BlobCipher] = {}
        for blob, record in plan.moves:
            cipher = ciphers.get(blob)
            if cipher is None:
                salt = base64.b64decode(plan.publics[blob]["salt"])
                cipher = ciphers[blob] = repo.key.blob_cipher(salt)
            payload, flags = _open_verified(repo, cipher, blob, record, plan)
            writer.add(ChunkId(record[0]), record[3], payload, flags)
        report.pack = writer.commit()
    for win in sorted(plan.windows.values(), key=lambda w: (w.blob, w.number)):
        if win.status != KEEP:
            repo.store.delete(plan.blobs[win.blob].windows[win.number])
    for path in sorted(plan.removable):
        if plan.blobs[path].index and _all_gone(plan, path):
            _remove_blob(repo, plan.blobs[path], keep_index=False)
    for leftover in plan.leftovers:
        _remove_blob(repo, leftover, keep_index=True)


def _open_verified(
    repo: Repository, cipher: BlobCipher, blob: str, record: Record, plan: _Plan
) -> tuple[bytes, int]:
    raw, offset, length, otype = record
    window = int(plan.publics[blob]["window"])
    try:
        envelope = repo.read_stream(blob, offset, length, window)
        payload, flags = cipher.open(envelope, otype, raw)
        plain = zstandard.ZstdDecompressor().decompress(payload) if flags & F_ZSTD else payload
    except (IntegrityError, NotFound, StorageError, zstandard.ZstdError) as exc:
        raise IntegrityError(
            f"prune stopped before deleting anything: object {raw.hex()[:16]} in {blob} "
            f"cannot be copied ({exc}); run `chute check`"
        ) from None
    hasher = repo.hasher
    check = hasher.chunk_id(plain) if otype == T_DATA else hasher.tree_id(plain)
    if check.raw != raw:
        raise IntegrityError(
            f"prune stopped before deleting anything: object {raw.hex()[:16]} in {blob} "
            "does not match its id; run `chute check`"
        )
    return payload, flags


def _remove_blob(repo: Repository, blob: BlobFiles, keep_index: bool) -> None:
    """Delete a blob's windows, then its index.json and claim; a tombstone always stays."""
    for m in sorted(blob.windows):
        repo.store.delete(blob.windows[m])
    if blob.index and not keep_index:
        repo.store.delete(f"{blob.path}/{INDEX}")
        repo.drop_cached_table(blob.path)
    if blob.claim:
        repo.store.delete(f"{blob.path}/claim")


class PackWriter:
    """Write the objects prune moves into a new pack blob; commit with its index.json."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.path = f"{PACKS}/{timestamp_now()}-{uuid.uuid4().hex[:8]}"
        self.salt = os.urandom(SALT_SIZE)
        self.cipher = repo.key.blob_cipher(self.salt)
        self.window = repo.window
        self._buffer = bytearray()
        self._offset = 0
        self._number = 0
        self._hashes: list[str] = []
        self._checksum = hashlib.sha256()
        self._records: list[Record] = []

    def add(self, oid: ChunkId, otype: int, payload: bytes, flags: int) -> None:
        """Seal an object's (possibly compressed) payload under the pack's subkey and append it."""
        envelope = self.cipher.seal(otype, oid.raw, payload, flags)
        self._records.append((oid.raw, self._offset, len(envelope), otype))
        self._offset += len(envelope)
        self._buffer += envelope
        while len(self._buffer) >= self.window:
            self._flush(self.window)

    def _flush(self, size: int) -> None:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        self._checksum.update(data)
        self._hashes.append(hashlib.sha256(data).hexdigest())
        self.repo.store.put(f"{self.path}/0/{self.window}/{self._number}", data)
        self._number += 1

    def commit(self) -> str:
        """Write the last window, then index.json; return the pack's name."""
        if self._buffer:
            self._flush(len(self._buffer))
        meta = json.dumps({"kind": "pack", "created": time.time()}).encode()
        body = struct.pack(">I", len(meta)) + meta + pack_table(self._records)
        packed = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(body)
        sealed = self.cipher.seal_index(packed, self.path.encode())
        public = {
            "version": FORMAT_VERSION,
            "kind": "pack",
            "timestamp": self.path.split("/")[1].split("-")[0],
            "shards": self._number,
            "size": self._offset,
            "checksum": self._checksum.hexdigest(),
            "encrypted": True,
            "window": self.window,
            "windows": self._hashes,
            "salt": base64.b64encode(self.salt).decode(),
            "sealed": base64.b64encode(sealed).decode(),
        }
        self.repo.store.put(f"{self.path}/{INDEX}", json.dumps(public, indent=1).encode() + b"\n")
        return self.path
