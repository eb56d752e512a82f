"""The OpenAPI 3 description of the app, served at `/chute/openapi.json`.

Written as data next to the routes; `tests/test_web_openapi.py` fails when
the app's routing table and this document disagree (a route or a method
missing on either side).
"""

from __future__ import annotations

from typing import Any, ClassVar

import falcon

from chute import __version__

JSON = "application/json"
ERROR = {"$ref": "#/components/schemas/Error"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": ERROR}}}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema or {}}}}


def _query(name: str, description: str, required: bool = False, many: bool = False) -> Any:
    schema: dict[str, Any] = {"type": "string"}
    if many:
        schema = {"type": "array", "items": schema}
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
        **({"style": "form", "explode": True} if many else {}),
    }


def _header(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "description": description, "schema": {"type": "string"}}


BLOB = {
    "name": "blob",
    "in": "path",
    "required": True,
    "description": "The blob's name: `<domain>/<node>/<mount...>/<timestamp>`.",
    "schema": {"type": "string"},
}
WINDOW = [
    {
        "name": "n",
        "in": "path",
        "required": True,
        "description": "Window size in bytes.",
        "schema": {"type": "integer", "minimum": 0},
    },
    {
        "name": "m",
        "in": "path",
        "required": True,
        "description": "Window number.",
        "schema": {"type": "integer", "minimum": 0},
    },
]
SPACE = [
    {
        "name": "domain",
        "in": "path",
        "required": True,
        "description": "The node's domain.",
        "schema": {"type": "string"},
    },
    {
        "name": "node",
        "in": "path",
        "required": True,
        "description": "The node.",
        "schema": {"type": "string"},
    },
]
OBJECT = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "The object's name in the repository (`config`, `keys/<id>`, "
    "`<blob>/0/<n>/<m>`, `<blob>/index.json` ...).",
    "schema": {"type": "string"},
}
DIGEST = [
    _header("Content-Digest", "`sha-256=:<base64>:` of the body (RFC 9530)."),
    _header("Chute-Sha256", "Hex SHA-256 of the body (instead of Content-Digest)."),
]
OCTETS = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
SNAPSHOT = _query(
    "snapshot", "`latest`, `latest:<mount>`, a blob path or a timestamp prefix.", True
)
COMMON_ERRORS = {
    "400": _error("Bad request (bad name, parameter or body)."),
    "401": _error("No valid token."),
    "403": _error("The token lacks the scope, or the server refuses."),
    "404": _error("Not found."),
}


def _op(summary: str, scope: str | None, responses: dict[str, Any], **extra: Any) -> Any:
    op: dict[str, Any] = {"summary": summary, "responses": {**responses, **COMMON_ERRORS}}
    if scope is not None:
        op["security"] = [{"bearer": []}]
        op["x-chute-scope"] = scope
    op.update(extra)
    return op


PATHS: dict[str, dict[str, Any]] = {
    "/chute/openapi.json": {
        "get": _op("This document.", None, {"200": _json("The OpenAPI document.")}),
    },
    "/chute/blob/": {
        "get": _op(
            "List complete blobs.",
            "read or write",
            {
                "200": _json(
                    "Blobs.", {"type": "array", "items": {"$ref": "#/components/schemas/Blob"}}
                )
            },
            parameters=[
                _query("domain", "Only this domain."),
                _query("node", "Only this node (with domain)."),
                _query("mount", "Only this mount label."),
            ],
        ),
        "post": _op(
            "Commit a blob: store its index.json once every window it lists is verified.",
            "write",
            {
                "201": _json("Committed; `Location` is the blob's path."),
                "200": _json("The identical index.json was already there."),
                "409": _error("Another index.json exists under that name."),
                "413": _error("Too large."),
                "422": _error("A window is missing or does not match."),
            },
            requestBody={"required": True, "content": {JSON: {"schema": {"type": "object"}}}},
        ),
    },
    "/chute/blob/{blob}/": {
        "get": _op(
            "Describe a complete blob.",
            "read or write",
            {"200": _json("The blob.")},
            parameters=[BLOB],
        ),
        "delete": _op(
            "Delete a blob (index.json first).",
            "delete",
            {"200": _json("Deleted.")},
            parameters=[BLOB],
        ),
    },
    "/chute/blob/{blob}/index.json": {
        "get": _op(
            "A blob's index.json, with a strong ETag.",
            "read or write",
            {"200": _json("The index."), "304": {"description": "Not modified (If-None-Match)."}},
            parameters=[BLOB, _header("If-None-Match", "An ETag.")],
        ),
        "head": _op(
            "As GET, without the body.",
            "read or write",
            {"200": {"description": "OK"}},
            parameters=[BLOB],
        ),
    },
    "/chute/blob/{blob}/0": {
        "get": _op(
            "A complete blob's ciphertext stream (Range: 206); its SHA-256 with Accept JSON.",
            "read or write",
            {
                "200": {"description": "The stream.", "content": OCTETS},
                "206": {"description": "A range of it.", "content": OCTETS},
                "416": _error("Range not satisfiable."),
            },
            parameters=[BLOB, _header("Range", "bytes=FIRST-LAST")],
        ),
        "head": _op(
            "As GET, without the body.",
            "read or write",
            {"200": {"description": "OK"}},
            parameters=[BLOB],
        ),
        "put": _op(
            "Store the stream, or a window-aligned part of it (Content-Range), as windows.",
            "write",
            {
                "201": _json("Stored; `true` once the whole stream is there.", {"type": "boolean"}),
                "409": _error("Other bytes are stored under that name."),
                "411": _error("Length required."),
                "413": _error("Too large."),
                "422": _error("The body does not match its SHA-256."),
            },
            parameters=[
                BLOB,
                _header("Content-Range", "bytes FIRST-LAST/TOTAL"),
                _header("Chute-Window", "Window size n (default: the blob's or the store's)."),
                *DIGEST,
            ],
            requestBody={"required": True, "content": OCTETS},
        ),
    },
    "/chute/blob/{blob}/0/{n}/{m}": {
        "get": _op(
            "One window.",
            "read or write",
            {
                "200": {"description": "The window.", "content": OCTETS},
                "206": {"description": "A range of it.", "content": OCTETS},
            },
            parameters=[BLOB, *WINDOW],
        ),
        "head": _op(
            "As GET, without the body.",
            "read or write",
            {"200": {"description": "OK"}},
            parameters=[BLOB, *WINDOW],
        ),
        "put": _op(
            "Store one window after checking its SHA-256.",
            "write",
            {
                "201": _json("Stored.", {"type": "boolean"}),
                "200": _json("The identical window was already there.", {"type": "boolean"}),
                "409": _error("Other bytes are stored under that name."),
                "413": _error("Too large."),
                "422": _error("The window does not match its SHA-256."),
            },
            parameters=[BLOB, *WINDOW, *DIGEST],
            requestBody={"required": True, "content": OCTETS},
        ),
    },
    "/chute/blob/{blob}/0/{n}/{m}/hash/sha256": {
        "get": _op(
            "The SHA-256 of a stored window (404 if absent): what makes transfers resumable.",
            "read or write",
            {
                "200": _json(
                    "Its hash.",
                    {
                        "type": "object",
                        "properties": {"sha256": {"type": "string"}, "size": {"type": "integer"}},
                    },
                )
            },
            parameters=[BLOB, *WINDOW],
        ),
    },
    "/chute/repo/{domain}/{node}/": {
        "get": _op(
            "List the objects of the repository held for (or being) a node.",
            "read or write",
            {"200": _json("Object names, sorted.", {"type": "array", "items": {"type": "string"}})},
            parameters=[*SPACE, _query("prefix", "Only names under this prefix.")],
        ),
    },
    "/chute/repo/{domain}/{node}/{name}": {
        "get": _op(
            "One object of a repository (Range: 206); its SHA-256 with `digest=sha256`; "
            "several consecutive windows with `count`.",
            "read or write",
            {
                "200": {"description": "The object.", "content": OCTETS},
                "206": {"description": "A range of it.", "content": OCTETS},
                "416": _error("Range not satisfiable."),
            },
            parameters=[
                *SPACE,
                OBJECT,
                _header("Range", "bytes=FIRST-LAST"),
                _query("digest", "`sha256`: answer the object's SHA-256 and size as JSON."),
                {
                    "name": "count",
                    "in": "query",
                    "required": False,
                    "description": "On a window `<blob>/0/<n>/<m>`: up to this many consecutive "
                    "windows in one body; their sizes in `Chute-Window-Sizes`.",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1024},
                },
            ],
        ),
        "head": _op(
            "As GET, without the body (its size in Content-Length).",
            "read or write",
            {"200": {"description": "OK"}},
            parameters=[*SPACE, OBJECT],
        ),
        "put": _op(
            "Store an object. Windows are verified (a digest, or `Chute-Windows` for several "
            "in one body); index.json is stored only once every window it lists is verified.",
            "write (replace: delete, except under locks/)",
            {
                "201": _json("Stored."),
                "200": _json("The identical object was already there."),
                "409": _error("Other bytes are stored under that name."),
                "413": _error("Too large."),
                "422": _error("A SHA-256 does not match, or a window is missing."),
            },
            parameters=[
                *SPACE,
                OBJECT,
                *DIGEST,
                _header(
                    "Chute-Windows", "Hex SHA-256 of each window in the body, comma-separated."
                ),
                _header(
                    "Chute-Pruned", "On index.json: windows the owner's prune removed (3,5-9)."
                ),
                {
                    "name": "replace",
                    "in": "query",
                    "required": False,
                    "description": "Overwrite a mutable object (not a window, not index.json).",
                    "schema": {"type": "boolean"},
                },
            ],
            requestBody={"required": True, "content": OCTETS},
        ),
        "delete": _op(
            "Delete an object.",
            "delete (write under locks/)",
            {"200": _json("Deleted (or it was not there).")},
            parameters=[*SPACE, OBJECT],
        ),
    },
    "/chute/sparql": {
        "get": _op(
            "SPARQL 1.1 query (read-only).",
            "read",
            {
                "200": {"description": "Results, by Accept."},
                "406": _error("Not acceptable."),
                "400": _error("Syntax error, or over the time or row limit."),
            },
            parameters=[
                _query("query", "The SPARQL query.", required=True),
                _query("default-graph-uri", "Default graph IRIs.", many=True),
                _query("named-graph-uri", "Named graph IRIs.", many=True),
            ],
        ),
        "post": _op(
            "SPARQL 1.1 query by POST (form or application/sparql-query).",
            "read",
            {
                "200": {"description": "Results, by Accept."},
                "406": _error("Not acceptable."),
                "415": _error("Unsupported media type."),
            },
            requestBody={
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "properties": {"query": {"type": "string"}},
                            "required": ["query"],
                        },
                    },
                    "application/sparql-query": {"schema": {"type": "string"}},
                },
            },
        ),
    },
    "/chute/snapshots": {
        "get": _op(
            "List snapshots (JSON; HTML for a browser).",
            "read",
            {"200": _json("Snapshots.")},
            parameters=[_query("mount", "Only this mount label.")],
        ),
    },
    "/chute/snapshots/tree": {
        "get": _op(
            "One directory of a snapshot.",
            "read",
            {"200": _json("Its entries.")},
            parameters=[SNAPSHOT, _query("path", "A directory (default: the top).")],
        ),
    },
    "/chute/snapshots/versions": {
        "get": _op(
            "Every version of a path across snapshots.",
            "read",
            {"200": _json("Versions.")},
            parameters=[_query("path", "A path inside snapshots.", required=True)],
        ),
    },
    "/chute/snapshots/file": {
        "get": _op(
            "A file's bytes, decrypted on the fly (Range: 206; ETag).",
            "read",
            {
                "200": {"description": "The file.", "content": OCTETS},
                "206": {"description": "A range of it.", "content": OCTETS},
                "416": _error("Range not satisfiable."),
            },
            parameters=[
                SNAPSHOT,
                _query("path", "The file.", required=True),
                _header("Range", "bytes=FIRST-LAST"),
            ],
        ),
        "head": _op(
            "As GET, without the body.",
            "read",
            {"200": {"description": "OK"}},
            parameters=[SNAPSHOT, _query("path", "The file.", required=True)],
        ),
    },
    "/chute/snapshot": {
        "post": _op(
            "Take a snapshot of a configured mount now.",
            "admin",
            {"201": _json("The new snapshot's URI.")},
            requestBody={
                "required": True,
                "content": {
                    JSON: {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "mount": {"type": "string"},
                                "tags": {"type": "array", "items": {"type": "string"}},
                            },
                            "required": ["mount"],
                        }
                    }
                },
            },
        ),
    },
}

PLAINTEXT_PREFIXES = ("/chute/sparql", "/chute/snapshots", "/chute/snapshot")


def document(plaintext: bool) -> dict[str, Any]:
    """Return the OpenAPI document (without the plaintext routes on a storage-only server)."""
    paths = {
        p: ops for p, ops in PATHS.items() if plaintext or not p.startswith(PLAINTEXT_PREFIXES)
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "chute",
            "version": __version__,
            "description": "Blob API (ciphertext only), SPARQL over the history, browsing.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "status", "message"],
                    "properties": {
                        "error": {"type": "string", "description": "A stable code."},
                        "status": {"type": "integer"},
                        "message": {"type": "string"},
                    },
                },
                "Blob": {
                    "type": "object",
                    "properties": {
                        k: {"type": "string"}
                        for k in ("path", "domain", "node", "mount", "timestamp", "location")
                    },
                },
            },
        },
    }


class OpenApi:
    """Serve the document."""

    scopes: ClassVar[dict[str, frozenset[str]]] = {}

    def __init__(self, plaintext: bool) -> None:
        self.doc = document(plaintext)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.doc
