"""SPARQL 1.1 Protocol over HTTP: keep-alive, Basic or Digest authentication, retries.

Kept apart from `chute.graph_remote` so that `requests` is imported only by
commands that reach a remote graph.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests
from requests.auth import HTTPBasicAuth, HTTPDigestAuth

from chute.errors import StorageError, Unauthorized, UsageError
from chute.graph_remote import RemoteGraph

RESULTS_ACCEPT = (
    "application/sparql-results+xml, application/sparql-results+json;q=0.9, "
    "application/n-triples;q=0.8, text/turtle;q=0.7, application/rdf+xml;q=0.5"
)
ATTEMPTS = 4
RETRY_STATUS = {502, 503, 504}


class SparqlClient:
    """SPARQL 1.1 Protocol requests with keep-alive, authentication and retries."""

    def __init__(self, config: RemoteGraph, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.session = requests.Session()
        self.sleep = sleep
        if config.user is not None:
            self.session.auth = HTTPBasicAuth(config.user, config.password or "")

    def query(self, text: str, params: list[tuple[str, str]]) -> tuple[str, bytes]:
        """POST a query (form-encoded, so long queries fit); return (media type, body)."""
        data = [("query", text), *params]
        reply = self._send(self.config.query_url, data, {"Accept": RESULTS_ACCEPT})
        media = reply.headers.get("Content-Type", "").split(";")[0].strip().lower()
        return media, reply.content

    def update(self, text: str) -> None:
        """POST an update; it is applied by the time this returns."""
        headers = {"Content-Type": "application/sparql-update; charset=utf-8"}
        self._send(self.config.update_url, text.encode(), headers)

    def _send(self, url: str, data: Any, headers: dict[str, str]) -> requests.Response:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                reply = self.session.post(url, data=data, headers=headers, timeout=self._timeout())
            except requests.RequestException as exc:
                # INSERT DATA, DELETE DATA and queries are idempotent: sending again is safe.
                if attempt == ATTEMPTS:
                    raise StorageError(f"graph server {url}: {exc}") from exc
                self.sleep(0.5 * 2 ** (attempt - 1))
                continue
            if reply.status_code == 401 and self._digest(reply):
                return self._send(url, data, headers)
            if reply.status_code in RETRY_STATUS and attempt < ATTEMPTS:
                self.sleep(0.5 * 2 ** (attempt - 1))
                continue
            return self._check(url, reply)
        raise AssertionError("unreachable")

    def _timeout(self) -> tuple[float, float]:
        return (10.0, self.config.timeout)

    def _digest(self, reply: requests.Response) -> bool:
        """Switch to Digest authentication (once) unless the server asks for Basic.

        Virtuoso answers a Basic attempt with a bare 401, without a challenge.
        """
        basic = reply.headers.get("WWW-Authenticate", "").lower().startswith("basic")
        if not basic and isinstance(self.session.auth, HTTPBasicAuth):
            self.session.auth = HTTPDigestAuth(self.config.user or "", self.config.password or "")
            return True
        return False

    @staticmethod
    def _check(url: str, reply: requests.Response) -> requests.Response:
        if reply.ok:
            return reply
        message = " ".join(reply.text.split())[:500]
        if reply.status_code in (401, 403):
            raise Unauthorized(f"graph server {url} refused the request: {message}")
        if reply.status_code == 400:
            raise UsageError(f"graph server {url} refused the SPARQL request: {message}")
        raise StorageError(f"graph server {url}: HTTP {reply.status_code}: {message}")
