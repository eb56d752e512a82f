"""The repository routes: `/chute/repo/<domain>/<node>/...`, every object of a repository.

The blob routes carry only blob-shaped names, but a node that pushes its
repository, and a client that reads it back (`chute pull`, `chute get
--from`, `chute graph rebuild --from`), also needs `config`, `keys/<id>`,
prune's packs and forget's tombstones. These routes reach every object of
one space (`chute.web.spaces`) by its name in the repository; they are what
`chute.store.http.HttpStore` speaks, so a repository held by a peer is a
`BlobStore` like a local directory.

    GET      .../?prefix=P     the names under P (a JSON list, sorted, recursive)
    GET|HEAD .../<name>        an object (Range: 206); `?digest=sha256`: JSON
                               {"sha256", "size"}; on a window, `?count=k`:
                               windows m .. m+k-1 in one body (those present),
                               their sizes in `Chute-Window-Sizes`
    PUT      .../<name>        store it: immutable unless `?replace=1`
    DELETE   .../<name>        remove it

What a PUT checks depends on the shape of the name:

* `<blob>/0/<n>/<m>`: a window, verified as on the blob routes (a digest
  header, or `Chute-Windows` for several consecutive windows in one body);
* `<blob>/index.json`: committed only once every window it lists is stored
  and verified; `Chute-Pruned: 3,5-9` names windows the owner's prune
  removed (absent in the owner's repository too);
* anything else (`config`, `keys/<id>`, `locks/<id>`, tombstones, claims):
  stored as sent; a digest header is checked when given.

Scopes: reads need `read` or `write`, writes `write`. Replacing and
deleting need `delete`, and an append-only server refuses both, except
under `locks/`: a client's lock is written, renewed and removed with
`write` alone. A token limited to other nodes is refused.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import falcon

from chute.errors import Forbidden, IntegrityError, NotFound, UsageError
from chute.store.base import check_name
from chute.store.wire import parse_numbers
from chute.web.auth import BLOB_READ, DELETE, WRITE, check_scope, check_space
from chute.web.blobs import put_windows, send_range
from chute.web.blobservice import parse_digest
from chute.web.bodies import read_body
from chute.web.spaces import Space, Spaces

_NUMBER = r"(?:0|[1-9][0-9]{0,11})"
_WINDOW = re.compile(rf"^(?P<blob>.+)/0/(?P<n>{_NUMBER})/(?P<m>{_NUMBER})\Z")
_INDEX = re.compile(r"^(?P<blob>.+)/index\.json\Z")
LOCKS = "locks/"
MAX_COUNT = 1024

Changed = Callable[[Space], None]


@dataclass(frozen=True)
class ObjectName:
    """An object name in a repository, and what its shape makes it."""

    name: str
    kind: str  # "window", "index" or "object"
    blob: str = ""
    window: int = 0
    number: int = 0

    @classmethod
    def parse(cls, name: str) -> ObjectName:
        check_name(name)
        match = _WINDOW.match(name)
        if match:
            return cls(name, "window", match["blob"], int(match["n"]), int(match["m"]))
        match = _INDEX.match(name)
        if match:
            return cls(name, "index", match["blob"])
        return cls(name, "object")

    @property
    def mutable(self) -> bool:
        """Locks are renewed and removed with `write`, even on an append-only server."""
        return self.name.startswith(LOCKS)


def _space(req: falcon.Request, spaces: Spaces, domain: str, node: str) -> Space:
    check_space(req, domain, node)
    return spaces.get(domain, node)


class RepoListing:
    """`/chute/repo/<domain>/<node>/`: the names of a repository's objects."""

    scopes: ClassVar[dict[str, frozenset[str]]] = {"GET": BLOB_READ}
    spaced = True

    def __init__(self, spaces: Spaces) -> None:
        self.spaces = spaces

    def on_get(self, req: falcon.Request, resp: falcon.Response, domain: str, node: str) -> None:
        prefix = req.get_param("prefix") or ""
        if prefix:
            check_name(prefix)
        resp.media = list(_space(req, self.spaces, domain, node).store.list(prefix))


class RepoObject:
    """`/chute/repo/<domain>/<node>/<name>`: one object of a repository."""

    scopes: ClassVar[dict[str, frozenset[str]]] = {
        "GET": BLOB_READ,
        "PUT": WRITE,
        "DELETE": WRITE | DELETE,
    }
    spaced = True

    def __init__(
        self, spaces: Spaces, max_index: int, max_object: int, changed: Changed | None = None
    ) -> None:
        self.spaces = spaces
        self.max_index = max_index
        self.max_object = max_object
        self.changed = changed

    # --- reading ----------------------------------------------------------

    def on_get(
        self, req: falcon.Request, resp: falcon.Response, domain: str, node: str, name: str
    ) -> None:
        space = _space(req, self.spaces, domain, node)
        obj = ObjectName.parse(name)
        digest = req.get_param("digest")
        if digest is not None:
            if digest != "sha256":
                raise UsageError("digest: only sha256 is offered")
            data = space.store.get(obj.name)
            resp.media = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            return
        count = req.get_param_as_int("count", min_value=1, max_value=MAX_COUNT)
        if count is not None:
            self._windows(resp, space, obj, count)
            return
        size = space.store.size(obj.name)
        if size is None:
            raise NotFound(f"no object {obj.name}")

        def chunks(start: int, end: int) -> object:
            return iter([space.store.get(obj.name, start, end - start)])

        send_range(req, resp, size, None, chunks)

    on_head = on_get

    def _windows(self, resp: falcon.Response, space: Space, obj: ObjectName, count: int) -> None:
        if obj.kind != "window":
            raise UsageError("count is offered on windows only (<blob>/0/<n>/<m>)")
        space.service.check_window_size(obj.window)
        parts, limit = [], space.service.max_window * 4
        for number in range(obj.number, obj.number + count):
            try:
                data = space.store.get(f"{obj.blob}/0/{obj.window}/{number}")
            except NotFound:
                break
            parts.append(data)
            limit -= len(data)
            if limit <= 0:
                break
        if not parts:
            raise NotFound(f"no object {obj.name}")
        resp.set_header("Chute-Window-Sizes", ",".join(str(len(p)) for p in parts))
        resp.content_type = "application/octet-stream"
        resp.data = b"".join(parts)

    # --- writing ----------------------------------------------------------

    def on_put(
        self, req: falcon.Request, resp: falcon.Response, domain: str, node: str, name: str
    ) -> None:
        space = _space(req, self.spaces, domain, node)
        obj = ObjectName.parse(name)
        replace = req.get_param_as_bool("replace") or False
        if replace and obj.kind != "object":
            raise UsageError(f"{obj.name} is immutable: windows and index.json are never replaced")
        if obj.kind == "window":
            put_windows(req, resp, space, obj.blob, obj.window, obj.number)
            return
        if obj.kind == "index":
            pruned = req.get_header("Chute-Pruned")
            numbers = parse_numbers(pruned) if pruned else frozenset()
            data = read_body(req, self.max_index)
            _, new = space.service.commit(data, obj.blob, numbers)
            if new and self.changed is not None:
                self.changed(space)
            resp.status = falcon.HTTP_201 if new else falcon.HTTP_200
            resp.media = {"created": new}
            return
        if replace:
            self._may_change(req, space, obj, "to replace")
        sha = parse_digest(req.get_header("Content-Digest"), req.get_header("Chute-Sha256"))
        data = read_body(req, self.max_object)
        if sha is not None and hashlib.sha256(data).hexdigest() != sha:
            raise IntegrityError(f"{obj.name} does not match its SHA-256; nothing stored")
        existed = space.store.exists(obj.name)
        space.store.put(obj.name, data, replace=replace)
        resp.status = falcon.HTTP_200 if existed else falcon.HTTP_201
        resp.media = {"created": not existed}

    def on_delete(
        self, req: falcon.Request, resp: falcon.Response, domain: str, node: str, name: str
    ) -> None:
        space = _space(req, self.spaces, domain, node)
        obj = ObjectName.parse(name)
        self._may_change(req, space, obj, "to delete")
        existed = space.store.exists(obj.name)
        space.store.delete(obj.name)
        if obj.kind == "window":
            space.service.verified.forget(obj.blob)
        if existed and obj.kind == "index" and self.changed is not None:
            self.changed(space)
        resp.media = {"deleted": existed}

    @staticmethod
    def _may_change(req: falcon.Request, space: Space, obj: ObjectName, what: str) -> None:
        if obj.mutable:
            return
        if space.service.append_only:
            raise Forbidden("this server is append-only: nothing is replaced or deleted")
        check_scope(req, DELETE, what)
