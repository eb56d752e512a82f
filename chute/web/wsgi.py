"""`chute.web.wsgi:app`: the app built from the environment, for gunicorn.

    gunicorn --workers 1 --threads 8 --bind 127.0.0.1:2002 chute.web.wsgi:app

Settings come from `config.toml` and `CHUTE_*` / `CHUTE_SERVE_*` variables,
as for `chute serve`. Authentication is always on here (`no_auth` is
refused: the bind address is gunicorn's, so loopback cannot be checked).
One worker process with threads is the shape to run: the graph can be open
in one process at a time (see `chute.web.queryworker`). With the graph on a
SPARQL server (`CHUTE_GRAPH`, `chute.graph_remote`) run as many workers, on as
many hosts, as you like: no state is then local to a process.
"""

from __future__ import annotations

import os

import falcon

from chute.config import load_settings
from chute.errors import UsageError
from chute.web.app import build
from chute.web.settings import load_serve_settings


def app_from_environment() -> falcon.App:
    """Build the app from the environment and config file."""
    settings = load_settings({})
    serve = load_serve_settings(settings.serve, os.environ, {})
    if serve.no_auth:
        raise UsageError("no_auth is refused under a WSGI server: use tokens")
    app, _ = build(settings, serve)
    return app


app = app_from_environment()
