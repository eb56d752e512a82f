"""`/chute/snapshots...`: browse the history (plaintext: needs the key and `read`).

* `GET /chute/snapshots` lists snapshots (JSON, or HTML for a browser);
* `GET /chute/snapshots/tree?snapshot=S&path=P` lists one directory;
* `GET /chute/snapshots/versions?path=P` lists every version of a path
  (a graph query);
* `GET|HEAD /chute/snapshots/file?snapshot=S&path=P` sends a file's bytes,
  decrypted on the fly, with `Range` (206) and a strong `ETag` (see
  `chute.files` for how only the chunks covering a range are read).

`snapshot` is what `chute get` takes: `latest`, `latest:<mount>`, a blob
path or snapshot URI, or a unique timestamp prefix.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, ClassVar

import falcon

from chute import output
from chute.errors import NotFound, UsageError
from chute.files import FileReader
from chute.ids import ChunkId
from chute.repository import Repository
from chute.restore import find_entry
from chute.session import select_snapshot
from chute.tree import decode_listing
from chute.web import html
from chute.web.auth import READ
from chute.web.blobs import send_range
from chute.web.queries import QueryRunner
from chute.web.queryworker import QueryRequest

VERSIONS = """
SELECT ?snapshot ?time ?type ?size ?modified ?sha256 WHERE {
  ?f chute:path ?path ; a ?class ; nfo:fileLastModified ?modified .
  FILTER(?class IN (chute:File, chute:Directory, chute:Symlink, chute:Special))
  BIND(LCASE(STRAFTER(STR(?class), "#")) AS ?type)
  OPTIONAL { ?f nfo:fileSize ?size }
  OPTIONAL { ?f nfo:hasHash/nfo:hashValue ?sha256 }
  ?root chute:contains+ ?f .
  ?snapshot chute:root ?root ; prov:generatedAtTime ?time .
}
ORDER BY ?time
"""


def wants_html(req: falcon.Request) -> bool:
    """Tell whether the client (a browser) prefers HTML to JSON."""
    return req.client_prefers([falcon.MEDIA_JSON, falcon.MEDIA_HTML]) == falcon.MEDIA_HTML


def _param(req: falcon.Request, name: str, default: str | None = None) -> str:
    value = req.get_param(name)
    if value is None:
        if default is None:
            raise UsageError(f"the parameter {name} is required")
        return default
    if "\x00" in value:
        raise UsageError(f"the parameter {name} holds a NUL byte")
    return value


class Snapshots:
    """The list of snapshots."""

    scopes: ClassVar[dict[str, frozenset[str]]] = {"GET": READ}

    def __init__(self, repo: Repository, base: str) -> None:
        self.repo = repo
        self.base = base

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        mount = req.get_param("mount")
        names = [n for n in self.repo.snapshots() if mount is None or n.mount == mount]
        rows = [output.snapshot_json(self.repo.read_index(n), self.base) for n in names]
        if wants_html(req):
            resp.content_type = falcon.MEDIA_HTML
            resp.text = html.snapshot_list(rows)
        else:
            resp.media = rows


class SnapshotTree:
    """One directory of one snapshot."""

    scopes: ClassVar[dict[str, frozenset[str]]] = {"GET": READ}

    def __init__(self, repo: Repository) -> None:
        self.repo = repo

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        index = self.repo.read_index(select_snapshot(self.repo, _param(req, "snapshot")))
        rel, entry = find_entry(self.repo, index, _param(req, "path", ""))
        if entry is None:
            listing = decode_listing(self.repo.read_tree(index.root))
        elif entry["type"] == "dir":
            listing = decode_listing(self.repo.read_tree(ChunkId.from_hex(entry["tree"])))
        else:
            listing = None
        if listing is None:
            entries = [output.entry_json(rel, entry or {})]
        else:
            entries = [
                output.entry_json(f"{rel}/{e['name']}" if rel else e["name"], e) for e in listing
            ]
        if wants_html(req):
            resp.content_type = falcon.MEDIA_HTML
            resp.text = html.tree(index.name.path, rel, entries)
        else:
            resp.media = {"snapshot": index.name.path, "path": rel, "entries": entries}


class PathVersions:
    """Every version of one path, from the graph."""

    scopes: ClassVar[dict[str, frozenset[str]]] = {"GET": READ}

    def __init__(self, runner: QueryRunner, max_rows: int) -> None:
        self.runner = runner
        self.max_rows = max_rows

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        path = _param(req, "path").strip("/")
        request = QueryRequest(
            VERSIONS,
            ("application/sparql-results+json",),
            bindings={"path": path},
            max_rows=self.max_rows,
        )
        _, body = self.runner.run(request)
        rows = []
        for binding in json.loads(body)["results"]["bindings"]:
            row = {k: v["value"] for k, v in binding.items()}
            if "size" in row:
                row["size"] = int(row["size"])
            rows.append(row)
        if not rows:
            raise NotFound(f"no snapshot holds {path}")
        resp.media = {"path": path, "versions": rows}


class SnapshotFile:
    """A file's bytes, decrypted on the fly, seekable."""

    scopes: ClassVar[dict[str, frozenset[str]]] = {"GET": READ}

    def __init__(self, repo: Repository, reader: FileReader) -> None:
        self.repo = repo
        self.reader = reader

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        index = self.repo.read_index(select_snapshot(self.repo, _param(req, "snapshot")))
        version = self.reader.open(index, _param(req, "path"))
        name = version.path.rpartition("/")[2]
        resp.downloadable_as = name
        resp.last_modified = _http_date(version.mtime_ns)

        def chunks(start: int, end: int) -> Any:
            return self.reader.read(version, start, end)

        send_range(req, resp, version.size, version.etag, chunks)

    on_head = on_get


def _http_date(mtime_ns: int) -> datetime:
    return datetime.fromtimestamp(mtime_ns // 1_000_000_000, UTC)
