"""The blob routes: `/chute/blob/...` over a `BlobService` (ciphertext only).

The path after `/chute/blob/` is parsed by `blobnames.parse_blob_path`
into one of five kinds; `BLOB_ROUTES` says which methods each kind has
(the OpenAPI document is checked against it). A blob's domain and node
choose the repository (`chute.web.spaces`): this node's own, or the one
held for that node.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import falcon

from chute.errors import NotFound, UsageError
from chute.web.auth import BLOB_READ, DELETE, WRITE, check_space, request_token
from chute.web.blobnames import BlobPath, parse_blob_path, parse_name
from chute.web.blobservice import (
    DEFAULT_WINDOW,
    BlobInfo,
    PublicIndex,
    parse_digest,
    parse_window_hashes,
)
from chute.web.bodies import read_body
from chute.web.ranges import byte_range, content_range, etag_matches, if_range_allows
from chute.web.spaces import Space, Spaces

OCTETS = "application/octet-stream"

# kind -> (OpenAPI path template, methods)
BLOB_ROUTES: dict[str, tuple[str, tuple[str, ...]]] = {
    "blob": ("/chute/blob/{blob}/", ("GET", "DELETE")),
    "index": ("/chute/blob/{blob}/index.json", ("GET", "HEAD")),
    "stream": ("/chute/blob/{blob}/0", ("GET", "HEAD", "PUT")),
    "window": ("/chute/blob/{blob}/0/{n}/{m}", ("GET", "HEAD", "PUT")),
    "window-hash": ("/chute/blob/{blob}/0/{n}/{m}/hash/sha256", ("GET",)),
}
SCOPES: dict[str, frozenset[str]] = {
    "GET": BLOB_READ,
    "PUT": WRITE,
    "POST": WRITE,
    "DELETE": DELETE,
}


def send_range(
    req: falcon.Request,
    resp: falcon.Response,
    size: int,
    etag: str | None,
    chunks: Any,
) -> None:
    """Answer 200 or 206 with `chunks(start, end)` (an iterator factory) as the body."""
    resp.set_header("Accept-Ranges", "bytes")
    if etag:
        resp.etag = etag
    if etag and etag_matches(req.get_header("If-None-Match"), etag):
        resp.status = falcon.HTTP_304
        return
    span = None
    if if_range_allows(req.get_header("If-Range"), etag):
        span = byte_range(req.get_header("Range"), size)
    start, end = span if span is not None else (0, size)
    if span is not None:
        resp.status = falcon.HTTP_206
        resp.content_range = (start, end - 1, size)
    resp.content_type = OCTETS
    resp.content_length = end - start
    if req.method != "HEAD":
        resp.stream = chunks(start, end)


class BlobCollection:
    """`/chute/blob/`: list complete blobs, commit an index.json."""

    scopes = SCOPES
    spaced = True

    def __init__(
        self, spaces: Spaces, max_index: int, changed: Callable[[Space], None] | None = None
    ) -> None:
        self.spaces = spaces
        self.max_index = max_index
        self.changed = changed

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        filters = {k: req.get_param(k) or "" for k in ("domain", "node", "mount")}
        token = request_token(req)
        found: list[BlobInfo] = []
        for space in self.spaces.all():
            if filters["domain"] and space.domain != filters["domain"]:
                continue
            if token is not None and not token.covers(space.domain, space.node):
                continue
            found.extend(
                b
                for b in space.service.list(**filters)
                if (b.name.domain, b.name.node) == (space.domain, space.node)
            )
        resp.media = [b.as_json() for b in sorted(found, key=lambda b: b.name.path)]

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        data = read_body(req, self.max_index)
        name = parse_name(PublicIndex.parse(data).path)
        check_space(req, name.domain, name.node)
        space = self.spaces.get(name.domain, name.node)
        path, new = space.service.commit(data)
        if new and self.changed is not None:
            self.changed(space)
        resp.status = falcon.HTTP_201 if new else falcon.HTTP_200
        resp.location = f"/chute/blob/{path}/"
        resp.media = {"path": path, "location": resp.location, "created": new}


class BlobItem:
    """`/chute/blob/<blob>/...`: index, stream, windows, window hashes, delete."""

    scopes = SCOPES
    spaced = True

    def __init__(self, spaces: Spaces, changed: Callable[[Space], None] | None = None) -> None:
        self.spaces = spaces
        self.changed = changed

    def _path(self, req: falcon.Request, rest: str, method: str) -> tuple[BlobPath, Space]:
        path = parse_blob_path(rest)
        allowed = BLOB_ROUTES[path.kind][1]
        if method not in allowed:
            raise falcon.HTTPMethodNotAllowed(list(allowed))
        check_space(req, path.name.domain, path.name.node)
        return path, self.spaces.get(path.name.domain, path.name.node)

    # --- GET / HEAD -------------------------------------------------------

    def on_get(self, req: falcon.Request, resp: falcon.Response, rest: str) -> None:
        path, space = self._path(req, rest, req.method)
        blob = path.name.path
        if path.kind == "index":
            self._get_index(req, resp, space, blob)
        elif path.kind == "stream":
            self._get_stream(req, resp, space, blob)
        elif path.kind == "window":
            data = space.service.window(blob, path.window or 0, path.number or 0)
            send_range(req, resp, len(data), None, lambda a, b: iter([data[a:b]]))
        elif path.kind == "window-hash":
            data = space.service.window(blob, path.window or 0, path.number or 0)
            resp.media = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        else:
            index = space.service.index(blob)
            resp.media = {
                **BlobInfo(path.name).as_json(),
                "size": index.size,
                "window": index.window,
                "windows": len(index.windows),
            }

    on_head = on_get

    def _get_index(
        self, req: falcon.Request, resp: falcon.Response, space: Space, blob: str
    ) -> None:
        data = space.service.index_bytes(blob)
        etag = f'"{hashlib.sha256(data).hexdigest()}"'
        resp.etag = etag
        if etag_matches(req.get_header("If-None-Match"), etag):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = falcon.MEDIA_JSON
        resp.data = data

    def _get_stream(
        self, req: falcon.Request, resp: falcon.Response, space: Space, blob: str
    ) -> None:
        index = space.service.index(blob)
        if _wants_json(req):
            resp.media = {"sha256": index.checksum, "size": index.size}
            return

        def chunks(start: int, end: int) -> Iterator[bytes]:
            return space.service.read_stream(index, start, end)

        send_range(req, resp, index.size, f'"{index.checksum}"', chunks)

    # --- PUT --------------------------------------------------------------

    def on_put(self, req: falcon.Request, resp: falcon.Response, rest: str) -> None:
        path, space = self._path(req, rest, "PUT")
        if path.kind == "window":
            put_windows(req, resp, space, path.name.path, path.window or 0, path.number or 0)
            return
        sha = parse_digest(req.get_header("Content-Digest"), req.get_header("Chute-Sha256"))
        n = self._stream_window(req, space, path.name.path)
        header = req.get_header("Content-Range")
        if header:
            start, end, total = content_range(header)
        elif req.content_length is not None:
            start, end, total = 0, req.content_length, req.content_length
        else:
            raise falcon.HTTPLengthRequired(
                description="a stream PUT needs Content-Length or Content-Range"
            )
        if req.content_length is not None and req.content_length != end - start:
            raise UsageError("Content-Length does not match Content-Range")
        complete = space.service.put_stream(
            path.name.path, n, req.bounded_stream, start, end, total, sha
        )
        resp.status = falcon.HTTP_201
        resp.media = complete

    def _stream_window(self, req: falcon.Request, space: Space, blob: str) -> int:
        given = req.get_header("Chute-Window") or req.get_param("window")
        if given:
            if not given.isdigit():
                raise UsageError("Chute-Window wants a number of bytes")
            return int(given)
        try:
            return space.service.index(blob).window
        except NotFound:
            pass
        try:
            return int(json.loads(space.store.get("config")).get("window", DEFAULT_WINDOW))
        except (NotFound, ValueError, AttributeError):
            return DEFAULT_WINDOW

    # --- DELETE -----------------------------------------------------------

    def on_delete(self, req: falcon.Request, resp: falcon.Response, rest: str) -> None:
        path, space = self._path(req, rest, "DELETE")
        resp.media = {"deleted": space.service.delete(path.name.path)}
        if self.changed is not None:
            self.changed(space)


def put_windows(
    req: falcon.Request, resp: falcon.Response, space: Space, blob: str, n: int, m: int
) -> None:
    """PUT window m (one digest header) or windows m, m+1, ... (`Chute-Windows`)."""
    service = space.service
    service.check_window_size(n)
    several = req.get_header("Chute-Windows")
    if several:
        hashes = parse_window_hashes(several)
        if req.content_length is None:
            raise falcon.HTTPLengthRequired(description="a windows PUT needs Content-Length")
        new = service.put_windows(blob, n, m, req.bounded_stream, req.content_length, hashes)
        resp.status = falcon.HTTP_201 if new else falcon.HTTP_200
        resp.media = {"windows": len(hashes), "new": new}
        return
    sha = parse_digest(req.get_header("Content-Digest"), req.get_header("Chute-Sha256"))
    data = read_body(req, min(n, service.max_window))
    new_one = service.put_window(blob, n, m, data, sha)
    resp.status = falcon.HTTP_201 if new_one else falcon.HTTP_200
    resp.media = True


def _wants_json(req: falcon.Request) -> bool:
    accept = req.get_header("Accept") or ""
    return "application/json" in accept and req.client_prefers([OCTETS, falcon.MEDIA_JSON]) == (
        falcon.MEDIA_JSON
    )
