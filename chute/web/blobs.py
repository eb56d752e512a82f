"""The blob routes: `/chute/blob/...` over a `BlobService` (ciphertext only).

The path after `/chute/blob/` is parsed by `blobnames.parse_blob_path`
into one of five kinds; `BLOB_ROUTES` says which methods each kind has
(the OpenAPI document is checked against it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import falcon

from chute.errors import NotFound, UsageError
from chute.store.base import BlobStore
from chute.web.auth import BLOB_READ, DELETE, WRITE
from chute.web.blobnames import BlobPath, parse_blob_path
from chute.web.blobservice import DEFAULT_WINDOW, BlobInfo, BlobService, parse_digest
from chute.web.bodies import read_body
from chute.web.ranges import byte_range, content_range, etag_matches, if_range_allows

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

    def __init__(self, service: BlobService, max_index: int) -> None:
        self.service = service
        self.max_index = max_index

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        filters = {k: req.get_param(k) or "" for k in ("domain", "node", "mount")}
        resp.media = [b.as_json() for b in self.service.list(**filters)]

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        name, new = self.service.commit(read_body(req, self.max_index))
        resp.status = falcon.HTTP_201 if new else falcon.HTTP_200
        resp.location = f"/chute/blob/{name.path}/"
        resp.media = {"path": name.path, "location": resp.location, "created": new}


class BlobItem:
    """`/chute/blob/<blob>/...`: index, stream, windows, window hashes, delete."""

    scopes = SCOPES

    def __init__(self, service: BlobService, store: BlobStore) -> None:
        self.service = service
        self.store = store

    def _path(self, rest: str, method: str) -> BlobPath:
        path = parse_blob_path(rest)
        allowed = BLOB_ROUTES[path.kind][1]
        if method not in allowed:
            raise falcon.HTTPMethodNotAllowed(list(allowed))
        return path

    # --- GET / HEAD -------------------------------------------------------

    def on_get(self, req: falcon.Request, resp: falcon.Response, rest: str) -> None:
        path = self._path(rest, req.method)
        if path.kind == "index":
            self._get_index(req, resp, path)
        elif path.kind == "stream":
            self._get_stream(req, resp, path)
        elif path.kind == "window":
            data = self.service.window(path.name, path.window or 0, path.number or 0)
            send_range(req, resp, len(data), None, lambda a, b: iter([data[a:b]]))
        elif path.kind == "window-hash":
            data = self.service.window(path.name, path.window or 0, path.number or 0)
            resp.media = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        else:
            index = self.service.index(path.name)
            resp.media = {
                **BlobInfo(path.name).as_json(),
                "size": index.size,
                "window": index.window,
                "windows": len(index.windows),
            }

    on_head = on_get

    def _get_index(self, req: falcon.Request, resp: falcon.Response, path: BlobPath) -> None:
        data = self.service.index_bytes(path.name)
        etag = f'"{hashlib.sha256(data).hexdigest()}"'
        resp.etag = etag
        if etag_matches(req.get_header("If-None-Match"), etag):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = falcon.MEDIA_JSON
        resp.data = data

    def _get_stream(self, req: falcon.Request, resp: falcon.Response, path: BlobPath) -> None:
        index = self.service.index(path.name)
        if _wants_json(req):
            resp.media = {"sha256": index.checksum, "size": index.size}
            return

        def chunks(start: int, end: int) -> Iterator[bytes]:
            return self.service.read_stream(index, start, end)

        send_range(req, resp, index.size, f'"{index.checksum}"', chunks)

    # --- PUT --------------------------------------------------------------

    def on_put(self, req: falcon.Request, resp: falcon.Response, rest: str) -> None:
        path = self._path(rest, "PUT")
        sha = parse_digest(req.get_header("Content-Digest"), req.get_header("Chute-Sha256"))
        if path.kind == "window":
            n = path.window or 0
            self.service.check_window_size(n)
            data = read_body(req, min(n, self.service.max_window))
            new = self.service.put_window(path.name, n, path.number or 0, data, sha)
            resp.status = falcon.HTTP_201 if new else falcon.HTTP_200
            resp.media = True
            return
        n = self._stream_window(req, path)
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
        complete = self.service.put_stream(path.name, n, req.bounded_stream, start, end, total, sha)
        resp.status = falcon.HTTP_201
        resp.media = complete

    def _stream_window(self, req: falcon.Request, path: BlobPath) -> int:
        given = req.get_header("Chute-Window") or req.get_param("window")
        if given:
            if not given.isdigit():
                raise UsageError("Chute-Window wants a number of bytes")
            return int(given)
        try:
            return self.service.index(path.name).window
        except NotFound:
            pass
        try:
            return int(json.loads(self.store.get("config")).get("window", DEFAULT_WINDOW))
        except (NotFound, ValueError, AttributeError):
            return DEFAULT_WINDOW

    # --- DELETE -----------------------------------------------------------

    def on_delete(self, req: falcon.Request, resp: falcon.Response, rest: str) -> None:
        path = self._path(rest, "DELETE")
        resp.media = {"deleted": self.service.delete(path.name)}


def _wants_json(req: falcon.Request) -> bool:
    accept = req.get_header("Accept") or ""
    return "application/json" in accept and req.client_prefers([OCTETS, falcon.MEDIA_JSON]) == (
        falcon.MEDIA_JSON
    )
