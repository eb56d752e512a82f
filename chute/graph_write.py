"""The triples of one snapshot: its own node and the entry versions it adds.

A snapshot's tree comes from its listings (canonical JSON, see `chute.tree`),
taken from a dict when the caller has them (a put just built them; the
synthetic history of `chute.bench.graph_scale` makes them up) and otherwise
read from the repository through the `TreeSource` protocol.

Entry versions have content-addressed IRIs: a keyed hash of the entry's
path and canonical text. The walk writes the versions that the previous
snapshot's version of the same directory did not hold, and stops at every
directory version the graph already has, so an unchanged subtree costs
nothing. (A file version found elsewhere in the graph is written again:
the same triples, a set, so nothing changes.) What the walk saw (the
children of each new directory version, the path of each new node) goes
into the TreeView of the change index (`chute.graph_changes`), which needs
it before anything is committed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

import pyoxigraph as ox

from chute import graph_load
from chute.graph_changes import WALK_GROUP, TreeView
from chute.graph_lines import (
    Attributes,
    contains_head,
    directory_type,
    root_lines,
    text_of,
    version_lines,
)
from chute.graph_terms import DIRECTORY, PROV, RDF, ROOT, SNAPSHOT, A, c, dt, n
from chute.ids import ChunkId, SnapshotName, parse_timestamp
from chute.tree import Entry, decode_listing_texts

if TYPE_CHECKING:
    from chute.crypto import IdHasher
    from chute.repository import BlobIndex

Term = ox.NamedNode | ox.Literal
_Pending = tuple[str, str, ChunkId, str | None]  # a new directory version: IRI, path, tree, old IRI


class TreeSource(Protocol):
    """Where listings come from: a repository, or anything with its hasher and trees."""

    @property
    def hasher(self) -> IdHasher:
        """The keyed id function (entry IRIs are keyed hashes)."""
        ...

    def read_tree(self, oid: ChunkId) -> bytes:
        """Return a listing's canonical bytes."""
        ...


class SnapshotWriter:
    """Write the triples of one snapshot, stopping at versions the graph already has.

    The triples are N-Triples lines in two parts. `commit` is what makes the
    snapshot visible and must be written in one transaction: the snapshot's
    own triples, its place in the span index, and the `rdf:type` of each new
    directory version (a directory version is *known*, so the next walk
    stops there, only once it has a type). Everything else — the properties
    of every new version, `chute:contains`, the types of files and hashes,
    new spans — may go ahead (`ahead`): with a `bulk` sink (`chute.graph_load`:
    Oxigraph's bulk loader, no transaction, several times faster; or one
    request each to a SPARQL server) in batches of `BULK_BATCH` lines while
    the walk goes on, so memory stays flat.

    A crash between the two leaves triples that no snapshot reaches: history
    queries start at snapshots and never see them. The snapshot's blob was
    committed before its graph write, so the next sync writes the snapshot
    again; the same content-addressed versions and spans (a set: no
    duplicates) become reachable, and `chute graph rebuild` drops anything
    else. File versions are therefore never skipped as "known" by their
    type: only directory types, written in the transaction, are trusted.
    """

    def __init__(
        self,
        view: TreeView,
        source: TreeSource,
        listings: dict[ChunkId, bytes],
        known: Callable[[list[str]], set[str]],
        previous_root: str | None = None,
        bulk: Callable[[str], None] | None = None,
    ) -> None:
        self.view = view  # gets the children and paths of the versions written here
        self.bulk = bulk
        self.ahead: list[str] = []
        self.commit: list[str] = []
        self._bulked = 0
        self.iris = view.iris
        self.source = source
        self.listings = listings
        self.known = known
        self.previous_root = previous_root
        self.root = ""
        self.attributes = Attributes(self.iris, source.hasher.name_id)

    def add(self, s: ox.NamedNode, p: ox.NamedNode, o: Term) -> None:
        """Add one triple of the snapshot's own (the transaction's) part."""
        self.commit.append(f"{s} {p} {o} .")

    def send_ahead(self, lines: list[str]) -> None:
        """Queue lines that may be written before the transaction; load full batches."""
        self.ahead.extend(lines)
        while self.bulk is not None and len(self.ahead) >= graph_load.BULK_BATCH:
            self._load(graph_load.BULK_BATCH)

    def flush(self) -> None:
        """Load the queued ahead lines now (with a bulk sink)."""
        if self.bulk is not None and self.ahead:
            self._load(len(self.ahead))

    def _load(self, count: int) -> None:
        assert self.bulk is not None
        batch, self.ahead = self.ahead[:count], self.ahead[count:]
        # Joined here: what waits for a load, and is loading, is one string, not a list
        # of line objects (on 50k small files, a peak 15 MiB lower at the same speed).
        self.bulk("\n".join(batch))
        self._bulked += count

    @property
    def written(self) -> int:
        """How many triples went ahead through the bulk sink."""
        return self._bulked

    def listing(self, tree: ChunkId) -> list[tuple[Entry, str]]:
        """Return a listing's entries, each with its canonical text.

        A listing handed over is dropped once read (the walk's lines and the
        loads reuse its memory); a tree that appears again, at another path,
        is read back from the source.
        """
        data = self.listings.pop(tree, None)
        if data is None:
            data = self.source.read_tree(tree)
        return decode_listing_texts(data)

    def snapshot(self, index: BlobIndex) -> None:
        """Add the snapshot's own triples and those of every entry version it adds."""
        name, meta = index.name, index.meta
        uri = self.iris.snapshot(name)
        s = n(uri)
        root_tree = index.root
        self.root = self.iris.entry("dir", self.source.hasher.name_id("root", root_tree.hex))
        root = n(self.root)
        self.add(s, A, SNAPSHOT)
        self.add(s, A, n(PROV + "Entity"))
        for term, value in (
            ("domain", name.domain),
            ("node", name.node),
            ("mount", name.mount),
            ("timestamp", name.timestamp),
            ("hostname", meta.get("hostname", "")),
        ):
            self.add(s, c(term), ox.Literal(value))
        if meta.get("source"):
            self.add(s, c("sourcePath"), ox.Literal(text_of(meta["source"])[0]))
        self.add(s, n(PROV + "generatedAtTime"), dt(parse_timestamp(name.timestamp).timestamp()))
        parent = index.public.get("parent")
        if parent:
            parent_uri = self.iris.snapshot(SnapshotName.parse(parent))
            self.add(s, n(PROV + "wasRevisionOf"), n(parent_uri))
        self.add(s, ROOT, root)
        for tag in meta.get("tags", []):
            self.add(s, c("tag"), ox.Literal(tag))
        for key, value in sorted(meta.get("meta", {}).items()):
            m = n(f"{uri}#meta-{quote(key, safe='')}")
            self.add(s, c("meta"), m)
            self.add(m, A, c("MetaEntry"))
            self.add(m, c("key"), ox.Literal(key))
            self.add(m, n(RDF + "value"), ox.Literal(value))
        stats = meta.get("stats", {})
        self.add(s, c("fileCount"), ox.Literal(int(stats.get("files", 0))))
        self.add(s, c("dirCount"), ox.Literal(int(stats.get("dirs", 0))))
        self.add(s, c("totalSize"), ox.Literal(int(stats.get("bytes_total", 0))))
        self.add(s, c("storedSize"), ox.Literal(int(index.public.get("size", 0))))
        run = n(f"{uri}#run")
        self.add(s, n(PROV + "wasGeneratedBy"), run)
        self.add(run, A, n(PROV + "Activity"))
        self.add(run, n(PROV + "startedAtTime"), dt(float(meta.get("started", 0))))
        self.add(run, n(PROV + "endedAtTime"), dt(float(meta.get("ended", 0))))
        self.add(run, c("chuteVersion"), ox.Literal(str(meta.get("version", ""))))
        if not self.known([self.root]):
            self.add(root, A, DIRECTORY)
            self.send_ahead(root_lines(self.root))
            self.view.pending_paths[self.root] = ""
            self.walk(self.root, root_tree)

    def walk(self, root: str, tree: ChunkId) -> None:
        """Add the new versions below a new directory version, depth first.

        Each new directory version is walked beside the previous snapshot's
        version of the same directory: a child that was there already is
        known without asking the store. On a SPARQL server directories go
        `WALK_GROUP` at a time, and the server is asked about a group's
        previous versions and new subdirectories in one request each. The
        embedded store answers as fast one directory at a time, and a group
        decodes its listings together: 64 at a time there, a put of 5%
        changes to `mixed` peaked 9 MiB higher.
        """
        size = WALK_GROUP if self.view.remote else 1
        stack: list[_Pending] = [(root, "", tree, self.previous_root)]
        while stack:
            group = stack[-size:]
            del stack[-size:]
            self.view.prefetch([old for *_, old in group if old])
            listings = [self._children(path, tree) for _, path, tree, _ in group]
            befores = [set(self.view.children(old)) if old else set() for *_, old in group]
            known = self.known(
                [
                    iri
                    for children, before in zip(listings, befores, strict=True)
                    for entry, _, iri in children
                    if entry["type"] == "dir" and iri not in before
                ]
            )
            for (parent_iri, _, _, _), children, before in zip(
                group, listings, befores, strict=True
            ):
                stack.extend(self._write_children(parent_iri, children, before, known))

    def _children(self, path: str, tree: ChunkId) -> list[tuple[Entry, str, str]]:
        """Return a listing's entries with their paths and IRIs."""
        name_id = self.source.hasher.name_id
        entry_iri = self.iris.entry
        children = []
        for entry, text in self.listing(tree):
            child_path = f"{path}/{entry['name']}" if path else entry["name"]
            kind = "dir" if entry["type"] == "dir" else "file"
            children.append((entry, child_path, entry_iri(kind, name_id(kind, child_path, text))))
        return children

    def _write_children(
        self,
        parent_iri: str,
        children: list[tuple[Entry, str, str]],
        before: set[str],
        known: set[str],
    ) -> list[_Pending]:
        """Write one directory's new children; return its new subdirectories to walk."""
        paths = self.view.pending_paths
        parent = contains_head(parent_iri)
        kids: list[str] = []
        lines: list[str] = []
        new_dirs: list[tuple[str, str, ChunkId]] = []
        for entry, child_path, iri in children:
            kids.append(iri)
            lines.append(f"{parent}{iri}> .")
            if iri in before or iri in paths or iri in known:
                continue
            version_lines(lines, self.iris, self.attributes, iri, child_path, entry)
            if entry["type"] == "dir":
                paths[iri] = child_path  # only a directory's path is ever asked for
                self.commit.append(directory_type(iri))
                new_dirs.append((iri, child_path, ChunkId.from_hex(entry["tree"])))
        self.view.pending_children[parent_iri] = kids
        self.send_ahead(lines)
        if not new_dirs:
            return []
        gone = before.difference(kids)
        olds = {self.view.path(x): x for x in gone if self.iris.is_dir(x)}
        return [(iri, p, t, olds.get(p)) for iri, p, t in new_dirs]
