"""`POST /chute/snapshot`: take a snapshot of a configured mount now (`admin`).

The body names a mount of `config.toml`'s `[mounts]` table (never a path:
a client cannot make the server read an arbitrary tree):

    {"mount": "docs", "tags": ["nightly"]}

The answer is 201 with the new snapshot's URI (and `Location`, its blob).
A snapshot that was saved but could not read every file is still 201, with
its `warnings`. One snapshot runs at a time per process.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import ClassVar

import falcon

from chute.backup import PutOptions
from chute.config import Settings
from chute.errors import NotFound, UsageError
from chute.repository import Repository
from chute.session import take_snapshot
from chute.web.auth import ADMIN
from chute.web.bodies import json_object, read_body

MAX_REQUEST = 64 << 10


class SnapshotNow:
    """Take a snapshot of a configured mount."""

    scopes: ClassVar[dict[str, frozenset[str]]] = {"POST": ADMIN}

    def __init__(self, settings: Settings, repo: Repository) -> None:
        self.settings = settings
        self.repo = repo
        self._lock = threading.Lock()

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(read_body(req, MAX_REQUEST))
        mount = body.get("mount")
        if not isinstance(mount, str):
            raise UsageError('give the mount to snapshot: {"mount": "<name>"}')
        if mount not in self.settings.mounts:
            raise NotFound(f"no mount named {mount!r} is configured ([mounts] in config.toml)")
        tags = body.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise UsageError("tags must be a list of strings")
        opts = PutOptions(
            Path(self.settings.mounts[mount]).expanduser(),
            self.settings.domain,
            self.settings.node,
            tags=tuple(tags),
            compression=self.settings.compression,
        )
        with self._lock:
            outcome = take_snapshot(self.settings, self.repo, opts)
        name = outcome.result.index.name
        resp.status = falcon.HTTP_201
        resp.location = f"/chute/blob/{name.path}/"
        resp.media = outcome.summary()
