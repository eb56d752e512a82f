"""The span index: which snapshots hold each entry version, kept in step with the graph.

Entry versions are shared between snapshots (see `chute.graph_write`), so
"which snapshots hold this version" is a walk up `chute:contains` to the
roots. To answer history questions without walking, the graph also keeps,
per mount (the snapshots of one domain, node and mount label, in timestamp
order), a *span* for every unbroken run of snapshots holding a version:

    <snapshot> chute:snapshotOf <mount> ;          # <base>/chute/blob/<domain>/<node>/<mount>/
               chute:previous <snapshot before it> .
    <since>#span-<version digest>                  # a chute:Span (rdfs:domain of chute:version)
        chute:version <version> ;
        chute:since <first snapshot of the run> ;
        chute:until <first later snapshot without it> .   # absent while the latest holds it

A new snapshot opens a span for each version it adds and closes (adds
`chute:until` to) the span of each version it drops, so the index grows
with change, never with the number of snapshots. The difference between two
snapshots is found by walking both trees from their roots and skipping every
directory version they share (Merkle pruning): its cost follows the
directories that changed.

Appending a snapshot (the usual case) only inserts triples. Removing one
(forget) rewrites the spans that start or end at it. Anything else — a
snapshot added between two others, or a series whose recorded predecessors
do not match the graph (triples deleted by other means, a graph written by
an older chute) — recomputes the spans of that mount from its snapshots'
trees (`series_quads`), which is also the definition the fast paths follow.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

import pyoxigraph as ox

from chute.errors import UsageError
from chute.graph_terms import (
    ATTRIBUTES,
    CONTAINS,
    DIRECTORY,
    HAS_HASH,
    META,
    MOUNT,
    PATH,
    PREVIOUS,
    PROV,
    ROOT,
    SINCE,
    SNAPSHOT_OF,
    UNTIL,
    VERSION,
    XATTR,
    A,
    Iris,
    c,
    n,
    value,
)
from chute.ids import SnapshotName

Subject = ox.NamedNode | ox.BlankNode | ox.Triple


# Directories walked at once where a walk asks the graph about them (their previous
# versions, the parents of their children): on a SPARQL server one request per group,
# not per directory. A put of 5% changes to `mixed`, its graph on a server, made 1,537
# queries one directory at a time; 78 in groups of 16, 52 in groups of 32 (2 MiB more
# at its peak) and 38 in groups of 64 (7 MiB more).
WALK_GROUP = 32


class TreeView:
    """Children and paths of entry versions: pending ones first, then the store's.

    What is read from the store is kept (a put reads the previous versions of
    the directories it changed, then compares the two trees). On a SPARQL
    server, `prefetch` reads the children of many directories in one request.
    """

    def __init__(
        self,
        store: ox.Store,
        iris: Iris,
        children: dict[str, list[str]] | None = None,
        paths: dict[str, str] | None = None,
    ) -> None:
        self.store = store
        self.iris = iris
        self.pending_children = children or {}
        self.pending_paths = paths or {}
        self._read: dict[str, list[str]] = {}
        self._paths: dict[str, str] = {}
        # A SPARQL server: each read is a round trip, so reads are worth grouping.
        self.remote = not isinstance(store, ox.Store)

    def children(self, iri: str) -> list[str]:
        kids = self.pending_children.get(iri)
        if kids is None:
            kids = self._read.get(iri)
        if kids is None:
            quads = self.store.quads_for_pattern(n(iri), CONTAINS, None)
            kids = self._read[iri] = [value(q.object) for q in quads]
        return kids

    def path(self, iri: str) -> str:
        path = self.pending_paths.get(iri)
        if path is None:
            path = self._paths.get(iri)
        if path is None:
            quads = self.store.quads_for_pattern(n(iri), PATH, None)
            path = self._paths[iri] = next((value(q.object) for q in quads), "")
        return path

    def prefetch(self, directories: list[str]) -> None:
        """Read the children of stored `directories`, with the paths of theirs, at once.

        Only from a SPARQL server, where each directory read alone is a round
        trip. The embedded store reads each one as fast when it is asked for.
        """
        if not self.remote:
            return
        held = self.pending_children.keys() | self._read.keys()
        wanted = [d for d in dict.fromkeys(directories) if d not in held]
        for part in _chunks(wanted, QUERY_BATCH):
            query = (
                f"SELECT ?d ?c ?path WHERE {{ VALUES ?d {{ {_values(part)} }} ?d {CONTAINS} ?c"
                f" OPTIONAL {{ ?c {A} {DIRECTORY} ; {PATH} ?path }} }}"
            )
            found: dict[str, list[str]] = {d: [] for d in part}
            for row in _solutions(self.store, query):
                child = value(row["c"])
                found[value(row["d"])].append(child)
                if row["path"] is not None:
                    self._paths[child] = value(row["path"])
            self._read.update(found)


def diff(view: TreeView, old_root: str | None, new_root: str | None) -> tuple[list[str], list[str]]:
    """Return (added, removed) entry versions between two trees, skipping shared subtrees."""
    added: list[str] = []
    removed: list[str] = []
    stack: list[tuple[str | None, str | None]] = [(old_root, new_root)]
    while stack:
        old, new = stack.pop()
        if old == new:
            continue
        before = set(view.children(old)) if old else set()
        after = set(view.children(new)) if new else set()
        plus, minus = after - before, before - after
        added.extend(plus)
        removed.extend(minus)
        gone_dirs = {view.path(x): x for x in minus if view.iris.is_dir(x)}
        for x in plus:
            if view.iris.is_dir(x):
                stack.append((gone_dirs.pop(view.path(x), None), x))
        stack.extend((x, None) for x in gone_dirs.values())
    return added, removed


# --- spans -------------------------------------------------------------------


def span_iri(since: str, version: str) -> str:
    """`<since snapshot IRI>#span-<last segment of the version's IRI>`."""
    return f"{since}#span-{version.rsplit('/', 1)[-1]}"


@dataclass(frozen=True)
class Span:
    """An unbroken run of one mount's snapshots that hold one entry version."""

    version: str
    since: str
    until: str | None = None

    @property
    def iri(self) -> str:
        return span_iri(self.since, self.version)

    def quads(self, at: str | None = None) -> list[ox.Quad]:
        """Return its triples, under its own IRI or the one given (`at`: as stored)."""
        s = n(at or self.iri)
        quads = [
            ox.Quad(s, VERSION, n(self.version)),
            ox.Quad(s, SINCE, n(self.since)),
        ]
        if self.until:
            quads.append(ox.Quad(s, UNTIL, n(self.until)))
        return quads


# IRIs per query that asks about many nodes at once (`VALUES`): on a SPARQL server
# one round trip each instead of one per node, which made forgetting a snapshot of
# 50,000 files take over four minutes there.
QUERY_BATCH = 500


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for at in range(0, len(items), size):
        yield items[at : at + size]


def _values(iris: list[str]) -> str:
    return " ".join(f"<{iri}>" for iri in iris)


def _solutions(store: ox.Store, query: str) -> ox.QuerySolutions:
    answer = store.query(query)
    assert isinstance(answer, ox.QuerySolutions)
    return answer


def _spans(store: ox.Store, pattern: str) -> list[Span]:
    """Return the spans `?span` that a SPARQL `pattern` picks, in one query.

    One query, not one per span: on a SPARQL server, forgetting a snapshot of
    50,000 files asked for its spans one round trip each, 53,000 of them.
    """
    query = (
        f"SELECT ?version ?since ?until WHERE {{ {pattern} ?span {VERSION} ?version ;"
        f" {SINCE} ?since . OPTIONAL {{ ?span {UNTIL} ?until }} }}"
    )
    return [
        Span(value(row["version"]), value(row["since"]), _optional(row["until"]))
        for row in _solutions(store, query)
    ]


def _optional(term: object) -> str | None:
    return None if term is None else value(term)


def spans_until(store: ox.Store, snapshot: str) -> list[Span]:
    """Return the spans that end just before a snapshot."""
    return _spans(store, f"?span {UNTIL} {n(snapshot)} .")


def open_spans(store: ox.Store, versions: list[str], mount: str, iris: Iris) -> list[Span]:
    """Return the spans of versions in a mount that have no end yet (a batch per query)."""
    found = []
    for part in _chunks(versions, QUERY_BATCH):
        for span in _spans(store, f"VALUES ?v {{ {_values(part)} }} ?span {VERSION} ?v ."):
            if span.until is None and iris.mount_of(span.since) == mount:
                found.append(span)
    return found


def spans_of(store: ox.Store, versions: list[str], since: str) -> dict[str, Span]:
    """Return the spans of versions that start at a given snapshot, by version."""
    found = {}
    iris = [Span(version, since).iri for version in versions]
    for part in _chunks(iris, QUERY_BATCH):
        for span in _spans(store, f"VALUES ?span {{ {_values(part)} }}"):
            found[span.version] = span
    return found


# --- the series of one mount ------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """What the graph says about one snapshot's place in its mount's series."""

    iri: str
    name: SnapshotName
    mount: str | None
    previous: str | None


def recorded(store: ox.Store, iris: Iris) -> dict[str, list[Recorded]]:
    """Return every snapshot in the graph, grouped by mount IRI, oldest first."""
    query = (
        "SELECT ?s ?m ?p WHERE { ?s a chute:Snapshot "
        "OPTIONAL { ?s chute:snapshotOf ?m } OPTIONAL { ?s chute:previous ?p } }"
    )
    found: dict[str, Recorded] = {}
    solutions = store.query(query, prefixes={"chute": c("").value})
    assert isinstance(solutions, ox.QuerySolutions)
    for row in solutions:
        s, m, p = row["s"], row["m"], row["p"]
        if not isinstance(s, ox.NamedNode):
            continue
        try:
            name = iris.name_of(s.value)
        except UsageError:
            continue  # not a chute snapshot IRI: leave it alone
        item = Recorded(s.value, name, value(m) if m else None, value(p) if p else None)
        if s.value in found:  # two predecessors or mounts: wrong, so recompute
            item = replace(item, previous="?")
        found[s.value] = item
    series: dict[str, list[Recorded]] = defaultdict(list)
    for item in found.values():
        series[iris.mount(item.name)].append(item)
    for items in series.values():
        items.sort(key=lambda r: (r.name.timestamp, r.iri))
    return series


def root_of(store: ox.Store, snapshot: str | None) -> str | None:
    """Return the root directory version of a snapshot in the graph."""
    if snapshot:
        for quad in store.quads_for_pattern(n(snapshot), ROOT, None):
            return value(quad.object)
    return None


def link_quads(snapshot: str, mount: str, previous: str | None) -> list[ox.Quad]:
    """Return a snapshot's place in its series: its mount and its predecessor."""
    s = n(snapshot)
    quads = [ox.Quad(s, SNAPSHOT_OF, n(mount)), ox.Quad(n(mount), A, MOUNT)]
    if previous:
        quads.append(ox.Quad(s, PREVIOUS, n(previous)))
    return quads


def stored_link_quads(store: ox.Store, snapshot: str) -> list[ox.Quad]:
    """Return the place-in-series triples a snapshot has in the graph now."""
    s = n(snapshot)
    return [
        *store.quads_for_pattern(s, SNAPSHOT_OF, None),
        *store.quads_for_pattern(s, PREVIOUS, None),
    ]


def append_quads(
    view: TreeView,
    snapshot: str,
    mount: str,
    previous: str | None,
    root: str,
    ahead: Callable[[list[str]], None],
) -> list[ox.Quad]:
    """Write the span index of a snapshot newer than every other of its mount.

    Two parts: the new spans, as N-Triples lines handed to `ahead` a few
    thousand at a time (they may be written before the snapshot: see
    `chute.graph_write`, unreachable until it commits), and what must commit
    with it, returned: its place in the series, the ends of the spans it closes.
    """
    added, removed = diff(view, root_of(view.store, previous), root)
    quads = link_quads(snapshot, mount, previous)
    since = f"{SINCE} {n(snapshot)} ."
    lines: list[str] = []
    for version in added:
        s = f"<{span_iri(snapshot, version)}>"
        lines += (f"{s} {VERSION} <{version}> .", f"{s} {since}")
        if len(lines) >= 10_000:
            ahead(lines)
            lines = []
    ahead(lines)
    for span in open_spans(view.store, removed, mount, view.iris):
        quads.append(ox.Quad(n(span.iri), UNTIL, n(snapshot)))
    return quads


def series_quads(
    view: TreeView, mount: str, chain: list[tuple[str, str | None]]
) -> tuple[list[ox.Quad], list[ox.Quad]]:
    """Recompute a mount's spans and links from its (snapshot, root) chain, oldest first.

    Return (deletes, inserts) that turn the graph's index for the mount into it.
    """
    spans: list[Span] = []
    current: dict[str, int] = {}
    wanted: set[ox.Quad] = set()
    previous: str | None = None
    previous_root: str | None = None
    for snapshot, root in chain:
        added, removed = diff(view, previous_root, root)
        for version in removed:
            at = current.pop(version)
            spans[at] = replace(spans[at], until=snapshot)
        for version in added:
            current[version] = len(spans)
            spans.append(Span(version, snapshot))
        wanted.update(link_quads(snapshot, mount, previous))
        previous, previous_root = snapshot, root
    for span in spans:
        wanted.update(span.quads())
    existing = set(_mount_index(view.store, mount, view.iris))
    for snapshot, _ in chain:
        existing.update(stored_link_quads(view.store, snapshot))
    if chain:
        existing.add(ox.Quad(n(mount), A, MOUNT))
    return sorted(existing - wanted, key=str), sorted(wanted - existing, key=str)


def _mount_index(store: ox.Store, mount: str, iris: Iris) -> list[ox.Quad]:
    """Return every span triple of a mount, including spans of snapshots that are gone."""
    prefix = str(ox.Literal(mount))
    solutions = store.query(
        f"SELECT ?s WHERE {{ ?s chute:version ?v . FILTER STRSTARTS(STR(?s), {prefix}) }}",
        prefixes={"chute": c("").value},
    )
    assert isinstance(solutions, ox.QuerySolutions)
    quads: list[ox.Quad] = []
    for row in solutions:
        span = row["s"]
        if isinstance(span, ox.NamedNode) and iris.mount_of(span.value) == mount:
            quads.extend(store.quads_for_pattern(span, None, None))
    return quads


def departure_lines(
    store: ox.Store, snapshot: str, following: str | None, limit: int
) -> tuple[list[str], list[str]]:
    """Return (deletes, inserts) for at most `limit` spans that start at a snapshot being removed.

    A span whose version the next snapshot (`following`) holds too moves to
    it: it gets a new IRI, which names its first snapshot. The others go.
    Forgetting the oldest snapshot moves the span of every version that the
    next one still holds: 22,000 spans for `mixed`, as many as files for a
    tree that changes little. Once a part's lines are applied its spans no
    longer start there, so the next call gives the next part. Each span is
    deleted under the IRI it is stored with.
    """
    query = (
        f"SELECT ?span ?version ?until WHERE {{ ?span {SINCE} {n(snapshot)} ;"
        f" {VERSION} ?version . OPTIONAL {{ ?span {UNTIL} ?until }} }} LIMIT {limit}"
    )
    deletes: list[str] = []
    inserts: list[str] = []
    for row in _solutions(store, query):
        span = Span(value(row["version"]), snapshot, _optional(row["until"]))
        deletes += lines_of(span.quads(at=value(row["span"])))
        if following is not None and span.until != following:
            inserts += lines_of(replace(span, since=following).quads())
    return deletes, inserts


def removal_lines(
    store: ox.Store, iris: Iris, snapshot: str, previous: str | None, following: str | None
) -> tuple[list[str], list[str]]:
    """Return (deletes, inserts), as N-Triples lines, that take a snapshot out of its series.

    They close again the spans that ended at it (versions its predecessor
    held and it did not), and link the next snapshot to its predecessor. The
    spans that start at it are moved first (`departure_lines`).
    """
    deletes: list[str] = []
    inserts: list[str] = []
    ending = spans_until(store, snapshot)
    again = spans_of(store, [s.version for s in ending], following) if following else {}
    for span in ending:
        deletes += lines_of(span.quads())
        later = again.get(span.version)
        if later is not None:  # back again in the next snapshot: one run now
            deletes += lines_of(later.quads())
            inserts += lines_of(replace(span, until=later.until).quads())
        else:
            inserts += lines_of(replace(span, until=following).quads())
    if following is not None:
        deletes += lines_of(stored_link_quads(store, following))
        inserts += lines_of(link_quads(following, iris.mount_of(following), previous))
    return deletes, inserts


def lines_of(quads: Iterable[ox.Quad]) -> list[str]:
    """Return the N-Triples lines of quads in the default graph (what `History._apply` takes)."""
    return [f"{q} ." for q in quads]


# --- removing a snapshot's own nodes -----------------------------------------


def _linked_from(
    store: ox.Store, predicate: ox.NamedNode, objects: list[str]
) -> dict[str, set[str]]:
    """Return, for each of `objects`, the subjects that link to it through `predicate`."""
    found: dict[str, set[str]] = defaultdict(set)
    for part in _chunks(objects, QUERY_BATCH):
        query = f"SELECT ?o ?s WHERE {{ VALUES ?o {{ {_values(part)} }} ?s {predicate} ?o }}"
        for row in _solutions(store, query):
            found[value(row["o"])].add(value(row["s"]))
    return found


def typed(store: ox.Store, iris: list[str]) -> set[str]:
    """Return those of `iris` that have an `rdf:type` (a batch of them per query)."""
    found: set[str] = set()
    for part in _chunks(iris, QUERY_BATCH):
        query = f"SELECT DISTINCT ?s WHERE {{ VALUES ?s {{ {_values(part)} }} ?s {A} ?type }}"
        found.update(value(row["s"]) for row in _solutions(store, query))
    return found


def unshared_nodes(view: TreeView, store: ox.Store, snapshot: str, root: str) -> set[str]:
    """Return the entry versions only `snapshot` holds.

    Walk down from its root: a version dies when all its parents die. Every
    parent of a version has the version's parent path, and one tree holds
    one version of a path, so the order of the walk does not matter. The
    walk takes `WALK_GROUP` directories at a time: their children are read
    together (`TreeView.prefetch`), and so are the parents of those.
    """
    if any(value(q.subject) != snapshot for q in store.quads_for_pattern(None, ROOT, n(root))):
        return set()
    dead = {root}
    frontier = [root]
    while frontier:
        group = frontier[-WALK_GROUP:]
        del frontier[-WALK_GROUP:]
        view.prefetch(group)
        children = [c for d in group for c in view.children(d) if c not in dead]
        parents = _linked_from(store, CONTAINS, children)
        for child in children:
            if parents[child] <= dead:
                dead.add(child)
                if view.iris.is_dir(child):
                    frontier.append(child)
    return dead


def owned_nodes(store: ox.Store, versions: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Return the xattr nodes, hashes and attribute nodes that entry versions link to."""
    found: dict[ox.NamedNode, set[str]] = {XATTR: set(), HAS_HASH: set(), ATTRIBUTES: set()}
    # One VALUES only: with a second one (for ?p) Oxigraph's plan scanned every triple of
    # those predicates for each batch, and forgetting 50,000 files took minutes.
    links = ", ".join(str(p) for p in found)
    for part in _chunks(versions, QUERY_BATCH):
        query = (
            f"SELECT ?p ?o WHERE {{ VALUES ?s {{ {_values(part)} }} ?s ?p ?o"
            f" FILTER(?p IN ({links})) }}"
        )
        for row in _solutions(store, query):
            found[row["p"]].add(value(row["o"]))
    return sorted(found[XATTR]), sorted(found[HAS_HASH]), sorted(found[ATTRIBUTES])


def orphans(store: ox.Store, hashes: list[str], attributes: list[str]) -> list[str]:
    """Return the hashes and attribute nodes that no entry version links to any more."""
    used = _linked_from(store, HAS_HASH, hashes)
    # Asked one by one, and only whether one version is left: an attribute node may serve
    # millions of versions, and a tree has a handful of such nodes.
    return [h for h in hashes if not used[h]] + [
        a for a in attributes if not _linked(store, ATTRIBUTES, a)
    ]


def _linked(store: ox.Store, predicate: ox.NamedNode, node: str) -> bool:
    """Tell whether some subject links to `node` through `predicate`."""
    answer = store.query(f"ASK {{ ?s {predicate} {n(node)} }}")
    assert isinstance(answer, ox.QueryBoolean)
    return bool(answer)


def delete_subjects(subjects: list[str]) -> str:
    """Return an update that deletes every triple whose subject is one of `subjects`."""
    return f"DELETE {{ ?s ?p ?o }} WHERE {{ VALUES ?s {{ {_values(subjects)} }} ?s ?p ?o }}"


def snapshot_quads(store: ox.Store, snapshot: str) -> list[ox.Quad]:
    """Return a snapshot's own triples: itself, its backup run and its metadata entries."""
    s = n(snapshot)
    quads = list(store.quads_for_pattern(s, None, None))
    owned = (META, n(PROV + "wasGeneratedBy"))
    for quad in quads[:]:
        if quad.predicate in owned:
            quads.extend(store.quads_for_pattern(n(value(quad.object)), None, None))
    return quads
