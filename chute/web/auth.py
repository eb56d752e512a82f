"""Bearer-token authentication as falcon middleware.

Each resource declares, per HTTP method, the scopes of which a token must
hold one (`scopes = {"GET": READ, ...}`); a method missing from the map is
public. A missing or unknown token is 401 (with `WWW-Authenticate`), a
token without the scope 403. A token limited to some nodes (`prefixes`)
reaches only resources that check the node they serve (`spaced = True`,
which call `check_space`); elsewhere it is 403. With `no_auth` (loopback
only) every request passes.
"""

from __future__ import annotations

from typing import Any

import falcon

from chute.errors import Forbidden, Unauthorized
from chute.web.tokens import Token, TokenStore

READ = frozenset({"read"})
WRITE = frozenset({"write"})
BLOB_READ = frozenset({"read", "write"})
DELETE = frozenset({"delete"})
ADMIN = frozenset({"admin"})


def required(resource: Any, method: str) -> frozenset[str] | None:
    """Return the scopes a method of a resource accepts (None: public)."""
    scopes: dict[str, frozenset[str]] = getattr(resource, "scopes", {})
    if method == "HEAD":
        method = "GET"
    return scopes.get(method)


class TokenAuth:
    """Check `Authorization: Bearer <token>` before a responder runs."""

    def __init__(self, tokens: TokenStore | None) -> None:
        self.tokens = tokens  # None: no authentication (loopback only)

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        if resource is None or self.tokens is None:
            return
        accepted = required(resource, req.method)
        if accepted is None:
            return
        header = req.get_header("Authorization") or ""
        kind, _, secret = header.partition(" ")
        if kind.lower() != "bearer" or not secret.strip():
            raise Unauthorized("this route needs a token: Authorization: Bearer <token>")
        token = self.tokens.check(secret.strip())
        if token is None:
            raise Unauthorized("unknown or revoked token")
        if not token.allows(accepted):
            raise Forbidden(f"token {token.name} lacks the scope {' or '.join(sorted(accepted))}")
        if token.prefixes and not getattr(resource, "spaced", False):
            raise Forbidden(f"token {token.name} is limited to {', '.join(token.prefixes)}")
        req.context.token = token


def request_token(req: falcon.Request) -> Token | None:
    """The token a request was authenticated with (None without authentication)."""
    token: Token | None = getattr(req.context, "token", None)
    return token


def check_space(req: falcon.Request, domain: str, node: str) -> None:
    """Refuse a request whose token is limited to other nodes."""
    token = request_token(req)
    if token is not None and not token.covers(domain, node):
        raise Forbidden(f"token {token.name} does not reach {domain}/{node}")


def check_scope(req: falcon.Request, accepted: frozenset[str], what: str) -> None:
    """Refuse a request whose token holds none of `accepted` (for checks finer than a method)."""
    token = request_token(req)
    if token is not None and not token.allows(accepted):
        raise Forbidden(
            f"token {token.name} lacks the scope {' or '.join(sorted(accepted))} {what}"
        )
