"""The history graph: every snapshot as RDF, queryable with SPARQL.

rdflib is the API; the embedded store is Oxigraph on disk (through
oxrdflib), kept under the XDG data directory, never in the repository.

Model (the terms are defined in `ontology/chute.ttl`, shapes in
`ontology/shapes.ttl`): a `chute:Snapshot` (a `prov:Entity`) points with
`chute:root` to a directory version; directory versions `chute:contains`
entry versions (files, symlinks, directories, special files). Version nodes
have content-addressed IRIs (a keyed hash of path + entry), so an unchanged
file or subtree is one node shared by every snapshot that holds it, and the
graph grows with change, not with the number of snapshots. When a snapshot
is added, the walk stops at every directory node the graph already has.

A snapshot's triples are added in one Oxigraph transaction: after a crash
the graph holds all of a snapshot or none of it. `sync` adds any committed
snapshot the graph lacks, so the graph heals itself after an interruption,
and `rebuild` recreates it from the blobs and the key alone.
"""

from __future__ import annotations

import base64
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pyoxigraph as ox
from rdflib import Graph
from rdflib.query import Result

from chute.errors import Locked, StorageError, UsageError
from chute.ids import ChunkId, SnapshotName, parse_timestamp
from chute.repository import BlobIndex, Repository
from chute.tree import Entry, decode_listing, entry_bytes, mode_string

CHUTE = "https://w3id.org/chute/ns#"
NFO = "http://www.semanticdesktop.org/ontologies/2007/03/22/nfo#"
NIE = "http://www.semanticdesktop.org/ontologies/2007/01/19/nie#"
PROV = "http://www.w3.org/ns/prov#"
DCTERMS = "http://purl.org/dc/terms/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
XSD = "http://www.w3.org/2001/XMLSchema#"

PREFIXES: dict[str, str] = {
    "chute": CHUTE,
    "nfo": NFO,
    "nie": NIE,
    "prov": PROV,
    "dcterms": DCTERMS,
    "rdf": RDF,
    "rdfs": RDFS,
    "xsd": XSD,
}

LOCK_WAIT = 30.0

_KIND_CLASS = {"dir": "Directory", "file": "File", "symlink": "Symlink"}


def _n(iri: str) -> ox.NamedNode:
    return ox.NamedNode(iri)


def _c(term: str) -> ox.NamedNode:
    return ox.NamedNode(CHUTE + term)


A = _n(RDF + "type")
XSD_DATETIME = _n(XSD + "dateTime")
XSD_BASE64 = _n(XSD + "base64Binary")


def _dt(seconds: float) -> ox.Literal:
    text = datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
    return ox.Literal(text, datatype=XSD_DATETIME)


def _text(value: str) -> tuple[str, bytes | None]:
    """Return a printable form of a surrogate-escaped name, and its raw bytes if not UTF-8."""
    try:
        value.encode("utf-8")
        return value, None
    except UnicodeEncodeError:
        raw = value.encode("utf-8", "surrogateescape")
        return raw.decode("utf-8", "backslashreplace"), raw


class History:
    """The graph of one repository's snapshots."""

    def __init__(self, path: Path, base: str) -> None:
        self.path = path
        self.base = base.rstrip("/")
        self.store = _open_store(path)
        from oxrdflib import OxigraphStore

        self.graph = Graph(store=OxigraphStore(store=self.store))
        for prefix, ns in PREFIXES.items():
            self.graph.bind(prefix, ns)

    def close(self) -> None:
        """Flush and release the store (and its lock)."""
        self.store.flush()
        self.graph.close()  # drops oxrdflib's reference to the store
        del self.graph
        del self.store

    # --- reading --------------------------------------------------------

    def query(self, text: str) -> Result:
        """Run a SPARQL query with the standard prefixes bound (rdflib result)."""
        try:
            return self.graph.query(text, initNs=PREFIXES)
        except SyntaxError as exc:
            raise UsageError(f"SPARQL syntax error: {exc}") from exc

    def query_native(
        self, text: str, bindings: dict[str, str] | None = None
    ) -> ox.QuerySolutions | ox.QueryBoolean | ox.QueryTriples:
        """Run a SPARQL query on Oxigraph directly (for serialising results).

        `bindings` pre-bind variables: a value written `<...>` is an IRI,
        anything else a plain string literal.
        """
        text = bind_variables(text, bindings or {})
        try:
            return self.store.query(text, prefixes=PREFIXES)
        except SyntaxError as exc:
            raise UsageError(f"SPARQL syntax error: {' '.join(str(exc).split())}") from exc

    def has(self, iri: str) -> bool:
        """Tell whether a node has a type in the graph."""
        return next(self.store.quads_for_pattern(_n(iri), A, None), None) is not None

    def snapshot_iris(self) -> set[str]:
        """Return the IRIs of every snapshot in the graph."""
        quads = self.store.quads_for_pattern(None, A, _c("Snapshot"))
        return {q.subject.value for q in quads if isinstance(q.subject, ox.NamedNode)}

    def triple_count(self) -> int:
        """Return the number of triples in the graph."""
        return len(self.store)

    # --- writing --------------------------------------------------------

    def add_snapshot(
        self, repo: Repository, index: BlobIndex, listings: dict[ChunkId, bytes] | None = None
    ) -> int:
        """Add one snapshot's triples in one transaction; return how many were added."""
        writer = _SnapshotTriples(self, repo, listings or {})
        quads = writer.snapshot(index)
        self.store.extend(quads)
        return len(quads)

    def sync(self, repo: Repository) -> list[SnapshotName]:
        """Add every committed snapshot the graph lacks; return their names."""
        known = self.snapshot_iris()
        added = []
        for name in repo.snapshots():
            if name.uri(self.base) not in known:
                self.add_snapshot(repo, repo.read_index(name))
                added.append(name)
        return added


_TOKENS = re.compile(
    r"""(?P<skip>"{3}.*?"{3}|'{3}.*?'{3}|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'"""
    r"""|<[^<>"{}|^`\\\s]*>|\#[^\n]*)|(?P<var>[?$][A-Za-z_][A-Za-z0-9_]*)""",
    re.DOTALL,
)


def bind_variables(text: str, bindings: dict[str, str]) -> str:
    """Replace `?name` by a constant in a query (outside strings, IRIs and comments).

    A value written `<...>` becomes an IRI, anything else a string literal.
    """
    if not bindings:
        return text
    terms = {}
    for name, value in bindings.items():
        if value[:1] == "<" and value[-1:] == ">":
            try:
                terms[name] = str(_n(value[1:-1]))
            except ValueError as exc:
                raise UsageError(f"bad IRI for ?{name}: {value}") from exc
        else:
            terms[name] = str(ox.Literal(value))
    used: set[str] = set()

    def swap(match: re.Match[str]) -> str:
        var = match.group("var")
        if var and var[1:] in terms:
            used.add(var[1:])
            return terms[var[1:]]
        return match.group(0)

    result = _TOKENS.sub(swap, text)
    unused = set(terms) - used
    if unused:
        raise UsageError(f"the query has no variable ?{sorted(unused)[0]} to bind")
    return result


def rebuild(path: Path, base: str, repo: Repository) -> tuple[History, list[SnapshotName]]:
    """Recreate the graph from the repository's blobs and the key."""
    if path.exists():
        shutil.rmtree(path)
    history = History(path, base)
    return history, history.sync(repo)


def _open_store(path: Path) -> ox.Store:
    path.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            return ox.Store(str(path))
        except OSError as exc:
            if "lock" not in str(exc).lower():
                raise StorageError(f"cannot open the graph at {path}: {exc}") from exc
            if time.monotonic() > deadline:
                raise Locked(f"the graph at {path} is in use by another process") from exc
            time.sleep(0.1)


class _SnapshotTriples:
    """Build the quads of one snapshot, stopping at nodes the graph has."""

    def __init__(self, history: History, repo: Repository, listings: dict[ChunkId, bytes]):
        self.history = history
        self.repo = repo
        self.listings = listings
        self.base = history.base
        self.quads: list[ox.Quad] = []
        self.files = 0
        self.dirs = 0

    def add(self, s: ox.NamedNode, p: ox.NamedNode, o: ox.NamedNode | ox.Literal) -> None:
        self.quads.append(ox.Quad(s, p, o))

    def listing(self, tree: ChunkId) -> list[Entry]:
        data = self.listings.get(tree)
        if data is None:
            data = self.repo.read_tree(tree)
        return decode_listing(data)

    def snapshot(self, index: BlobIndex) -> list[ox.Quad]:
        name, meta = index.name, index.meta
        s = _n(name.uri(self.base))
        root_tree = index.root
        root = _n(f"{self.base}/chute/dir/{self.repo.hasher.name_id('root', root_tree.hex)}")
        self.add(s, A, _c("Snapshot"))
        self.add(s, A, _n(PROV + "Entity"))
        for term, value in (
            ("domain", name.domain),
            ("node", name.node),
            ("mount", name.mount),
            ("timestamp", name.timestamp),
            ("hostname", meta.get("hostname", "")),
        ):
            self.add(s, _c(term), ox.Literal(value))
        if meta.get("source"):
            self.add(s, _c("sourcePath"), ox.Literal(_text(meta["source"])[0]))
        self.add(s, _n(PROV + "generatedAtTime"), _dt(parse_timestamp(name.timestamp).timestamp()))
        parent = index.public.get("parent")
        if parent:
            self.add(s, _n(PROV + "wasRevisionOf"), _n(SnapshotName.parse(parent).uri(self.base)))
        self.add(s, _c("root"), root)
        for tag in meta.get("tags", []):
            self.add(s, _c("tag"), ox.Literal(tag))
        for key, value in sorted(meta.get("meta", {}).items()):
            m = _n(f"{name.uri(self.base)}#meta-{quote(key, safe='')}")
            self.add(s, _c("meta"), m)
            self.add(m, A, _c("MetaEntry"))
            self.add(m, _c("key"), ox.Literal(key))
            self.add(m, _n(RDF + "value"), ox.Literal(value))
        stats = meta.get("stats", {})
        self.add(s, _c("fileCount"), ox.Literal(int(stats.get("files", 0))))
        self.add(s, _c("dirCount"), ox.Literal(int(stats.get("dirs", 0))))
        self.add(s, _c("totalSize"), ox.Literal(int(stats.get("bytes_total", 0))))
        self.add(s, _c("storedSize"), ox.Literal(int(index.public.get("size", 0))))
        run = _n(f"{name.uri(self.base)}#run")
        self.add(s, _n(PROV + "wasGeneratedBy"), run)
        self.add(run, A, _n(PROV + "Activity"))
        self.add(run, _n(PROV + "startedAtTime"), _dt(float(meta.get("started", 0))))
        self.add(run, _n(PROV + "endedAtTime"), _dt(float(meta.get("ended", 0))))
        self.add(run, _c("chuteVersion"), ox.Literal(str(meta.get("version", ""))))
        if not self.history.has(root.value):
            self.add(root, A, _c("Directory"))
            self.add(root, _c("path"), ox.Literal(""))
            self.add(root, _n(NFO + "fileName"), ox.Literal(""))
            self.children(root, "", self.listing(root_tree))
        return self.quads

    def children(self, parent: ox.NamedNode, path: str, entries: list[Entry]) -> None:
        for entry in entries:
            child_path = f"{path}/{entry['name']}" if path else entry["name"]
            node = self.entry_node(child_path, entry)
            self.add(parent, _c("contains"), node)
            if self.history.has(node.value):
                continue
            self.entry(node, child_path, entry)
            if entry["type"] == "dir":
                self.children(node, child_path, self.listing(ChunkId.from_hex(entry["tree"])))

    def entry_node(self, path: str, entry: Entry) -> ox.NamedNode:
        kind = "dir" if entry["type"] == "dir" else "file"
        digest = self.repo.hasher.name_id(kind, path, entry_bytes(entry))
        return _n(f"{self.base}/chute/{kind}/{digest}")

    def entry(self, node: ox.NamedNode, path: str, e: Entry) -> None:
        add = self.add
        add(node, A, _c(_KIND_CLASS.get(e["type"], "Special")))
        name, raw = _text(e["name"])
        add(node, _c("path"), ox.Literal(_text(path)[0]))
        add(node, _n(NFO + "fileName"), ox.Literal(name))
        if raw is not None:
            add(
                node, _c("rawName"), ox.Literal(base64.b64encode(raw).decode(), datatype=XSD_BASE64)
            )
        add(node, _c("mode"), ox.Literal(e["mode"]))
        add(node, _n(NFO + "permissions"), ox.Literal(mode_string(e["mode"])))
        add(node, _c("uid"), ox.Literal(e["uid"]))
        add(node, _c("gid"), ox.Literal(e["gid"]))
        if "user" in e:
            add(node, _c("owner"), ox.Literal(e["user"]))
        if "group" in e:
            add(node, _c("group"), ox.Literal(e["group"]))
        add(node, _n(NFO + "fileLastModified"), _dt(e["mtime"] / 1e9))
        add(node, _c("mtimeNs"), ox.Literal(e["mtime"]))
        for i, (xname, value) in enumerate(sorted(e.get("xattrs", {}).items())):
            x = _n(f"{node.value}#xattr-{i}")
            add(node, _c("xattr"), x)
            add(x, A, _c("ExtendedAttribute"))
            add(x, _c("xattrName"), ox.Literal(xname))
            add(x, _c("xattrValue"), ox.Literal(value, datatype=XSD_BASE64))
        if e["type"] == "file":
            self.file(node, e)
        elif e["type"] == "symlink":
            target, raw_target = _text(e["target"])
            add(node, _c("target"), ox.Literal(target))
            if raw_target is not None:
                encoded = base64.b64encode(raw_target).decode()
                add(node, _c("rawTarget"), ox.Literal(encoded, datatype=XSD_BASE64))
        elif "rdev" in e:
            add(node, _c("rdev"), ox.Literal(e["rdev"]))

    def file(self, node: ox.NamedNode, e: Entry) -> None:
        add = self.add
        add(node, _n(NFO + "fileSize"), ox.Literal(e["size"]))
        digest = e.get("sha256", "")
        h = _n(f"{self.base}/chute/sha256/{digest}")
        add(node, _n(NFO + "hasHash"), h)
        add(h, A, _n(NFO + "FileHash"))
        add(h, _n(NFO + "hashAlgorithm"), ox.Literal("SHA-256"))
        add(h, _n(NFO + "hashValue"), ox.Literal(digest))
        chunks = e.get("chunks", [])
        add(node, _c("chunks"), ox.Literal(" ".join(chunks)))
        add(node, _c("chunkCount"), ox.Literal(len(chunks)))
        if e.get("sparse"):
            add(node, _c("sparse"), ox.Literal(True))
        if "link" in e:
            add(node, _c("hardlinkTo"), ox.Literal(_text(e["link"])[0]))
        if "nlink" in e:
            add(node, _c("nlink"), ox.Literal(e["nlink"]))
