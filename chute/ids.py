"""Value types: chunk ids, snapshot names and their URIs.

A snapshot's blob is named `<domain>/<node>/<mount>/<timestamp>`; the mount
label may span several path segments (`opt/data`). Every segment is limited
to a strict alphabet (RFC 3986 unreserved characters plus `%` escapes) so a
name can be checked by a regular expression before it touches a disk or a
URL; `.` and `..` are never valid segments. A mount path is turned into a
label by dropping the leading `/` and percent-encoding every other byte.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from chute.errors import UsageError

TIMESTAMP_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z\Z")
SEGMENT_RE = re.compile(r"^(?!\.{1,2}\Z)[A-Za-z0-9._~%-]{1,255}\Z")
ROOT_LABEL = "-"


@dataclass(frozen=True, order=True)
class ChunkId:
    """A keyed 32-byte chunk or tree id."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != 32:
            raise ValueError("a chunk id has 32 bytes")

    @classmethod
    def from_hex(cls, text: str) -> ChunkId:
        """Parse 64 hex digits."""
        try:
            return cls(bytes.fromhex(text))
        except ValueError as exc:
            raise UsageError(f"not a chunk id: {text!r}") from exc

    @property
    def hex(self) -> str:
        return self.raw.hex()

    def __str__(self) -> str:
        return self.raw.hex()


def check_segment(segment: str, what: str = "name") -> str:
    """Return `segment` if it is a valid name segment, else raise UsageError."""
    if not SEGMENT_RE.match(segment):
        raise UsageError(f"invalid {what} segment: {segment!r}")
    return segment


def mount_label(path: str) -> str:
    """Turn an absolute mount path into a blob-name label (`/opt/data` -> `opt/data`)."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return ROOT_LABEL
    return "/".join(_encode_segment(p) for p in parts)


def _encode_segment(part: str) -> str:
    encoded = quote(part, safe="", errors="surrogateescape")
    if encoded in (".", ".."):
        encoded = encoded.replace(".", "%2E")
    return encoded


def check_label(label: str) -> str:
    """Validate a user-given mount label (one or more `/`-separated segments)."""
    for segment in label.split("/"):
        check_segment(segment, "mount label")
    return label


def timestamp_now(at: float | None = None) -> str:
    """Return the UTC timestamp `YYYYMMDDTHHMMSSZ` for `at` (default: now)."""
    moment = time.time() if at is None else at
    return datetime.fromtimestamp(moment, UTC).strftime("%Y%m%dT%H%M%SZ")


def parse_timestamp(text: str) -> datetime:
    """Parse a `YYYYMMDDTHHMMSSZ` timestamp into an aware datetime."""
    if not TIMESTAMP_RE.match(text):
        raise UsageError(f"invalid timestamp: {text!r}")
    return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


@dataclass(frozen=True, order=True)
class SnapshotName:
    """The name of a snapshot's blob: `<domain>/<node>/<mount>/<timestamp>`."""

    domain: str
    node: str
    mount: str
    timestamp: str

    def __post_init__(self) -> None:
        check_segment(self.domain, "domain")
        check_segment(self.node, "node")
        check_label(self.mount)
        if not TIMESTAMP_RE.match(self.timestamp):
            raise UsageError(f"invalid timestamp: {self.timestamp!r}")

    @property
    def path(self) -> str:
        """The blob's path in a repository, without a trailing slash."""
        return f"{self.domain}/{self.node}/{self.mount}/{self.timestamp}"

    def uri(self, base: str) -> str:
        """The snapshot's IRI under the node's public base URL."""
        return f"{base.rstrip('/')}/chute/blob/{self.path}/"

    @property
    def mount_path(self) -> str:
        """The mount as a readable path (labels made from paths decode back)."""
        if self.mount == ROOT_LABEL:
            return "/"
        return "/" + "/".join(unquote(p, errors="surrogateescape") for p in self.mount.split("/"))

    @classmethod
    def parse(cls, text: str) -> SnapshotName:
        """Parse a blob path or a snapshot URI (`.../chute/blob/<path>/`)."""
        path = text
        if "/chute/blob/" in path:
            path = path.split("/chute/blob/", 1)[1]
        path = path.strip("/")
        if path.endswith("/index.json"):
            path = path[: -len("/index.json")]
        parts = path.split("/")
        if len(parts) < 4:
            raise UsageError(f"not a snapshot name: {text!r}")
        return cls(parts[0], parts[1], "/".join(parts[2:-1]), parts[-1])
