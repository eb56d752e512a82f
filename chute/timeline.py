"""`log`, `diff` and `find` over the history graph: the example queries, shaped for people.

Each runs one of the queries in `chute/queries/` (copies of those in
`examples/queries/`, so what the commands do is what a user can read and
run with `chute query -f`), then turns the rows into plain values:

- `log(history, path)`: every version a path had, oldest first, with the
  snapshot it appeared in, the last one that held it and the first one
  without it (`path-log.rq`), plus a `deleted` marker where the path went;
- `diff(history, old, new)`: entries added, changed and deleted between two
  snapshots of one mount (`changed-between.rq`);
- `find(history, pattern)`: paths matching a glob or regular expression in
  any snapshot, one row per path and mount (`find-paths.rq`).

A glob without `/` matches the last component (`*.toml`), one with `/`
the whole path; `*` and `?` stay within a component, `**` crosses them.

`reading_history` opens the graph for these read-only commands without the
key as long as the graph already holds every live snapshot: the graph is
plaintext on this node, so only catching up with the repository (reading
new indexes) needs the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cached_property
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from chute.errors import NotFound, UsageError
from chute.ids import ChunkId, SnapshotName

if TYPE_CHECKING:
    from chute.config import Settings
    from chute.crypto import IdHasher
    from chute.graph import History
    from chute.repository import BlobIndex, Repository
    from chute.store.base import BlobStore


def query_text(name: str) -> str:
    """Return the text of one of the queries the commands run."""
    return (files("chute") / "queries" / name).read_text(encoding="utf-8")


def _timestamp(iri: str | None) -> str | None:
    return SnapshotName.parse(iri).timestamp if iri else None


def _mount_label(iri: str) -> str:
    """`<base>/chute/blob/example.com/node1/opt/data/` -> `example.com/node1/opt/data`."""
    return iri.split("/chute/blob/", 1)[-1].strip("/")


def _kind(rdf_type: str | None) -> str:
    return (rdf_type or "").lower()


# --- log ---------------------------------------------------------------------


@dataclass(frozen=True)
class Version:
    """One version of a path and the run of snapshots that held it."""

    path: str
    mount: str
    type: str
    since: str
    since_timestamp: str
    last: str
    last_timestamp: str
    until: str | None
    until_timestamp: str | None
    size: int | None
    sha256: str | None
    modified: str | None
    permissions: str | None
    owner: str | None
    group: str | None
    target: str | None
    deleted: bool  # the path is gone in `until` (no other version took its place)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def log(history: History, path: str) -> list[Version]:
    """Return every version of `path` (relative, or absolute under a backed-up source)."""
    rel = resolve_path(history, path)
    rows = history.select(query_text("path-log.rq"), {"path": rel})
    starts = {(row["mount"], row["since"]) for row in rows}
    versions = [
        Version(
            path=rel,
            mount=_mount_label(row["mount"]),
            type=_kind(row["type"]),
            since=row["since"],
            since_timestamp=str(_timestamp(row["since"])),
            last=row["last"],
            last_timestamp=str(_timestamp(row["last"])),
            until=row["until"],
            until_timestamp=_timestamp(row["until"]),
            size=row["size"],
            sha256=row["sha256"] or None,
            modified=row["modified"],
            permissions=row["permissions"],
            owner=row["owner"],
            group=row["group"],
            target=row["target"],
            deleted=bool(row["until"]) and (row["mount"], row["until"]) not in starts,
        )
        for row in rows
    ]
    if not versions:
        raise NotFound(f"no snapshot holds {rel}")
    return versions


def resolve_path(history: History, path: str) -> str:
    """Turn a path as the user gave it into a graph path (`top/dir/file`).

    Graph paths start with the name of what was backed up. An absolute
    path is taken as a path on this machine under one of the backed-up
    sources (the longest that holds it).
    """
    if not path.startswith("/"):
        cleaned = re.sub(r"^(\./)+", "", path).rstrip("/")
        if not cleaned:
            raise UsageError("give a path inside a snapshot, e.g. docs/notes.txt")
        return cleaned
    wanted = path.rstrip("/") or "/"
    sources = history.select("SELECT DISTINCT ?source WHERE { ?s chute:sourcePath ?source }")
    best = ""
    for row in sources:
        source = str(row["source"]).rstrip("/") or "/"
        under = wanted == source or wanted.startswith(source.rstrip("/") + "/")
        if under and len(source) > len(best):
            best = source
    if not best:
        raise NotFound(f"{path} is not under any backed-up path")
    top = best.rsplit("/", 1)[-1] or "-"
    return top + wanted[len(best) :] if best != "/" else top + wanted


# --- diff --------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """An entry that differs between two snapshots."""

    path: str
    change: str  # added, changed, deleted
    type: str
    old_size: int | None
    new_size: int | None
    old_sha256: str | None
    new_sha256: str | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def diff(history: History, old: SnapshotName, new: SnapshotName) -> list[Change]:
    """Return what differs from snapshot `old` to snapshot `new` (same mount, either order)."""
    if (old.domain, old.node, old.mount) != (new.domain, new.node, new.mount):
        raise UsageError(
            f"diff compares two snapshots of one mount; {old.path} and {new.path} are not"
        )
    if old == new:
        return []
    swap = old.timestamp > new.timestamp
    first, second = (new, old) if swap else (old, new)
    bindings = {
        "old": f"<{history.iris.snapshot(first)}>",
        "new": f"<{history.iris.snapshot(second)}>",
    }
    changes = []
    for row in history.select(query_text("changed-between.rq"), bindings):
        change = Change(
            path=row["path"],
            change=row["change"],
            type=_kind(row["type"]),
            old_size=row["oldSize"],
            new_size=row["newSize"],
            old_sha256=row["oldSha256"] or None,
            new_sha256=row["newSha256"] or None,
        )
        changes.append(_reversed(change) if swap else change)
    return changes


def _reversed(c: Change) -> Change:
    flipped = {"added": "deleted", "deleted": "added"}.get(c.change, c.change)
    return Change(c.path, flipped, c.type, c.new_size, c.old_size, c.new_sha256, c.old_sha256)


# --- find --------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """A path that matched, in one mount: how many versions, first and last seen."""

    path: str
    mount: str
    type: str
    versions: int
    first: str
    first_timestamp: str
    last: str
    last_timestamp: str
    present: bool  # held by the mount's latest snapshot
    size: int | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _find_rows(history: History, pattern: str, regex: bool) -> list[dict[str, Any]]:
    if regex:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise UsageError(f"bad regular expression {pattern!r}: {exc}") from exc
        expression = pattern
    else:
        expression = glob_regex(pattern)
    return history.select(query_text("find-paths.rq"), {"pattern": expression})


def find(history: History, pattern: str, regex: bool = False) -> list[Found]:
    """Return the paths matching a glob (or, with `regex`, a regular expression)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in _find_rows(history, pattern, regex):
        groups.setdefault((row["path"], row["mount"]), []).append(row)
    found = []
    for (path, mount), rows in sorted(groups.items()):
        first = min(rows, key=lambda r: r["sinceTime"])
        newest = max(rows, key=lambda r: r["sinceTime"])
        last = max(rows, key=lambda r: r["lastTime"])
        found.append(
            Found(
                path=path,
                mount=_mount_label(mount),
                type=_kind(newest["type"]),
                versions=len({r["version"] for r in rows}),
                first=first["since"],
                first_timestamp=str(_timestamp(first["since"])),
                last=last["last"],
                last_timestamp=str(_timestamp(last["last"])),
                present=any(r["until"] is None for r in rows),
                size=newest["size"],
            )
        )
    return found


@dataclass(frozen=True)
class Hit:
    """A matching path in one snapshot."""

    path: str
    mount: str
    snapshot: str
    timestamp: str
    type: str
    size: int | None
    sha256: str | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def find_each(history: History, pattern: str, regex: bool = False) -> list[Hit]:
    """Return every (snapshot, path) that matches, oldest snapshot first, like `restic find`."""
    from chute.graph_changes import recorded

    series = {
        mount: [r.iri for r in items]
        for mount, items in recorded(history.store, history.iris).items()
    }
    hits = []
    for row in _find_rows(history, pattern, regex):
        snapshots = series.get(row["mount"], [])
        start = snapshots.index(row["since"])
        end = snapshots.index(row["until"]) if row["until"] else len(snapshots)
        for snapshot in snapshots[start:end]:
            hits.append(
                Hit(
                    path=row["path"],
                    mount=_mount_label(row["mount"]),
                    snapshot=snapshot,
                    timestamp=str(_timestamp(snapshot)),
                    type=_kind(row["type"]),
                    size=row["size"],
                    sha256=row["sha256"] or None,
                )
            )
    return sorted(hits, key=lambda h: (h.timestamp, h.mount, h.path))


def glob_regex(pattern: str) -> str:
    """Translate a glob into an XPath regular expression over graph paths.

    `*` and `?` stay within a name, `**` crosses names, `[...]` is a class
    (`[!...]` negated), and `\\x` or `[x]` is a literal x (`glob.escape`).
    """
    if not pattern:
        raise UsageError("give a pattern to find, e.g. '*.toml'")
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "\\" and i + 1 < len(pattern):
            out.append(_literal(pattern[i + 1]))
            i += 2
            continue
        if char == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            body = "".join("\\" + c if c in "\\[]^" else c for c in body[negate:])
            out.append("[" + ("^" if negate else "") + body + "]")
            i = end + 1
            continue
        out.append({"*": "[^/]*", "?": "[^/]"}.get(char) or _literal(char))
        i += 1
    body = "".join(out)
    if "/" in pattern.strip("/"):
        return "^" + body.strip("/") + "$"
    return "(^|/)" + body + "$"


def _literal(char: str) -> str:
    return "\\" + char if char in "\\|.-^?*+{}()[]$" else char


# --- opening the graph for reading -------------------------------------------


class LazySource:
    """The repository as `History.sync` reads it, opened with the key only when needed."""

    def __init__(self, settings: Settings, store: BlobStore) -> None:
        self.settings = settings
        self.store = store

    def snapshots(self) -> list[SnapshotName]:
        from chute.layout import scan

        return scan(self.store.list()).snapshots()

    @cached_property
    def repo(self) -> Repository:
        from chute.session import open_repository

        return open_repository(self.settings)

    @property
    def hasher(self) -> IdHasher:
        return self.repo.hasher

    def read_index(self, name: SnapshotName) -> BlobIndex:
        return self.repo.read_index(name)

    def read_tree(self, oid: ChunkId) -> bytes:
        return self.repo.read_tree(oid)


@contextmanager
def reading_history(settings: Settings) -> Iterator[History]:
    """Open the graph, synced with the repository's live snapshots, for reading."""
    from chute.graph import History
    from chute.repository import Repository
    from chute.store.base import open_store

    store = open_store(settings.repo)
    repo_id = str(Repository.read_config(store)["id"])
    remote = None
    if settings.graph:
        from chute.graph_remote import graph_store

        remote = graph_store(settings, repo_id)
    history = History(settings.graph_path(repo_id), settings.base_url, remote)
    try:
        history.sync(LazySource(settings, store))
        yield history
    finally:
        history.close()
