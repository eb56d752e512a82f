"""What a repository holds, from one listing of its store (no key needed).

Every object name falls in one of these kinds:

    config, keys/<id>, locks/<id>                 control objects
    <blob>/index.json                             a blob's manifest (public + sealed table)
    <blob>/0/<n>/<m>                              window m (n bytes) of a blob's stream
    <blob>/claim                                  written first by a put: reserves the name
    <blob>/forgotten                              a sealed tombstone: the snapshot was forgotten

`<blob>` is a snapshot's name (`<domain>/<node>/<mount>/<timestamp>`) or a
pack made by prune (`packs/<timestamp>-<random>`), which holds objects moved
out of partly used windows and has no snapshot of its own.

A snapshot is *live* when its blob has an `index.json` and no tombstone.
The chunk index is the union of the tables of every blob with an
`index.json` (forgotten ones and packs included), minus the records that
lie in windows that are gone: prune deletes a window only once nothing
live resolves to it, so "the window exists" is the truth the index
follows, and an object in a missing window (pruned or lost) is never
taken as stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from chute.errors import UsageError
from chute.ids import SnapshotName

INDEX = "index.json"
TOMBSTONE = "forgotten"
CLAIM = "claim"
PACKS = "packs"
CONTROL_PREFIXES = ("keys/", "locks/")


@dataclass
class BlobFiles:
    """The objects stored under one blob name."""

    path: str
    index: bool = False
    tombstone: bool = False
    claim: bool = False
    windows: dict[int, str] = field(default_factory=dict)  # m -> object name
    window_size: int | None = None

    @property
    def is_pack(self) -> bool:
        return self.path.startswith(PACKS + "/")

    @property
    def snapshot(self) -> SnapshotName | None:
        """The snapshot this blob is, or None for a pack or a name that is no snapshot's."""
        if self.is_pack:
            return None
        try:
            return SnapshotName.parse(self.path)
        except UsageError:
            return None

    @property
    def live(self) -> bool:
        """A committed snapshot that has not been forgotten."""
        return self.index and not self.tombstone and self.snapshot is not None

    def object_names(self) -> list[str]:
        """Every object of this blob, windows first and tombstone last (deletion order)."""
        names = [self.windows[m] for m in sorted(self.windows)]
        if self.index:
            names.append(f"{self.path}/{INDEX}")
        if self.claim:
            names.append(f"{self.path}/{CLAIM}")
        if self.tombstone:
            names.append(f"{self.path}/{TOMBSTONE}")
        return names


@dataclass
class Layout:
    """A repository's objects, grouped by blob."""

    blobs: dict[str, BlobFiles] = field(default_factory=dict)
    locks: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    config: bool = False

    def blob(self, path: str) -> BlobFiles:
        found = self.blobs.get(path)
        if found is None:
            found = self.blobs[path] = BlobFiles(path)
        return found

    def snapshots(self) -> list[SnapshotName]:
        """Live snapshots, oldest first."""
        names = [b.snapshot for b in self.blobs.values() if b.live]
        return sorted((n for n in names if n is not None), key=lambda n: (n.timestamp, n.path))

    def indexed(self) -> list[BlobFiles]:
        """Every blob with an index.json, in index order: snapshots by time, then packs."""
        snaps = [b for b in self.blobs.values() if b.index and b.snapshot is not None]
        snaps.sort(key=lambda b: (_timestamp(b), b.path))
        packs = sorted((b for b in self.blobs.values() if b.index and b.is_pack), key=_path)
        return snaps + packs

    def forgotten(self) -> list[BlobFiles]:
        """Blobs that carry a tombstone, with or without their index."""
        return sorted((b for b in self.blobs.values() if b.tombstone), key=_path)

    def unfinished(self) -> list[BlobFiles]:
        """Blobs with data but no index.json: an interrupted put or prune (prune removes them)."""
        return sorted(
            (b for b in self.blobs.values() if not b.index and (b.windows or b.claim)),
            key=_path,
        )


def _path(blob: BlobFiles) -> str:
    return blob.path


def _timestamp(blob: BlobFiles) -> str:
    name = blob.snapshot
    return name.timestamp if name is not None else ""


def scan(names: Iterable[str]) -> Layout:
    """Group a store listing into blobs."""
    layout = Layout()
    for name in names:
        if name == "config":
            layout.config = True
            continue
        if name.startswith(CONTROL_PREFIXES):
            (layout.keys if name.startswith("keys/") else layout.locks).append(name)
            continue
        parts = name.split("/")
        last = parts[-1]
        if len(parts) >= 2 and last in (INDEX, TOMBSTONE, CLAIM):
            blob = layout.blob("/".join(parts[:-1]))
            if last == INDEX:
                blob.index = True
            elif last == TOMBSTONE:
                blob.tombstone = True
            else:
                blob.claim = True
        elif len(parts) >= 4 and parts[-3] == "0" and parts[-2].isdigit() and last.isdigit():
            blob = layout.blob("/".join(parts[:-3]))
            blob.windows[int(last)] = name
            blob.window_size = int(parts[-2])
        else:
            layout.unknown.append(name)
    return layout
