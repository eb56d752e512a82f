"""`chute push`: send a repository to a peer by windows, resumable and adaptive.

What goes, in this order, so that the peer holds a consistent repository
at every moment:

1. `config` and `keys/<id>` (a peer whose `config` names another
   repository for this space is an error, never overwritten);
2. prune's packs, then the snapshots' blobs, oldest first. For each blob
   the peer does not list yet (no `index.json` there): the windows it has
   not verified, then `index.json`, which the peer stores only once every
   window it lists is verified (`chute.web.blobservice`), naming the windows
   this node's prune removed. A peer never lists a half-sent blob;
3. forget's tombstones.

Resuming: before sending a blob the peer holds part of (an interrupted
push), the peer is asked for the SHA-256 of each window it has; those that
match are skipped, so no window the peer verified is sent twice. After a
request fails, the same question is asked for the windows it carried
before any is sent again (the peer may have stored some before the
failure).

Transfer (`chute.transfer`): a request carries k consecutive windows of
one blob, k from the adaptive size (`chute.adapt`) when the request is
made; `inflight` requests run at once (a thread each), so memory stays
near inflight x size. Failures that may pass (5xx, broken connections,
timeouts) are retried with exponential backoff, shrinking the size; after
`attempts` failures in a row the push stops with a StorageError that says
what failed. Other answers (a conflict, a refused token, a window the peer
finds damaged) stop it at once.

Nothing here needs the key, except `needed_blobs`, which reads trees to
find the blobs some snapshots use (`chute push PEER SNAPSHOT...`).
"""

from __future__ import annotations

import contextlib
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chute.adapt import Sizer
from chute.errors import BlobConflict, IntegrityError, NotFound
from chute.ids import ChunkId, SnapshotName
from chute.layout import INDEX, BlobFiles, Layout
from chute.store.base import BlobStore
from chute.store.http import HttpStore, Transient, raise_for
from chute.store.wire import format_numbers
from chute.transfer import BlobPlan, Transfer, TransferStats


def needed_blobs(repo: Any, names: list[SnapshotName]) -> set[str]:
    """The blobs holding some object the named snapshots use (their own blobs included)."""
    from chute.tree import decode_listing

    index = repo.index()
    needed: set[str] = set()
    seen: set[ChunkId] = set()

    def locate(oid: ChunkId) -> None:
        # A missing object is damage `chute check` reports; push sends what there is.
        with contextlib.suppress(NotFound):
            needed.add(index.get(oid).blob)

    for name in names:
        needed.add(name.path)
        stack = [repo.read_index(name).root]
        while stack:
            tree = stack.pop()
            if tree in seen:
                continue
            seen.add(tree)
            locate(tree)
            for entry in decode_listing(repo.read_tree(tree)):
                if entry["type"] == "dir":
                    stack.append(ChunkId.from_hex(entry["tree"]))
                for hexid in entry.get("chunks", []):
                    locate(ChunkId.from_hex(hexid))
    return needed


class Pusher(Transfer):
    """Send a local repository to the one a peer holds for this node."""

    def __init__(self, local: BlobStore, remote: HttpStore, sizer: Sizer, **kwargs: Any) -> None:
        super().__init__(remote, sizer, **kwargs)
        self.local = local

    def run(self, only: set[str] | None = None) -> TransferStats:
        """Push everything (or only the blobs in `only`); return what was done."""
        return self.mirror(self.local, self.remote, self._send, only)

    def _control(self, local: Layout, remote_names: set[str]) -> None:
        config = self.local.get("config")
        if "config" in remote_names:
            theirs = self.remote.get("config")
            if repo_id(theirs) != repo_id(config):
                raise BlobConflict(
                    f"the peer holds another repository ({repo_id(theirs)}) for "
                    f"{self.remote.domain}/{self.remote.node}; this one is {repo_id(config)}"
                )
        else:
            self.remote.put("config", config)
            self.stats.add(objects_sent=1)
        for key in local.keys:
            if key not in remote_names:
                self.remote.put(key, self.local.get(key))
                self.stats.add(objects_sent=1)

    def _plan(
        self, blobs: list[BlobFiles], remote: Layout, remote_names: set[str]
    ) -> list[BlobPlan]:
        plans = []
        for blob in blobs:
            if f"{blob.path}/{INDEX}" in remote_names:
                self.stats.add(blobs_skipped=1, windows_skipped=len(blob.windows))
                continue
            plan = BlobPlan.parse(
                blob.path, self.local.get(f"{blob.path}/{INDEX}"), windows_of(blob)
            )
            there = remote.blobs.get(blob.path)
            have = windows_of(there) & plan.present if there is not None else frozenset()
            verified = self._verified(plan, sorted(have))
            self.stats.add(windows_skipped=len(verified), windows_resumed=len(verified))
            plan.send = sorted(plan.present - verified)
            plans.append(plan)
        return plans

    def _verified(self, plan: BlobPlan, numbers: list[int]) -> set[int]:
        """Ask the peer for the SHA-256 of windows it has; return those that are ours."""
        if not numbers:
            return set()

        def digest(m: int) -> tuple[int, str | None]:
            name = plan.window_name(m)
            reply = self.client.request(
                "GET", self.remote.url(name, digest="sha256"), expect=(200, 404)
            )
            return m, (str(reply.json()["sha256"]) if reply.status == 200 else None)

        found = set()
        with ThreadPoolExecutor(self.inflight) as pool:
            for m, sha in pool.map(digest, numbers):
                if sha is None:
                    continue
                if sha != plan.hashes[m]:
                    raise BlobConflict(
                        f"the peer holds another window {plan.window_name(m)} than this repository"
                    )
                found.add(m)
        return found

    def _present_there(self, plan: BlobPlan, numbers: list[int]) -> set[int]:
        listed = set(self.remote.list(f"{plan.path}/0/{plan.window}"))
        return self._verified(plan, [m for m in numbers if plan.window_name(m) in listed])

    def _send(self, plan: BlobPlan, group: list[int]) -> None:
        """Send consecutive windows, k per request; after a failure, only what is missing."""
        todo, attempt = list(group), 0
        while todo:
            k = min(len(todo), self.sizer.windows(plan.window))
            batch = todo[:k]
            body = [self.local.get(plan.window_name(m)) for m in batch]
            nbytes = sum(len(b) for b in body)
            headers = {
                "Chute-Windows": ",".join(plan.hashes[m] for m in batch),
                "Content-Type": "application/octet-stream",
            }
            size = self.sizer.started()
            try:
                reply = self.client.send(
                    "PUT", self.remote.url(plan.window_name(batch[0])), list(body), headers
                )
            except Transient as exc:
                attempt += 1
                self._failed(attempt, exc)
                stored = self._present_there(plan, batch)  # arrived before the failure
                landed = sum(plan.window_size(m) for m in stored)
                self.stats.add(bytes=landed, windows_sent=len(stored))
                self._advance(landed)
                todo = [m for m in todo if m not in stored]
                continue
            if reply.status not in (200, 201):
                raise_for(reply, f"PUT {plan.window_name(batch[0])} (+{len(batch) - 1})")
            attempt = 0
            self.sizer.done(nbytes, size)
            self.stats.add(bytes=nbytes, windows_sent=len(batch), requests=1)
            self._advance(nbytes)
            todo = todo[k:]

    def _commit(self, plan: BlobPlan) -> None:
        pruned = plan.pruned
        headers = {"Content-Type": "application/json"}
        if pruned:
            headers["Chute-Pruned"] = format_numbers(pruned)
        url = self.remote.url(f"{plan.path}/{INDEX}")
        self.client.request("PUT", url, plan.index, headers)
        self.stats.add(requests=1)


def windows_of(blob: BlobFiles) -> frozenset[int]:
    if blob.window_size is None:
        return frozenset()
    suffix = f"/0/{blob.window_size}/"
    return frozenset(m for m, name in blob.windows.items() if suffix in name)


def repo_id(config: bytes) -> str:
    try:
        return str(json.loads(config)["id"])
    except (ValueError, KeyError, TypeError):
        raise IntegrityError("a repository config is damaged") from None
