"""Build the app: `create_app` only wires; `build` opens what it needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import falcon

from chute.config import Settings, xdg
from chute.files import FileReader
from chute.graph_remote import remote_graph
from chute.repository import Repository
from chute.session import history, open_repository
from chute.store.base import BlobStore, open_store
from chute.web import errors
from chute.web.auth import TokenAuth
from chute.web.blobs import BlobCollection, BlobItem
from chute.web.manage import SnapshotNow
from chute.web.openapi import OpenApi
from chute.web.queries import QueryRunner
from chute.web.repos import RepoListing, RepoObject
from chute.web.settings import ServeSettings
from chute.web.snapshots import PathVersions, SnapshotFile, Snapshots, SnapshotTree
from chute.web.spaces import Space, Spaces
from chute.web.sparql import Sparql
from chute.web.tokens import TokenStore


@dataclass(frozen=True)
class Plaintext:
    """What the plaintext routes need: settings, the opened repository, the graph's runner."""

    settings: Settings
    repo: Repository
    runner: QueryRunner
    reader: FileReader

    def close(self) -> None:
        """Stop the query worker."""
        self.runner.close()


def held_dir(serve: ServeSettings) -> Path:
    """Where the repositories held for other nodes live."""
    return Path(serve.held_dir).expanduser() if serve.held_dir else xdg("data") / "chute" / "held"


def create_app(
    store: BlobStore | None,
    serve: ServeSettings,
    tokens: TokenStore | None,
    plaintext: Plaintext | None = None,
    identity: tuple[str, str] = ("local", "node"),
) -> falcon.App:
    """Wire the routes; `store` is this node's repository (None: blobs only).

    `identity` (domain, node) names this node: requests for it reach `store`,
    requests for any other node the repository held for it. `tokens` None
    means no authentication (loopback only).
    """
    app = falcon.App(middleware=[TokenAuth(tokens)])
    app.req_options.strip_url_path_trailing_slash = False
    errors.install(app)
    spaces = Spaces(store, identity, held_dir(serve), serve.append_only, serve.max_window)
    changed = None if plaintext is None else _held_changed(plaintext.runner)
    app.add_route("/chute/openapi.json", OpenApi(plaintext is not None))
    app.add_route("/chute/blob/", BlobCollection(spaces, serve.max_index, changed))
    app.add_route("/chute/blob/{rest:path}", BlobItem(spaces, changed))
    app.add_route("/chute/repo/{domain}/{node}/", RepoListing(spaces))
    app.add_route(
        "/chute/repo/{domain}/{node}/{name:path}",
        RepoObject(spaces, serve.max_index, serve.max_object, changed),
    )
    if plaintext is not None:
        repo, base = plaintext.repo, plaintext.settings.base_url
        app.add_route("/chute/sparql", Sparql(plaintext.runner, serve.query_row_limit))
        app.add_route("/chute/snapshots", Snapshots(repo, base))
        app.add_route("/chute/snapshots/tree", SnapshotTree(repo))
        app.add_route(
            "/chute/snapshots/versions", PathVersions(plaintext.runner, serve.query_row_limit)
        )
        app.add_route("/chute/snapshots/file", SnapshotFile(repo, plaintext.reader))
        app.add_route("/chute/snapshot", SnapshotNow(plaintext.settings, repo))
    return app


def _held_changed(runner: QueryRunner) -> Callable[[Space], None]:
    def changed(space: Space) -> None:
        if not space.own:
            runner.held_changed()

    return changed


def open_plaintext(settings: Settings, serve: ServeSettings) -> Plaintext:
    """Open the repository with the key and sync the graph once."""
    repo = open_repository(settings)
    with history(settings, repo):
        pass  # adds snapshots the graph lacks, then releases the graph
    runner = QueryRunner(
        settings.graph_path(repo.repo_id),
        settings.base_url,
        serve.query_time_limit,
        serve.graph_idle,
        held_dir(serve),
        remote_graph(settings, repo.repo_id),
    )
    return Plaintext(settings, repo, runner, FileReader(repo))


def build(settings: Settings, serve: ServeSettings) -> tuple[falcon.App, Plaintext | None]:
    """Open the store, tokens and (unless blobs_only) the key; return the app."""
    store = None if serve.blobs_only else open_store(settings.repo)
    tokens = None if serve.no_auth else TokenStore(settings.tokens_file)
    plaintext = None if serve.blobs_only else open_plaintext(settings, serve)
    identity = (settings.domain, settings.node)
    return create_app(store, serve, tokens, plaintext, identity), plaintext
