"""The history graph: every snapshot as RDF, queryable with SPARQL.

The embedded store is Oxigraph on disk (pyoxigraph), kept under the XDG
data directory, never in the repository. rdflib is the API for callers who
want it (`History.graph`, through oxrdflib); it is imported only then, so a
command that only runs SPARQL starts fast.

Model (terms in `ontology/chute.ttl`, shapes in `ontology/shapes.ttl`): a
`chute:Snapshot` (a `prov:Entity`) points with `chute:root` to a directory
version; directory versions `chute:contains` entry versions (files,
symlinks, directories, special files). Version nodes have content-addressed
IRIs (a keyed hash of path + entry), so an unchanged file or subtree is one
node shared by every snapshot that holds it (`chute.graph_write`). A span
index records, per mount, each unbroken run of snapshots that hold a
version (`chute.graph_changes`), so "every version of a path", "what
changed between two snapshots" and "when did this disappear" are index
look-ups rather than walks. Both grow with change, not with the number of
snapshots.

Writes are atomic per snapshot. A big snapshot's entry versions go ahead
(`chute.graph_load`): into the embedded store through Oxigraph's bulk
loader (no transaction, several times faster), to a remote server as one
`INSERT DATA` request per batch; then one transaction (a remote server: one
request) makes the snapshot visible: until it commits, no snapshot reaches
what went ahead (see `chute.graph_write`). The common case — a snapshot
newer than all others of its mount — only inserts. Removing a snapshot is
the mirror image: one transaction takes it out of the history, then what
only it held, which nothing reaches any more, goes in batches.
`sync` makes the graph hold exactly the repository's live snapshots
(adding what is missing, removing what was forgotten) and repairs the span
index, so the graph heals itself after an interruption; `rebuild`
recreates it from the blobs and the key alone.

Writing SPARQL that Oxigraph runs fast (the example queries follow this):
it joins a triple pattern per row only when the pattern is alone — a
single pattern in an OPTIONAL, UNION branch or EXISTS, anchored on a
variable that is surely bound; anything else is evaluated on its own and
hash-joined. See `examples/queries/README.md`.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pyoxigraph as ox

from chute.errors import Locked, StorageError, UsageError
from chute.graph_changes import (
    TreeView,
    append_quads,
    delete_subjects,
    departure_lines,
    lines_of,
    orphans,
    owned_nodes,
    recorded,
    removal_lines,
    root_of,
    series_quads,
    snapshot_quads,
    typed,
    unshared_nodes,
)
from chute.graph_load import LENIENT, graph_write_error
from chute.graph_remote import RemoteStore
from chute.graph_terms import (
    CHUTE,
    DCTERMS,
    DIRECTORY,
    MOUNT,
    NFO,
    NIE,
    PREFIXES,
    PROV,
    RDF,
    RDFS,
    SNAPSHOT,
    XSD,
    A,
    Iris,
    n,
)
from chute.ids import ChunkId, SnapshotName

if TYPE_CHECKING:
    from rdflib import Graph
    from rdflib.query import Result

    from chute.crypto import IdHasher
    from chute.graph_write import TreeSource
    from chute.repository import BlobIndex

__all__ = [
    "CHUTE",
    "DCTERMS",
    "NFO",
    "NIE",
    "PREFIXES",
    "PROV",
    "RDF",
    "RDFS",
    "XSD",
    "History",
    "SnapshotSource",
    "bind_variables",
    "rebuild",
]

LOCK_WAIT = 30.0
# Nodes per update when a removed snapshot's own versions go (about 13 triples each).
REMOVE_BATCH = 2000
# Spans per update when a removed snapshot's spans move to the next snapshot or go.
SPAN_BATCH = 5000


class SnapshotSource(Protocol):
    """What `sync` reads: the committed snapshots and their indexes (a Repository)."""

    def snapshots(self) -> list[SnapshotName]:
        """Return the names of all committed snapshots."""
        ...

    def read_index(self, name: SnapshotName) -> BlobIndex:
        """Read and open one snapshot's index."""
        ...

    @property
    def hasher(self) -> IdHasher:
        """The keyed id function (entry IRIs are keyed hashes)."""
        ...

    def read_tree(self, oid: ChunkId) -> bytes:
        """Return a listing's canonical bytes."""
        ...


class History:
    """The graph of one repository's snapshots."""

    def __init__(self, path: Path, base: str, store: ox.Store | None = None) -> None:
        """Open the embedded graph at `path`, or use `store` (remote: chute.graph_remote)."""
        self.path = path
        self.iris = Iris(base)
        self.base = self.iris.base
        self.store = _open_store(path) if store is None else store
        self._graph: Graph | None = None

    @property
    def graph(self) -> Graph:
        """The graph as an rdflib Graph over the same store (imports rdflib on first use)."""
        if self._graph is None:
            from oxrdflib import OxigraphStore
            from rdflib import Graph

            self._graph = Graph(store=OxigraphStore(store=self.store))
            for prefix, ns in PREFIXES.items():
                self._graph.bind(prefix, ns)
        return self._graph

    def close(self) -> None:
        """Flush and release the store (and its lock), even when the flush fails."""
        try:
            self.store.flush()
        except OSError as exc:  # a full disk: what was committed is in the write-ahead log
            raise graph_write_error(exc) from exc
        finally:
            if self._graph is not None:
                self._graph.close()  # drops oxrdflib's reference to the store
                self._graph = None
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

    def select(self, text: str, bindings: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Run a SELECT query; return its rows as dicts of Python values (None if unbound)."""
        result = self.query_native(text, bindings)
        if not isinstance(result, ox.QuerySolutions):
            raise UsageError("the query is not a SELECT query")
        names = [v.value for v in result.variables]
        return [{name: _value(row[name]) for name in names} for row in result]

    def has(self, iri: str) -> bool:
        """Tell whether a node has a type in the graph."""
        return next(self.store.quads_for_pattern(n(iri), A, None), None) is not None

    def known(self, iris: list[str]) -> set[str]:
        """Return those of `iris` that have a type in the graph (a server: asked at once)."""
        if isinstance(self.store, ox.Store):
            return {iri for iri in iris if self.has(iri)}
        return typed(self.store, iris)

    def _has_directories(self) -> bool:
        """Tell whether the graph holds any directory version (else it knows none of them).

        A graph's first snapshot then asks nothing per directory: on 50,000
        small files the embedded store's lookups held the GIL for 0.4 s, and
        a SPARQL server is spared a query per listing. (The walk's own
        directory types commit after it, unseen by it.)
        """
        answer = self.store.query(f"ASK {{ ?version {A} {DIRECTORY} }}")
        assert isinstance(answer, ox.QueryBoolean)
        return bool(answer)

    def snapshot_iris(self) -> set[str]:
        """Return the IRIs of every snapshot in the graph."""
        quads = self.store.quads_for_pattern(None, A, SNAPSHOT)
        return {q.subject.value for q in quads if isinstance(q.subject, ox.NamedNode)}

    def triple_count(self) -> int:
        """Return the number of triples in the graph."""
        return len(self.store)

    # --- writing --------------------------------------------------------

    def add_snapshot(
        self, source: TreeSource, index: BlobIndex, listings: dict[ChunkId, bytes] | None = None
    ) -> int:
        """Add one snapshot's triples atomically; return how many were written.

        Listings missing from `listings` are read from `source` (a Repository);
        the walk takes each one out of `listings` as it reads it.
        """
        from chute.graph_load import loader_for
        from chute.graph_write import SnapshotWriter  # only writers pay for its imports

        iri = self.iris.snapshot(index.name)
        mount = self.iris.mount(index.name)
        series = recorded(self.store, self.iris).get(mount, [])
        before = [r.iri for r in series if r.name.timestamp < index.name.timestamp]
        previous = before[-1] if before else None
        view = TreeView(self.store, self.iris)
        old_root = root_of(self.store, previous)
        bulk = loader_for(self.store)
        known = self.known if self._has_directories() else _none_known
        writer = SnapshotWriter(view, source, listings or {}, known, old_root, bulk)
        try:
            writer.snapshot(index)
            if len(before) == len(series):
                index_quads = append_quads(
                    view, iri, mount, previous, writer.root, writer.send_ahead
                )
                deletes: list[ox.Quad] = []
            else:
                # Between others, or again: recompute the mount's spans with this snapshot in place.
                chain = [(r.iri, root_of(self.store, r.iri)) for r in series if r.iri != iri]
                chain.append((iri, writer.root))
                chain.sort(key=lambda item: self.iris.name_of(item[0]).timestamp)
                deletes, index_quads = series_quads(view, mount, chain)
            if writer.written:  # a big snapshot: what may go ahead goes through the bulk loader
                writer.flush()
                inserts = writer.commit
            else:  # a small change: all of it in the one transaction
                inserts = writer.ahead + writer.commit
        finally:
            if bulk is not None:
                bulk.close()  # every batch loaded (or failed) before the transaction
        inserts += lines_of(index_quads)
        self._apply(lines_of(deletes), inserts)
        return len(inserts) + writer.written

    def remove_snapshot(self, snapshot: SnapshotName | str) -> bool:
        """Remove a snapshot (by name or IRI), the versions only it held, and its spans.

        Three steps:
        1. The spans that start at it move to the next snapshot or go, in
           updates of `SPAN_BATCH` spans each (`departure_lines`). Forgetting
           the oldest snapshot moves nearly one span per file; as one update
           that took 325 MiB for `mixed` and 657 MiB for 50,000 small files,
           growing with the tree. While they move, only the snapshot being
           removed looks as if it held fewer versions: every other snapshot
           holds what it held, by its spans.
        2. The snapshot leaves its series in one transaction: its own
           triples, the spans that ended at it, the links of the series.
        3. What only it held is then unreachable and goes in updates of
           `REMOVE_BATCH` nodes each, made and run by the store (no triple
           crosses into Python, nor, on a SPARQL server, the network):
           forgetting a snapshot of 50,000 files as one update took 1.6 GB of
           memory here, and on a server it was a request too big to take.

        A crash in step 1 leaves the snapshot in the graph, and the next sync
        removes it again from where it stopped. A crash after step 2 leaves
        nodes nothing reaches, which `chute graph rebuild` drops. Return
        whether the graph held it.
        """
        if isinstance(snapshot, SnapshotName):
            iri, name = self.iris.snapshot(snapshot), snapshot
        else:
            iri, name = snapshot, self.iris.name_of(snapshot)
        series = recorded(self.store, self.iris).get(self.iris.mount(name), [])
        at = next((i for i, r in enumerate(series) if r.iri == iri), None)
        if at is None:
            return False
        previous = series[at - 1].iri if at > 0 else None
        following = series[at + 1].iri if at + 1 < len(series) else None
        last: list[str] = []
        while True:
            deletes, inserts = departure_lines(self.store, iri, following, SPAN_BATCH)
            if not deletes:
                break
            if deletes == last:  # the store kept them: never loop on
                raise StorageError(f"the graph kept the spans of {iri} after deleting them")
            self._apply(deletes, inserts, inserts_first=True)
            last = deletes
        deletes, inserts = removal_lines(self.store, self.iris, iri, previous, following)
        deletes += lines_of(snapshot_quads(self.store, iri))
        root = root_of(self.store, iri)
        view = TreeView(self.store, self.iris)
        dead = sorted(unshared_nodes(view, self.store, iri, root)) if root else []
        xattrs, hashes, attributes = owned_nodes(self.store, dead)
        if len(series) == 1:
            deletes.append(f"{ox.Quad(n(self.iris.mount(name)), A, MOUNT)} .")
        self._apply(deletes, inserts)
        self._remove_nodes(dead + xattrs)
        self._remove_nodes(orphans(self.store, hashes, attributes))  # asked once those are gone
        return True

    def _remove_nodes(self, nodes: list[str]) -> None:
        for at in range(0, len(nodes), REMOVE_BATCH):
            self._update(delete_subjects(nodes[at : at + REMOVE_BATCH]))

    def repair(self) -> list[str]:
        """Recompute the spans of every mount whose recorded series does not match the graph.

        Return the IRIs of the mounts repaired.
        """
        repaired = []
        for mount, series in recorded(self.store, self.iris).items():
            expected = [None] + [r.iri for r in series[:-1]]
            pairs = zip(series, expected, strict=True)
            if all(r.mount == mount and r.previous == p for r, p in pairs):
                continue
            chain = [(r.iri, root_of(self.store, r.iri)) for r in series]
            deletes, inserts = series_quads(TreeView(self.store, self.iris), mount, chain)
            self._apply(lines_of(deletes), lines_of(inserts))
            repaired.append(mount)
        return repaired

    def sync(self, repo: SnapshotSource) -> list[SnapshotName]:
        """Make the graph hold exactly the repository's live snapshots.

        Add what is missing (oldest first), remove what the repository no
        longer has (forgotten snapshots), and repair the span index. Return
        the names added.
        """
        # The graph first: a snapshot in it was committed before, so the listing below has it
        # unless it was forgotten (on a shared remote graph, another node may be adding one).
        present = self.snapshot_iris()
        names = repo.snapshots()
        wanted = {self.iris.snapshot(name) for name in names}
        for iri in sorted(present - wanted):
            try:
                self.iris.name_of(iri)
            except UsageError:
                continue  # not a snapshot IRI: not ours to manage
            self.remove_snapshot(iri)  # what fails here (a server that refuses) is reported
        known = self.snapshot_iris()
        added = []
        for name in names:
            if self.iris.snapshot(name) not in known:
                self.add_snapshot(repo, repo.read_index(name))
                added.append(name)
        self.repair()
        return added

    def _update(self, update: str) -> None:
        """Run one SPARQL update (one transaction; on a server, one request)."""
        try:
            self.store.update(update)
        except OSError as exc:  # the embedded store's disk is full, say
            raise graph_write_error(exc) from exc

    def _apply(self, deletes: list[str], inserts: list[str], inserts_first: bool = False) -> None:
        """Delete and insert N-Triples lines in one transaction.

        Deletes go first, unless `inserts_first` (for lines that share no
        triple): on Virtuoso, which commits each part of a request on its
        own, a crash between the two then leaves the new triples beside the old.

        Inserts alone go to the embedded store through `extend` (measured on
        50k new files: 254k quads in 3.6 s and +230 MiB, against about 8 s
        and +530 MiB as one SPARQL update); otherwise one SPARQL update
        carries both. A remote store gets both in one request made directly
        from the lines. The lines are chute's own, so they are parsed
        leniently (`chute.graph_load.LENIENT`).
        """
        if isinstance(self.store, RemoteStore):
            self.store.apply_data(deletes, inserts, inserts_first)
            return
        try:
            if not deletes and isinstance(self.store, ox.Store):
                if inserts:
                    data = "\n".join(inserts).encode()
                    parsed = ox.parse(data, format=ox.RdfFormat.N_TRIPLES, lenient=LENIENT)
                    self.store.extend(parsed)
                return
            parts = []
            if deletes:
                parts.append("DELETE DATA {\n" + "\n".join(deletes) + "\n}")
            if inserts:
                parts.append("INSERT DATA {\n" + "\n".join(inserts) + "\n}")
            if inserts_first:
                parts.reverse()
            if parts:
                self.store.update(" ;\n".join(parts))
        except OSError as exc:  # the embedded store's disk is full, say (a remote one maps its own)
            raise graph_write_error(exc) from exc


def _value(term: Any) -> Any:
    """Return a query term as a Python value: IRIs and strings as str, numbers as int."""
    if term is None:
        return None
    if isinstance(term, ox.Literal):
        datatype = term.datatype.value
        if datatype == XSD + "integer":
            return int(term.value)
        if datatype == XSD + "boolean":
            return term.value == "true"
        return term.value
    return term.value


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
                terms[name] = str(n(value[1:-1]))
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


def rebuild(
    path: Path, base: str, repo: SnapshotSource, store: ox.Store | None = None
) -> tuple[History, list[SnapshotName]]:
    """Recreate the graph (at `path`, or in `store`) from the repository's blobs and the key."""
    if store is not None:
        store.clear()
    elif path.exists():
        shutil.rmtree(path)
    history = History(path, base, store)
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


def _none_known(iris: list[str]) -> set[str]:
    """What a graph without directory versions knows of `iris`: none."""
    return set()
