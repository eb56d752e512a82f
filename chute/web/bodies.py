"""Request bodies: bounded reads, UTF-8 text, JSON objects (bad input is 4xx)."""

from __future__ import annotations

import json
from typing import Any

import falcon

from chute.errors import TooLarge, UsageError


def read_body(req: falcon.Request, limit: int) -> bytes:
    """Read a request body of at most `limit` bytes (413 beyond)."""
    if req.content_length is not None and req.content_length > limit:
        raise TooLarge(f"the body has {req.content_length} bytes; at most {limit} are accepted")
    data: bytes = req.bounded_stream.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"the body is larger than {limit} bytes")
    return data


def decode_text(body: bytes) -> str:
    """Decode UTF-8 text."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("the body is not UTF-8") from None


def json_object(body: bytes) -> dict[str, Any]:
    """Parse a JSON object (an empty body is `{}`)."""
    try:
        value = json.loads(decode_text(body) or "{}")
    except ValueError:
        raise UsageError("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise UsageError("the body must be a JSON object")
    return value
