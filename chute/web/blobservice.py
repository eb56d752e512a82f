"""The server side of the blob API: all it can check without the key.

A blob is windows `0/<n>/<m>` first, `index.json` last. Checks:

* a window is stored only when its SHA-256 is known and matches: from the
  request (`Content-Digest: sha-256=:<base64>:` or `Chute-Sha256: <hex>`)
  or, for a blob that is already complete, from its `index.json`; a window
  is at most `n` bytes (and `max_window`);
* `index.json` is accepted only when it is well-formed JSON naming the
  blob, and every window it lists is stored with the right size and SHA-256
  and the windows add up to `size` and `checksum`: a blob is never listed
  half-written;
* everything is immutable: an identical re-PUT is fine, different bytes are
  409; `append_only` refuses DELETE.

The store writes atomically (temp + rename), so a failed or interrupted
request leaves no partial object. A whole-stream PUT stores windows as they
arrive; if its digest then does not match, the windows it created are
removed again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from chute.errors import BlobConflict, Forbidden, IntegrityError, NotFound, UsageError
from chute.ids import SnapshotName
from chute.store.base import BlobStore
from chute.web.blobnames import RESERVED, parse_name

DEFAULT_WINDOW = 8 << 20
MIN_WINDOW = 4096
_HEX = re.compile(r"^[0-9a-f]{64}\Z")
_DIGEST = re.compile(r"sha-256=:([A-Za-z0-9+/=]{44}):", re.IGNORECASE)


class Readable(Protocol):
    """A request body: something with `read(size)`."""

    def read(self, size: int = -1, /) -> bytes: ...


def parse_digest(content_digest: str | None, chute_sha256: str | None) -> str | None:
    """Return the hex SHA-256 a request announces for its body, if any."""
    if chute_sha256:
        value = chute_sha256.strip().lower()
        if not _HEX.match(value):
            raise UsageError("Chute-Sha256 wants 64 hex digits")
        return value
    if content_digest:
        match = _DIGEST.search(content_digest)
        if match is None:
            raise UsageError("Content-Digest wants sha-256=:<base64>:")
        try:
            return base64.b64decode(match.group(1), validate=True).hex()
        except binascii.Error:
            raise UsageError("Content-Digest: bad base64") from None
    return None


@dataclass(frozen=True)
class PublicIndex:
    """The fields of an index.json the server checks."""

    name: SnapshotName
    window: int
    windows: tuple[str, ...]
    size: int
    checksum: str

    @classmethod
    def parse(cls, data: bytes) -> PublicIndex:
        """Parse and check an index.json's public fields (UsageError if malformed)."""
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise UsageError("index.json is not valid JSON") from None
        if not isinstance(doc, dict):
            raise UsageError("index.json must be a JSON object")
        try:
            name = parse_name(
                "/".join(str(doc[k]) for k in ("domain", "node", "mount", "timestamp"))
            )
            window, size = doc["window"], doc["size"]
            windows, checksum = doc["windows"], doc["checksum"]
        except KeyError as exc:
            raise UsageError(f"index.json lacks the field {exc.args[0]}") from None
        if not all(isinstance(doc[k], str) for k in ("domain", "node", "mount", "timestamp")):
            raise UsageError("index.json: domain, node, mount, timestamp must be strings")
        if not (_is_int(window) and window >= MIN_WINDOW and _is_int(size) and size >= 0):
            raise UsageError("index.json: window and size must be non-negative integers")
        if not isinstance(windows, list) or not all(
            isinstance(w, str) and _HEX.match(w) for w in windows
        ):
            raise UsageError("index.json: windows must be a list of hex SHA-256s")
        if not isinstance(checksum, str) or not _HEX.match(checksum):
            raise UsageError("index.json: checksum must be a hex SHA-256")
        if len(windows) != -(-size // window) or doc.get("shards", len(windows)) != len(windows):
            raise UsageError("index.json: the window count does not fit size and window")
        return cls(name, window, tuple(windows), size, checksum)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class BlobInfo:
    """A complete blob, as listed."""

    name: SnapshotName

    def as_json(self) -> dict[str, str]:
        return {
            "path": self.name.path,
            "domain": self.name.domain,
            "node": self.name.node,
            "mount": self.name.mount,
            "timestamp": self.name.timestamp,
            "location": f"/chute/blob/{self.name.path}/",
        }


class BlobService:
    """Blob operations over a store, with every check that needs no key."""

    def __init__(self, store: BlobStore, append_only: bool, max_window: int) -> None:
        self.store = store
        self.append_only = append_only
        self.max_window = max_window

    # --- reading ----------------------------------------------------------

    def index_bytes(self, name: SnapshotName) -> bytes:
        """Return a complete blob's index.json; NotFound if the blob is not complete."""
        try:
            return self.store.get(f"{name.path}/index.json")
        except NotFound:
            raise NotFound(f"no blob {name.path}") from None

    def index(self, name: SnapshotName) -> PublicIndex:
        """Return the checked public fields of a complete blob."""
        return PublicIndex.parse(self.index_bytes(name))

    def read_stream(self, index: PublicIndex, start: int, end: int) -> Iterator[bytes]:
        """Yield bytes `start..end` of a complete blob's stream, window by window."""
        offset = start
        while offset < end:
            number, inner = divmod(offset, index.window)
            take = min(end - offset, index.window - inner)
            part = self.store.get(f"{index.name.path}/0/{index.window}/{number}", inner, take)
            if len(part) != take:
                raise IntegrityError(f"window {number} of {index.name.path} is truncated")
            yield part
            offset += take

    def window(self, name: SnapshotName, n: int, m: int) -> bytes:
        """Return one stored window."""
        self.check_window_size(n)
        try:
            return self.store.get(f"{name.path}/0/{n}/{m}")
        except NotFound:
            raise NotFound(f"no window {n}/{m} of {name.path}") from None

    def window_hash(self, name: SnapshotName, n: int, m: int) -> str:
        """Return the SHA-256 of a stored window (what makes transfers resumable)."""
        return hashlib.sha256(self.window(name, n, m)).hexdigest()

    def list(self, domain: str = "", node: str = "", mount: str = "") -> list[BlobInfo]:
        """List complete blobs, optionally of one domain, node, mount label."""
        prefix = ""
        if domain:
            prefix = domain if not node else f"{domain}/{node}"
            prefix = prefix if not (node and mount) else f"{prefix}/{mount}"
        found = []
        for obj in self.store.list(prefix):
            if not obj.endswith("/index.json") or obj.split("/", 1)[0] in RESERVED:
                continue
            try:
                name = parse_name(obj[: -len("/index.json")])
            except UsageError:
                continue
            if (node and name.node != node) or (mount and name.mount != mount):
                continue
            found.append(BlobInfo(name))
        return found

    # --- writing ----------------------------------------------------------

    def check_window_size(self, n: int) -> None:
        if not MIN_WINDOW <= n <= self.max_window:
            raise UsageError(f"window size {n} is outside {MIN_WINDOW}..{self.max_window}")

    def _complete_index(self, name: SnapshotName) -> PublicIndex | None:
        try:
            return self.index(name)
        except NotFound:
            return None

    def put_window(self, name: SnapshotName, n: int, m: int, data: bytes, sha: str | None) -> bool:
        """Store one verified window; return True if it was new."""
        self.check_window_size(n)
        if len(data) > n:
            raise UsageError(f"window {m} has {len(data)} bytes, more than its size {n}")
        expected = sha
        index = self._complete_index(name)
        if index is not None:
            if n != index.window or m >= len(index.windows):
                raise BlobConflict(f"blob {name.path} is complete; it has no window {n}/{m}")
            if expected is not None and expected != index.windows[m]:
                raise IntegrityError(f"the announced SHA-256 of window {m} is not its index's")
            expected = index.windows[m]
        if expected is None:
            raise UsageError("give the window's SHA-256 (Content-Digest or Chute-Sha256)")
        if hashlib.sha256(data).hexdigest() != expected:
            raise IntegrityError(f"window {m} does not match its SHA-256; nothing stored")
        obj = f"{name.path}/0/{n}/{m}"
        existed = self.store.exists(obj)
        self.store.put(obj, data)
        return not existed

    def put_stream(
        self,
        name: SnapshotName,
        n: int,
        body: Readable,
        start: int,
        end: int,
        total: int,
        sha: str | None,
    ) -> bool:
        """Store bytes `start..end` of a `total`-byte stream as windows; True if complete."""
        self.check_window_size(n)
        if start % n or (end % n and end != total):
            raise UsageError(f"a stream part must cover whole windows of {n} bytes")
        if sha is None:
            raise UsageError("give the body's SHA-256 (Content-Digest or Chute-Sha256)")
        index = self._complete_index(name)
        if index is not None and (index.window != n or index.size != total):
            raise BlobConflict(f"blob {name.path} is complete with another window size or size")
        whole = hashlib.sha256()
        created: list[str] = []
        try:
            for number in range(start // n, -(-end // n)):
                want = min(n, end - number * n)
                data = _read_exact(body, want)
                whole.update(data)
                obj = f"{name.path}/0/{n}/{number}"
                if index is not None and hashlib.sha256(data).hexdigest() != index.windows[number]:
                    raise IntegrityError(f"window {number} does not match the blob's index")
                if not self.store.exists(obj):
                    self.store.put(obj, data)
                    created.append(obj)
                else:
                    self.store.put(obj, data)  # identical is fine, other bytes: BlobConflict
            if body.read(1):
                raise UsageError("the body is longer than its Content-Range")
            if whole.hexdigest() != sha:
                raise IntegrityError("the body does not match its SHA-256; nothing stored")
        except BaseException:
            for obj in created:
                self.store.delete(obj)
            raise
        count = -(-total // n)
        return all(
            self.store.size(f"{name.path}/0/{n}/{i}") == min(n, total - i * n) for i in range(count)
        )

    def commit(self, data: bytes) -> tuple[SnapshotName, bool]:
        """Store index.json once every window it lists is verified; return (name, new)."""
        index = PublicIndex.parse(data)
        obj = f"{index.name.path}/index.json"
        if self.store.exists(obj):
            self.store.put(obj, data)  # identical: fine; different: BlobConflict
            return index.name, False
        self.check_window_size(index.window)
        whole = hashlib.sha256()
        for number, expected in enumerate(index.windows):
            want = min(index.window, index.size - number * index.window)
            try:
                window = self.store.get(f"{index.name.path}/0/{index.window}/{number}")
            except NotFound:
                raise IntegrityError(
                    f"window {number} of {index.name.path} is missing: send windows first"
                ) from None
            if len(window) != want or hashlib.sha256(window).hexdigest() != expected:
                raise IntegrityError(f"window {number} does not match index.json")
            whole.update(window)
        if whole.hexdigest() != index.checksum:
            raise IntegrityError("the stream does not match the checksum of index.json")
        self.store.put(obj, data)
        return index.name, True

    def delete(self, name: SnapshotName) -> int:
        """Delete a blob: index.json first (it stops being listed), then its windows."""
        if self.append_only:
            raise Forbidden("this server is append-only: nothing is deleted")
        objects = [o for o in self.store.list(name.path) if o != f"{name.path}/index.json"]
        if not objects and not self.store.exists(f"{name.path}/index.json"):
            raise NotFound(f"no blob {name.path}")
        self.store.delete(f"{name.path}/index.json")
        for obj in objects:
            self.store.delete(obj)
        return len(objects) + 1


def _read_exact(body: Readable, size: int) -> bytes:
    parts = []
    left = size
    while left:
        part = body.read(left)
        if not part:
            raise UsageError("the body is shorter than its Content-Range")
        parts.append(part)
        left -= len(part)
    return b"".join(parts)
