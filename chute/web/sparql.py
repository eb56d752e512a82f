"""`/chute/sparql`: the SPARQL 1.1 Protocol query operation, read-only.

`GET ?query=`, `POST` of a form (`query=`), `POST` of
`application/sparql-query`; `default-graph-uri` and `named-graph-uri` may
repeat. Other parameters (`format=`, `output=` ...) are ignored. The answer's
media type follows `Accept` (see `queryworker.RESULT_TYPES` and
`GRAPH_TYPES`). Updates are refused: `update=`, `application/sparql-update`
-> 403; an update sent as a query is a syntax error -> 400.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import parse_qs

import falcon

from chute.errors import Forbidden, UsageError
from chute.web.auth import READ
from chute.web.bodies import decode_text, read_body
from chute.web.queries import QueryRunner
from chute.web.queryworker import QueryRequest

MAX_QUERY = 1 << 20
FORM = "application/x-www-form-urlencoded"


def accept_list(header: str | None) -> tuple[str, ...]:
    """Return the media types of an `Accept` header, most preferred first (q=0 dropped)."""
    if not header:
        return ()
    ranked = []
    for position, item in enumerate(header.split(",")):
        media, *params = (p.strip() for p in item.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media and quality > 0:
            ranked.append((-quality, position, media.lower()))
    return tuple(media for _, _, media in sorted(ranked))


class Sparql:
    """The SPARQL endpoint."""

    scopes: ClassVar[dict[str, frozenset[str]]] = {"GET": READ, "POST": READ}

    def __init__(self, runner: QueryRunner, max_rows: int) -> None:
        self.runner = runner
        self.max_rows = max_rows

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = parse_qs(req.query_string, keep_blank_values=True)
        self._answer(req, resp, params, None)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        media = (req.content_type or "").split(";")[0].strip().lower()
        params = parse_qs(req.query_string, keep_blank_values=True)
        if media == "application/sparql-update":
            raise Forbidden("the history is read-only over HTTP: updates are refused")
        body = read_body(req, MAX_QUERY)
        text = decode_text(body)
        if media == FORM:
            for key, values in parse_qs(text, keep_blank_values=True).items():
                params.setdefault(key, []).extend(values)
            self._answer(req, resp, params, None)
        elif media == "application/sparql-query":
            self._answer(req, resp, params, text)
        else:
            raise falcon.HTTPUnsupportedMediaType(
                description=f"POST {FORM} or application/sparql-query"
            )

    def _answer(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        params: dict[str, list[str]],
        text: str | None,
    ) -> None:
        if "update" in params:
            raise Forbidden("the history is read-only over HTTP: updates are refused")
        queries = params.get("query", []) if text is None else [text]
        if len(queries) != 1 or not queries[0].strip():
            raise UsageError("give exactly one SPARQL query (query=...)")
        request = QueryRequest(
            text=queries[0],
            accept=accept_list(req.get_header("Accept")),
            default_graphs=tuple(params.get("default-graph-uri", [])),
            named_graphs=tuple(params.get("named-graph-uri", [])),
            max_rows=self.max_rows,
        )
        media, body = self.runner.run(request)
        resp.content_type = media
        resp.data = body
        resp.vary = ["Accept"]
