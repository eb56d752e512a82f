"""The server side of the blob API: all it can check without the key.

A blob is windows `0/<n>/<m>` first, `index.json` last. A blob is named by
its path in the store: a snapshot's `<domain>/<node>/<mount>/<timestamp>`
or any other prefix (prune's `packs/...`, reached through the repository
routes of `chute.web.repos`). Checks:

* a window is stored only when its SHA-256 is known and matches: from the
  request (`Content-Digest: sha-256=:<base64>:` or `Chute-Sha256: <hex>`,
  or `Chute-Windows: <hex>,<hex>,...` for several consecutive windows in one
  body) or, for a blob that is already complete, from its `index.json`; a
  window is at most `n` bytes (and `max_window`);
* `index.json` is accepted only when it is well-formed JSON naming the
  blob, and every window it lists is stored with the right size and SHA-256
  and the windows add up to `size` and `checksum`: a blob is never listed
  half-written. The one exception is what the owner's prune removed: a
  commit may name windows as pruned (absent in the owner's repository too);
  those must be absent here or verified, and the whole-stream checksum,
  which needs every window, is then not checked;
* everything is immutable: an identical re-PUT is fine, different bytes are
  409; `append_only` refuses DELETE.

A window that is sent again although it is stored is logged (`resent`): a
resumable client asks for window hashes first and never does that.

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
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from chute.errors import BlobConflict, Forbidden, IntegrityError, NotFound, UsageError
from chute.ids import SnapshotName
from chute.store.base import BlobStore
from chute.web.blobnames import RESERVED, parse_name
from chute.web.verified import Verified

DEFAULT_WINDOW = 8 << 20
MIN_WINDOW = 4096
MAX_WINDOWS_PER_PUT = 4096
_HEX = re.compile(r"^[0-9a-f]{64}\Z")
_DIGEST = re.compile(r"sha-256=:([A-Za-z0-9+/=]{44}):", re.IGNORECASE)

log = logging.getLogger("chute.web")


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


def parse_window_hashes(header: str) -> list[str]:
    """Parse `Chute-Windows: <hex>,<hex>,...` (the SHA-256 of each window in a body)."""
    hashes = [h.strip().lower() for h in header.split(",")]
    if not hashes or len(hashes) > MAX_WINDOWS_PER_PUT or not all(_HEX.match(h) for h in hashes):
        raise UsageError(
            f"Chute-Windows wants 1 to {MAX_WINDOWS_PER_PUT} comma-separated hex SHA-256s"
        )
    return hashes


@dataclass(frozen=True)
class PublicIndex:
    """The fields of an index.json the server checks."""

    path: str
    window: int
    windows: tuple[str, ...]
    size: int
    checksum: str

    @classmethod
    def parse(cls, data: bytes, path: str | None = None) -> PublicIndex:
        """Parse and check an index.json's public fields (UsageError if malformed).

        A snapshot's index names its blob (domain, node, mount, timestamp);
        it must be stored under that name. An index without a name (a pack)
        is accepted only at a `path` given by the request.
        """
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise UsageError("index.json is not valid JSON") from None
        if not isinstance(doc, dict):
            raise UsageError("index.json must be a JSON object")
        path = _index_path(doc, path)
        try:
            window, size = doc["window"], doc["size"]
            windows, checksum = doc["windows"], doc["checksum"]
        except KeyError as exc:
            raise UsageError(f"index.json lacks the field {exc.args[0]}") from None
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
        return cls(path, window, tuple(windows), size, checksum)

    def window_size(self, number: int) -> int:
        """The size window `number` must have."""
        return min(self.window, self.size - number * self.window)


def _index_path(doc: dict[str, Any], path: str | None) -> str:
    keys = ("domain", "node", "mount", "timestamp")
    if any(k in doc for k in keys[:3]):  # a pack has a timestamp but names no blob
        missing = [k for k in keys if k not in doc]
        if missing:
            raise UsageError(f"index.json lacks the field {missing[0]}")
        if not all(isinstance(doc[k], str) for k in keys):
            raise UsageError("index.json: domain, node, mount, timestamp must be strings")
        named = parse_name("/".join(str(doc[k]) for k in keys)).path
        if path is not None and path != named:
            raise UsageError(f"index.json names the blob {named}, not {path}")
        return named
    if path is None:
        raise UsageError("index.json lacks the field domain")
    return path


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
        self.verified = Verified()

    # --- reading ----------------------------------------------------------

    def index_bytes(self, blob: str) -> bytes:
        """Return a complete blob's index.json; NotFound if the blob is not complete."""
        try:
            return self.store.get(f"{blob}/index.json")
        except NotFound:
            raise NotFound(f"no blob {blob}") from None

    def index(self, blob: str) -> PublicIndex:
        """Return the checked public fields of a complete blob."""
        return PublicIndex.parse(self.index_bytes(blob), blob)

    def read_stream(self, index: PublicIndex, start: int, end: int) -> Iterator[bytes]:
        """Yield bytes `start..end` of a complete blob's stream, window by window."""
        offset = start
        while offset < end:
            number, inner = divmod(offset, index.window)
            take = min(end - offset, index.window - inner)
            part = self.store.get(f"{index.path}/0/{index.window}/{number}", inner, take)
            if len(part) != take:
                raise IntegrityError(f"window {number} of {index.path} is truncated")
            yield part
            offset += take

    def window(self, blob: str, n: int, m: int) -> bytes:
        """Return one stored window."""
        self.check_window_size(n)
        try:
            return self.store.get(f"{blob}/0/{n}/{m}")
        except NotFound:
            raise NotFound(f"no window {n}/{m} of {blob}") from None

    def window_hash(self, blob: str, n: int, m: int) -> str:
        """Return the SHA-256 of a stored window (what makes transfers resumable)."""
        return hashlib.sha256(self.window(blob, n, m)).hexdigest()

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

    def _complete_index(self, blob: str) -> PublicIndex | None:
        try:
            return self.index(blob)
        except NotFound:
            return None

    def _expected(
        self, index: PublicIndex | None, blob: str, n: int, m: int, sha: str | None
    ) -> str:
        """The SHA-256 window m must have: the request's, checked against a complete index."""
        if index is None:
            if sha is None:
                raise UsageError("give the window's SHA-256 (Content-Digest or Chute-Sha256)")
            return sha
        if n != index.window or m >= len(index.windows):
            raise BlobConflict(f"blob {blob} is complete; it has no window {n}/{m}")
        if sha is not None and sha != index.windows[m]:
            raise IntegrityError(f"the announced SHA-256 of window {m} is not its index's")
        return index.windows[m]

    def _store_window(self, blob: str, n: int, m: int, data: bytes, expected: str) -> bool:
        if hashlib.sha256(data).hexdigest() != expected:
            raise IntegrityError(f"window {m} does not match its SHA-256; nothing stored")
        obj = f"{blob}/0/{n}/{m}"
        existed = self.store.exists(obj)
        self.store.put(obj, data)
        if existed:
            log.info("resent: window %s was already stored", obj)
        self.verified.stored(blob, n, m, data, expected, lambda k: self._stored(blob, n, k))
        return not existed

    def _stored(self, blob: str, n: int, m: int) -> bytes | None:
        try:
            return self.store.get(f"{blob}/0/{n}/{m}")
        except NotFound:
            return None

    def put_window(self, blob: str, n: int, m: int, data: bytes, sha: str | None) -> bool:
        """Store one verified window; return True if it was new."""
        self.check_window_size(n)
        if len(data) > n:
            raise UsageError(f"window {m} has {len(data)} bytes, more than its size {n}")
        expected = self._expected(self._complete_index(blob), blob, n, m, sha)
        return self._store_window(blob, n, m, data, expected)

    def put_windows(
        self, blob: str, n: int, m: int, body: Readable, length: int, hashes: Sequence[str]
    ) -> int:
        """Store windows m, m+1, ... (one body, one SHA-256 each); return how many were new.

        Every window but the last has n bytes. Each is verified and stored
        before the next is read, so a broken request keeps the windows that
        arrived whole, and a bad one stores nothing from the bad window on.
        """
        self.check_window_size(n)
        count = len(hashes)
        if not (count - 1) * n < length <= count * n:
            raise UsageError(f"{count} windows of {n} bytes cannot have {length} bytes in all")
        index = self._complete_index(blob)
        new = 0
        for i, sha in enumerate(hashes):
            expected = self._expected(index, blob, n, m + i, sha)
            data = _read_exact(body, min(n, length - i * n))
            new += self._store_window(blob, n, m + i, data, expected)
        return new

    def put_stream(
        self,
        blob: str,
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
        index = self._complete_index(blob)
        if index is not None and (index.window != n or index.size != total):
            raise BlobConflict(f"blob {blob} is complete with another window size or size")
        whole = hashlib.sha256()
        created: list[str] = []
        try:
            for number in range(start // n, -(-end // n)):
                want = min(n, end - number * n)
                data = _read_exact(body, want)
                whole.update(data)
                obj = f"{blob}/0/{n}/{number}"
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
            self.store.size(f"{blob}/0/{n}/{i}") == min(n, total - i * n) for i in range(count)
        )

    def commit(
        self, data: bytes, blob: str | None = None, pruned: frozenset[int] = frozenset()
    ) -> tuple[str, bool]:
        """Store index.json once every window it lists is verified; return (blob path, new).

        `pruned` names windows the owner's prune removed: each must be absent
        here or verified like the others.
        """
        index = PublicIndex.parse(data, blob)
        obj = f"{index.path}/index.json"
        if self.store.exists(obj):
            self.store.put(obj, data)  # identical: fine; different: BlobConflict
            return index.path, False
        self.check_window_size(index.window)
        carried = self.verified.checksum(index.path, index.window, len(index.windows))
        whole = hashlib.sha256()
        complete = True
        for number, expected in enumerate(index.windows):
            name = f"{index.path}/0/{index.window}/{number}"
            want = index.window_size(number)
            remembered = carried is not None and self.verified.window(name) == (expected, want)
            if remembered and self.store.size(name) == want:
                continue  # verified as it was stored, and still there
            try:
                window = self.store.get(name)
            except NotFound:
                if number in pruned:
                    complete = False
                    continue
                raise IntegrityError(
                    f"window {number} of {index.path} is missing: send windows first"
                ) from None
            if len(window) != want or hashlib.sha256(window).hexdigest() != expected:
                raise IntegrityError(f"window {number} does not match index.json")
            if carried is None:
                whole.update(window)
        checksum = carried if carried is not None else whole.hexdigest()
        if complete and checksum != index.checksum:
            raise IntegrityError("the stream does not match the checksum of index.json")
        self.store.put(obj, data)
        self.verified.forget(index.path)
        return index.path, True

    def delete(self, blob: str) -> int:
        """Delete a blob: index.json first (it stops being listed), then its windows."""
        if self.append_only:
            raise Forbidden("this server is append-only: nothing is deleted")
        objects = [o for o in self.store.list(blob) if o != f"{blob}/index.json"]
        if not objects and not self.store.exists(f"{blob}/index.json"):
            raise NotFound(f"no blob {blob}")
        self.store.delete(f"{blob}/index.json")
        for obj in objects:
            self.store.delete(obj)
        self.verified.forget(blob)
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
