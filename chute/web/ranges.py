"""HTTP byte ranges: `Range` on GET, `Content-Range` on PUT.

Only single ranges are served; a `Range` header that is malformed or asks
for several ranges is ignored (RFC 9110 allows that: the whole entity is
sent). A satisfiable range gives 206, an unsatisfiable one 416 with
`Content-Range: bytes */<size>`. On PUT, `Content-Range: bytes a-b/total`
must be exact and complete (no `*`).
"""

from __future__ import annotations

import re

import falcon

from chute.errors import UsageError

_RANGE = re.compile(r"^bytes=(?:(\d{1,19})-(\d{0,19})|-(\d{1,19}))\Z")
_CONTENT_RANGE = re.compile(r"^bytes (\d{1,19})-(\d{1,19})/(\d{1,19})\Z")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Return (start, end exclusive) for a single `Range`, None to send everything."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last, suffix = match.groups()
    if suffix is not None:
        length = int(suffix)
        if length == 0:
            raise falcon.HTTPRangeNotSatisfiable(size)
        return max(size - length, 0), size
    start = int(first)
    end = int(last) + 1 if last else size
    if last and end <= start:
        return None  # last < first: syntactically invalid, ignored
    if start >= size:
        raise falcon.HTTPRangeNotSatisfiable(size)
    return start, min(end, size)


def content_range(header: str) -> tuple[int, int, int]:
    """Parse `bytes a-b/total` into (start, end exclusive, total)."""
    match = _CONTENT_RANGE.match(header.strip())
    if match is None:
        raise UsageError(f"bad Content-Range {header!r}: want `bytes FIRST-LAST/TOTAL`")
    first, last, total = (int(g) for g in match.groups())
    if not first <= last < total:
        raise UsageError(f"bad Content-Range {header!r}: FIRST <= LAST < TOTAL")
    return first, last + 1, total


def if_range_allows(if_range: str | None, etag: str | None) -> bool:
    """Tell whether a Range may be honoured given `If-Range` (only strong ETags match)."""
    if not if_range:
        return True
    return etag is not None and if_range.strip() == etag


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Tell whether `If-None-Match` names this entity tag (or is `*`)."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags
