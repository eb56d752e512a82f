"""Strict parsing of blob paths in URLs, before anything touches a disk.

    <domain>/<node>/<mount...>/<timestamp>/              the blob
    <domain>/<node>/<mount...>/<timestamp>/index.json    its manifest
    <domain>/<node>/<mount...>/<timestamp>/0             its stream
    <domain>/<node>/<mount...>/<timestamp>/0/<n>/<m>     window m of n bytes
    <domain>/<node>/<mount...>/<timestamp>/0/<n>/<m>/hash/sha256

The WSGI server has already percent-decoded the path once, so `..%2F` has
become `../` and is refused as a `..` segment. Every segment must match the
blob-name alphabet (`[A-Za-z0-9._~%-]`); a `%` must start a valid escape,
and a segment that decodes once more to `.`, `..`, or to anything holding
`/`, `\\` or NUL is refused too (double encoding). Numbers are canonical
decimals (no sign, no leading zero). Reserved first segments (`keys`,
`locks`, `config`, `.tmp`) cannot be blob domains.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from chute.errors import UsageError
from chute.ids import SEGMENT_RE, TIMESTAMP_RE, SnapshotName

RESERVED = frozenset({"keys", "locks", "config", ".tmp"})
_NUMBER = r"(?:0|[1-9][0-9]{0,11})"
_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")

KINDS = ("blob", "index", "stream", "window", "window-hash")
_SUFFIXES = [
    (
        "window-hash",
        re.compile(rf"^(?P<name>.+)/0/(?P<n>{_NUMBER})/(?P<m>{_NUMBER})/hash/sha256\Z"),
    ),
    ("window", re.compile(rf"^(?P<name>.+)/0/(?P<n>{_NUMBER})/(?P<m>{_NUMBER})\Z")),
    ("stream", re.compile(r"^(?P<name>.+)/0\Z")),
    ("index", re.compile(r"^(?P<name>.+)/index\.json\Z")),
    ("blob", re.compile(r"^(?P<name>.+)/\Z")),
]


@dataclass(frozen=True)
class BlobPath:
    """A parsed blob URL path."""

    name: SnapshotName
    kind: str
    window: int | None = None
    number: int | None = None

    @property
    def window_object(self) -> str:
        """The store name of the window this path addresses."""
        return f"{self.name.path}/0/{self.window}/{self.number}"


def check_url_segment(segment: str) -> str:
    """Refuse a segment outside the alphabet, with a bad escape, or that decodes to traversal."""
    if not SEGMENT_RE.match(segment) or _ESCAPE.search(segment):
        raise UsageError(f"invalid name segment: {segment!r}")
    decoded = unquote(segment, errors="strict") if "%" in segment else segment
    if decoded in (".", "..") or any(c in decoded for c in "/\\\x00"):
        raise UsageError(f"invalid name segment: {segment!r} (encoded traversal)")
    return segment


def parse_name(path: str) -> SnapshotName:
    """Parse `<domain>/<node>/<mount...>/<timestamp>` strictly."""
    parts = path.split("/")
    if len(parts) < 4 or len(path) > 1024:
        raise UsageError(f"not a blob name: {path!r}")
    for part in parts:
        check_url_segment(part)
    if parts[0] in RESERVED:
        raise UsageError(f"{parts[0]!r} is reserved, not a domain")
    if not TIMESTAMP_RE.match(parts[-1]):
        raise UsageError(f"not a blob name (no timestamp at its end): {path!r}")
    return SnapshotName(parts[0], parts[1], "/".join(parts[2:-1]), parts[-1])


def parse_blob_path(rest: str) -> BlobPath:
    """Parse what follows `/chute/blob/` in a URL."""
    try:
        for kind, pattern in _SUFFIXES:
            match = pattern.match(rest)
            if match is None:
                continue
            name = parse_name(match.group("name"))
            if kind in ("window", "window-hash"):
                return BlobPath(name, kind, int(match.group("n")), int(match.group("m")))
            return BlobPath(name, kind)
    except UnicodeDecodeError:
        raise UsageError("invalid name: bad percent-encoding") from None
    raise UsageError(f"not a blob path: {rest!r}")
