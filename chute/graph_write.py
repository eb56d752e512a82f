"""The triples of one snapshot: its own node and the entry versions it adds.

A snapshot's tree comes from its listings (canonical JSON, see `chute.tree`),
taken from a dict when the caller has them (a put just built them; the
synthetic history of `chute.bench.graph_scale` makes them up) and otherwise
read from the repository through the `TreeSource` protocol.

Entry versions have content-addressed IRIs: a keyed hash of the entry's
path and canonical bytes. The walk emits triples only for versions the
graph lacks and stops at every directory version it already has, so an
unchanged subtree costs nothing. What the walk saw (the children of each new
directory version, the path of each new node) is kept for the change index
(`chute.graph_changes`), which needs it before the quads are committed; they go into its TreeView.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

import pyoxigraph as ox

from chute.graph_changes import TreeView
from chute.graph_terms import (
    CONTAINS,
    HAS_HASH,
    NFO,
    PATH,
    PROV,
    RDF,
    ROOT,
    SNAPSHOT,
    XSD_BASE64,
    A,
    c,
    dt,
    n,
)
from chute.ids import ChunkId, SnapshotName, parse_timestamp
from chute.tree import Entry, decode_listing, entry_bytes, mode_string

if TYPE_CHECKING:
    from chute.crypto import IdHasher
    from chute.repository import BlobIndex

_KIND_CLASS = {"dir": "Directory", "file": "File", "symlink": "Symlink"}

Term = ox.NamedNode | ox.Literal


class TreeSource(Protocol):
    """Where listings come from: a repository, or anything with its hasher and trees."""

    @property
    def hasher(self) -> IdHasher:
        """The keyed id function (entry IRIs are keyed hashes)."""
        ...

    def read_tree(self, oid: ChunkId) -> bytes:
        """Return a listing's canonical bytes."""
        ...


def text_of(value: str) -> tuple[str, bytes | None]:
    """Return a printable form of a surrogate-escaped name, and its raw bytes if not UTF-8."""
    try:
        value.encode("utf-8")
        return value, None
    except UnicodeEncodeError:
        raw = value.encode("utf-8", "surrogateescape")
        return raw.decode("utf-8", "backslashreplace"), raw


BULK_BATCH = 100_000


class SnapshotWriter:
    """Build the quads of one snapshot, stopping at nodes the graph already has.

    With a `bulk` sink (loading N-Triples into the embedded store), a large snapshot's
    entry properties go ahead in batches of `BULK_BATCH` quads while the walk
    goes on, so memory stays flat and Oxigraph's bulk loader does the work.
    Only `rdf:type` quads are held back for the final transaction, together
    with the snapshot's own quads and its change index: the graph knows a
    version (`has` asks for its type) only once that transaction commits, and
    by then every property of it and of everything below it is written. A
    crash in between leaves untyped property quads that no query reaching a
    snapshot can see; the next add of the same versions writes them again
    (a set: no duplicates) and `chute graph rebuild` drops them.
    """

    def __init__(
        self,
        view: TreeView,
        source: TreeSource,
        listings: dict[ChunkId, bytes],
        known: Callable[[str], bool],
        previous_root: str | None = None,
        bulk: Callable[[bytes], None] | None = None,
    ) -> None:
        self.view = view  # gets the children and paths of the versions written here
        self.bulk = bulk
        self._batch: list[str] = []  # N-Triples lines: cheaper to make than Quad objects
        self._bulked = 0
        self._in_walk = False
        self.iris = view.iris
        self.source = source
        self.listings = listings
        self.known = known
        self.previous_root = previous_root
        self.quads: list[ox.Quad] = []
        self.root = ""

    def add(self, s: ox.NamedNode, p: ox.NamedNode, o: Term) -> None:
        if self._in_walk and self.bulk is not None and p != A:
            self._batch.append(f"{s} {p} {o} .")
            if len(self._batch) >= BULK_BATCH:
                self._flush_bulk()
        else:
            self.quads.append(ox.Quad(s, p, o))

    def _flush_bulk(self) -> None:
        assert self.bulk is not None
        self.bulk("\n".join(self._batch).encode())
        self._bulked += len(self._batch)
        self._batch = []

    @property
    def written(self) -> int:
        """How many quads went ahead through the bulk path."""
        return self._bulked

    def listing(self, tree: ChunkId) -> list[Entry]:
        data = self.listings.get(tree)
        if data is None:
            data = self.source.read_tree(tree)
        return decode_listing(data)

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
        if not self.known(self.root):
            self.add(root, A, c("Directory"))
            self.add(root, PATH, ox.Literal(""))
            self.add(root, n(NFO + "fileName"), ox.Literal(""))
            self.view.pending_paths[self.root] = ""
            self.walk(self.root, root_tree)

    def walk(self, root: str, tree: ChunkId) -> None:
        """Add the new versions below a new directory version, depth first.

        Each new directory version is walked beside the previous snapshot's
        version of the same directory: a child that was there already is
        known without asking the store.
        """
        self._in_walk = True
        try:
            self._walk(root, tree)
        finally:
            self._in_walk = False
        if self._batch and self._bulked:
            self._flush_bulk()
        elif self._batch:  # a small change: everything goes in the one final transaction
            lines = "\n".join(self._batch).encode()
            self.quads.extend(ox.parse(lines, format=ox.RdfFormat.N_TRIPLES))
            self._batch = []

    def _walk(self, root: str, tree: ChunkId) -> None:
        paths = self.view.pending_paths
        stack: list[tuple[str, str, ChunkId, str | None]] = [(root, "", tree, self.previous_root)]
        while stack:
            parent_iri, path, tree, old = stack.pop()
            before = set(self.view.children(old)) if old else set()
            parent = n(parent_iri)
            kids: list[str] = []
            new_dirs: list[tuple[str, str, ChunkId]] = []
            for entry in self.listing(tree):
                child_path = f"{path}/{entry['name']}" if path else entry["name"]
                kind = "dir" if entry["type"] == "dir" else "file"
                digest = self.source.hasher.name_id(kind, child_path, entry_bytes(entry))
                iri = self.iris.entry(kind, digest)
                kids.append(iri)
                node = n(iri)
                self.add(parent, CONTAINS, node)
                if iri in before or iri in paths or self.known(iri):
                    continue
                paths[iri] = child_path
                self.entry(node, child_path, entry)
                if kind == "dir":
                    new_dirs.append((iri, child_path, ChunkId.from_hex(entry["tree"])))
            self.view.pending_children[parent_iri] = kids
            if new_dirs:
                gone = before.difference(kids)
                olds = {self.view.path(x): x for x in gone if self.iris.is_dir(x)}
                stack.extend((iri, p, t, olds.get(p)) for iri, p, t in new_dirs)

    def entry(self, node: ox.NamedNode, path: str, e: Entry) -> None:
        add = self.add
        add(node, A, c(_KIND_CLASS.get(e["type"], "Special")))
        name, raw = text_of(e["name"])
        add(node, PATH, ox.Literal(text_of(path)[0]))
        add(node, n(NFO + "fileName"), ox.Literal(name))
        if raw is not None:
            add(node, c("rawName"), ox.Literal(base64.b64encode(raw).decode(), datatype=XSD_BASE64))
        add(node, c("mode"), ox.Literal(e["mode"]))
        add(node, n(NFO + "permissions"), ox.Literal(mode_string(e["mode"])))
        add(node, c("uid"), ox.Literal(e["uid"]))
        add(node, c("gid"), ox.Literal(e["gid"]))
        if "user" in e:
            add(node, c("owner"), ox.Literal(e["user"]))
        if "group" in e:
            add(node, c("group"), ox.Literal(e["group"]))
        add(node, n(NFO + "fileLastModified"), dt(e["mtime"] / 1e9))
        add(node, c("mtimeNs"), ox.Literal(e["mtime"]))
        for i, (xname, value) in enumerate(sorted(e.get("xattrs", {}).items())):
            x = n(f"{node.value}#xattr-{i}")
            add(node, c("xattr"), x)
            add(x, A, c("ExtendedAttribute"))
            add(x, c("xattrName"), ox.Literal(xname))
            add(x, c("xattrValue"), ox.Literal(value, datatype=XSD_BASE64))
        if e["type"] == "file":
            self.file(node, e)
        elif e["type"] == "symlink":
            target, raw_target = text_of(e["target"])
            add(node, c("target"), ox.Literal(target))
            if raw_target is not None:
                encoded = base64.b64encode(raw_target).decode()
                add(node, c("rawTarget"), ox.Literal(encoded, datatype=XSD_BASE64))
        elif "rdev" in e:
            add(node, c("rdev"), ox.Literal(e["rdev"]))

    def file(self, node: ox.NamedNode, e: Entry) -> None:
        add = self.add
        add(node, n(NFO + "fileSize"), ox.Literal(e["size"]))
        digest = e.get("sha256", "")
        h = n(self.iris.sha256(digest))
        add(node, HAS_HASH, h)
        add(h, A, n(NFO + "FileHash"))
        add(h, n(NFO + "hashAlgorithm"), ox.Literal("SHA-256"))
        add(h, n(NFO + "hashValue"), ox.Literal(digest))
        chunks = e.get("chunks", [])
        add(node, c("chunks"), ox.Literal(" ".join(chunks)))
        add(node, c("chunkCount"), ox.Literal(len(chunks)))
        if e.get("sparse"):
            add(node, c("sparse"), ox.Literal(True))
        if "link" in e:
            add(node, c("hardlinkTo"), ox.Literal(text_of(e["link"])[0]))
        if "nlink" in e:
            add(node, c("nlink"), ox.Literal(e["nlink"]))
