"""One JSON error shape for every 4xx and 5xx the app answers.

    {"error": "<stable code>", "status": <HTTP status>, "message": "<one line>"}

Domain errors (`chute.errors.ChuteError`) carry their status and code;
falcon's own HTTP errors (404 for an unknown route, 405, 406, 416 ...) are
serialised to the same shape with a code made from the status; anything
else is a bug: it is logged with its traceback and answered as a 500 with
the code `internal` and no detail.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

import falcon

from chute.errors import ChuteError, Unauthorized

log = logging.getLogger("chute.web")

_CODES = {413: "too-large", 422: "integrity", 500: "internal", 503: "unavailable"}


def status_code(status: int) -> str:
    """Return the stable error code of an HTTP status (`method-not-allowed`)."""
    if status in _CODES:
        return _CODES[status]
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "-").replace("'", "")
    except ValueError:
        return "error"


def error_body(status: int, code: str, message: str) -> bytes:
    """Return the one error shape as JSON bytes."""
    return json.dumps({"error": code, "status": status, "message": message}).encode() + b"\n"


def _set(resp: falcon.Response, status: int, code: str, message: str) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.data = error_body(status, code, message)


def handle_chute_error(
    req: falcon.Request, resp: falcon.Response, ex: ChuteError, params: dict[str, Any]
) -> None:
    """Answer a domain error with its own status and code."""
    _set(resp, ex.http_status, ex.code, ex.message)
    if isinstance(ex, Unauthorized):
        resp.set_header("WWW-Authenticate", 'Bearer realm="chute"')


def handle_unexpected(
    req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict[str, Any]
) -> None:
    """Log a bug with its traceback; answer 500 without detail."""
    if isinstance(ex, falcon.HTTPError):  # falcon's own errors keep their status
        raise ex
    log.exception("unexpected error on %s %s", req.method, req.path)
    _set(resp, 500, "internal", "internal server error (logged on the server)")


def serialize_http_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    """Serialise falcon's HTTP errors in the one shape."""
    status = exc.status_code
    message = exc.description or exc.title or HTTPStatus(status).phrase
    resp.content_type = falcon.MEDIA_JSON
    resp.data = error_body(status, status_code(status), " ".join(str(message).split()))


def install(app: falcon.App) -> None:
    """Register the handlers on an app."""
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(ChuteError, handle_chute_error)
    app.set_error_serializer(serialize_http_error)
