"""The HTTP peer backend: a repository that a chute server holds, as a BlobStore.

`HttpStore` speaks the repository routes of `chute serve`
(`/chute/repo/<domain>/<node>/<name>`, see `chute.web.repos`): every name
of the store maps to one URL, so config, keys, windows, index.json, locks
and tombstones all travel the same way, and the one contract suite runs
against it as against a directory. The server checks what it can without
the key: windows against their SHA-256 (sent with every PUT), index.json
only once every window it lists is verified.

`HttpClient` is the plumbing the peer transfers share: one keep-alive
connection per thread, a bearer token, a socket timeout, and retries with
exponential backoff on what may pass (5xx answers, refused or broken
connections, timeouts). Other answers map to chute's errors at once (404
NotFound, 409 BlobConflict, 422 IntegrityError ...); after the last retry
the error is a StorageError that names the peer and what failed.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from chute import errors
from chute.errors import NotFound, StorageError, UsageError
from chute.store.base import BlobStore, check_name, check_range

DEFAULT_TIMEOUT = 60.0
DEFAULT_ATTEMPTS = 6
MAX_BACKOFF = 30.0
Body = bytes | memoryview | list[bytes | memoryview] | None

_ERRORS: dict[int, type[errors.ChuteError]] = {
    400: UsageError,
    401: errors.Unauthorized,
    403: errors.Forbidden,
    404: NotFound,
    405: UsageError,
    409: errors.BlobConflict,
    411: UsageError,
    413: errors.TooLarge,
    422: errors.IntegrityError,
    423: errors.Locked,
}


class Transient(Exception):
    """A failure that may pass: a 5xx answer, a refused or broken connection, a timeout."""


@dataclass(frozen=True)
class Reply:
    """One HTTP answer, read whole."""

    status: int
    headers: dict[str, str]
    data: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        try:
            return json.loads(self.data)
        except ValueError:
            raise StorageError(f"the peer answered {self.status} with no JSON") from None


class _Connection(http.client.HTTPConnection):
    """HTTP with TCP_NODELAY: headers and body parts go out at once (no Nagle delay)."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _TlsConnection(http.client.HTTPSConnection):
    """HTTPS with TCP_NODELAY."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _message(reply: Reply) -> str:
    try:
        doc = json.loads(reply.data)
        return str(doc["message"])
    except (ValueError, KeyError, TypeError):
        return reply.data[:200].decode("utf-8", "replace") or f"HTTP {reply.status}"


@dataclass
class HttpClient:
    """Requests to one chute server, with keep-alive, a token and retries."""

    url: str
    token: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    attempts: int = DEFAULT_ATTEMPTS
    backoff: float = 0.5
    sleep: Callable[[float], None] = time.sleep
    _local: threading.local = field(default_factory=threading.local, repr=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"a peer URL is http://HOST[:PORT] or https://..., not {self.url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.url = self.url.rstrip("/")

    # --- one attempt ------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self.scheme == "https":
                context = ssl.create_default_context()
                conn = _TlsConnection(self.host, self.port, timeout=self.timeout, context=context)
            else:
                conn = _Connection(self.host, self.port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def drop(self) -> None:
        """Close this thread's connection (the next request opens a new one)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def send(
        self, method: str, path: str, body: Body = None, headers: dict[str, str] | None = None
    ) -> Reply:
        """Send one request; Transient on what a retry may fix."""
        all_headers = dict(headers or {})
        if self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            all_headers["Content-Length"] = str(_length(body))
        conn = self._connection()
        try:
            conn.request(method, self.prefix + path, body=_iterable(body), headers=all_headers)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            self.drop()
            kind = "timed out" if isinstance(exc, socket.timeout | TimeoutError) else "failed"
            raise Transient(f"{method} {path} {kind}: {exc or type(exc).__name__}") from exc
        reply = Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        if resp.will_close:
            self.drop()
        if reply.status >= 500:
            raise Transient(f"{method} {path}: {reply.status} {_message(reply)}")
        return reply

    # --- with retries -----------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Body = None,
        headers: dict[str, str] | None = None,
        expect: Iterable[int] = (200, 201, 204, 206),
    ) -> Reply:
        """Send a request, retrying what may pass; map other failures to chute's errors."""
        reply = self.retrying(lambda: self.send(method, path, body, headers), f"{method} {path}")
        if reply.status not in tuple(expect):
            raise_for(reply, f"{method} {path}")
        return reply

    def retrying(self, call: Callable[[], Reply], what: str) -> Reply:
        """Run `call` until it does not raise Transient, with exponential backoff."""
        last = Transient(f"{what}: not tried")
        for attempt in range(max(self.attempts, 1)):
            try:
                return call()
            except Transient as exc:
                last = exc
                if attempt + 1 < self.attempts:
                    self.sleep(min(self.backoff * 2**attempt, MAX_BACKOFF))
        raise StorageError(f"peer {self.url}: {last} (gave up after {self.attempts} attempts)")


def raise_for(reply: Reply, what: str) -> None:
    """Raise the chute error an HTTP answer stands for."""
    cls = _ERRORS.get(reply.status, StorageError)
    raise cls(f"{what}: {_message(reply)}")


def _length(body: Body) -> int:
    if body is None:
        return 0
    if isinstance(body, list):
        return sum(len(part) for part in body)
    return len(body)


def _iterable(body: Body) -> bytes | memoryview | Iterator[bytes | memoryview] | None:
    if isinstance(body, list):
        return iter(body)
    return body


def sha256_hex(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


class HttpStore(BlobStore):
    """The repository a chute server holds for `<domain>/<node>`, over HTTP."""

    def __init__(self, client: HttpClient, domain: str, node: str) -> None:
        self.client = client
        self.domain = domain
        self.node = node
        self.base = f"/chute/repo/{quote(domain, safe='')}/{quote(node, safe='')}/"
        self.location = f"{client.url}{self.base}"

    def url(self, name: str, **params: str) -> str:
        """The path of an object (its name percent-encoded, `/` kept)."""
        path = self.base + quote(check_name(name), safe="/")
        return f"{path}?{urlencode(params)}" if params else path

    def put(self, name: str, data: bytes | memoryview, replace: bool = False) -> None:
        url = self.url(name, replace="1") if replace else self.url(name)
        headers = {"Chute-Sha256": sha256_hex(data), "Content-Type": "application/octet-stream"}
        self.client.request("PUT", url, memoryview(data), headers)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        url = self.url(name)
        check_range(offset, length)
        if length == 0:
            if self.size(name) is None:
                raise NotFound(f"no object {name}")
            return b""
        headers = {}
        if offset or length is not None:
            last = "" if length is None else str(offset + length - 1)
            headers["Range"] = f"bytes={offset}-{last}"
        reply = self.client.request("GET", url, None, headers, expect=(200, 206, 416))
        if reply.status == 416:
            return b""
        return reply.data

    def size(self, name: str) -> int | None:
        reply = self.client.request("HEAD", self.url(name), expect=(200, 404))
        if reply.status == 404:
            return None
        return int(reply.header("Content-Length") or 0)

    def list(self, prefix: str = "") -> Iterator[str]:
        if prefix:
            check_name(prefix)
        query = f"?{urlencode({'prefix': prefix})}" if prefix else ""
        names = self.client.request("GET", self.base + query).json()
        if not isinstance(names, list):
            raise StorageError(f"peer {self.client.url}: a listing is not a JSON list")
        yield from (str(n) for n in names)

    def delete(self, name: str) -> None:
        self.client.request("DELETE", self.url(name))
