"""`chute pull`: fetch this node's repository back from a peer, by windows.

The mirror image of `chute.sync.Pusher`: `config` and `keys/<id>` first
(into an empty or missing repository; a local repository with another id
is an error), then packs, then snapshots' blobs oldest first, each blob's
windows before its `index.json`, then tombstones. Every window is checked
against the SHA-256 its index lists before it is written (temp + fsync +
link, as every local write), so an interrupted pull leaves only whole,
verified windows, and the next pull fetches only the windows this node
does not have yet (it hashes those it has first). A request carries k
consecutive windows (`GET <window>?count=k`), k adapting as for push.
"""

from __future__ import annotations

import hashlib
from typing import Any

from chute.adapt import Sizer
from chute.errors import IntegrityError, NoRepository, StorageError
from chute.layout import INDEX, BlobFiles, Layout
from chute.store.base import BlobStore
from chute.store.http import HttpStore, Transient, raise_for
from chute.sync import BlobPlan, Transfer, TransferStats, repo_id, windows_of


class Puller(Transfer):
    """Fetch the repository a peer holds for this node into a local store."""

    def __init__(self, local: BlobStore, remote: HttpStore, sizer: Sizer, **kwargs: Any) -> None:
        super().__init__(remote, sizer, **kwargs)
        self.local = local

    def run(self) -> TransferStats:
        """Fetch every blob this node lacks; return what was done."""
        return self.mirror(self.remote, self.local, self._fetch)

    def _control(self, remote: Layout, local_names: set[str]) -> None:
        if not remote.config:
            raise NoRepository(
                f"peer {self.client.url} holds no repository for "
                f"{self.remote.domain}/{self.remote.node}"
            )
        theirs = self.remote.get("config")
        if "config" in local_names:
            ours = self.local.get("config")
            if repo_id(ours) != repo_id(theirs):
                raise IntegrityError(
                    f"this repository ({repo_id(ours)}) is not the one the peer holds "
                    f"({repo_id(theirs)}); pull into an empty one"
                )
        for key in remote.keys:
            if key not in local_names:
                self.local.put(key, self.remote.get(key))
                self.stats.add(objects_sent=1)
        if "config" not in local_names:
            self.local.put("config", theirs)  # last: the repository opens once it has a key
            self.stats.add(objects_sent=1)

    def _plan(self, blobs: list[BlobFiles], local: Layout, local_names: set[str]) -> list[BlobPlan]:
        plans = []
        for blob in blobs:
            if f"{blob.path}/{INDEX}" in local_names:
                self.stats.add(blobs_skipped=1, windows_skipped=len(blob.windows))
                continue
            plan = BlobPlan.parse(
                blob.path, self.remote.get(f"{blob.path}/{INDEX}"), windows_of(blob)
            )
            mine = local.blobs.get(blob.path)
            have = {m for m in windows_of(mine) if self._ours(plan, m)} if mine else set()
            self.stats.add(windows_skipped=len(have), windows_resumed=len(have))
            plan.send = sorted(plan.present - have)
            plans.append(plan)
        return plans

    def _ours(self, plan: BlobPlan, m: int) -> bool:
        """Tell whether a local window is the one the index lists (else it is fetched again)."""
        if m >= len(plan.hashes):
            return False
        data = self.local.get(plan.window_name(m))
        if hashlib.sha256(data).hexdigest() == plan.hashes[m]:
            return True
        self.local.delete(plan.window_name(m))
        return False

    def _fetch(self, plan: BlobPlan, group: list[int]) -> None:
        """Fetch consecutive windows, k per request; verify and write each."""
        todo, attempt = list(group), 0
        while todo:
            k = min(len(todo), self.sizer.windows(plan.window))
            first = todo[0]
            size = self.sizer.started()
            try:
                url = self.remote.url(plan.window_name(first), count=str(k))
                reply = self.client.send("GET", url)
            except Transient as exc:
                attempt += 1
                self._failed(attempt, exc)
                continue
            if reply.status != 200:
                raise_for(reply, f"GET {plan.window_name(first)}")
            sizes = [int(s) for s in (reply.header("Chute-Window-Sizes") or "").split(",") if s]
            if not sizes or sum(sizes) != len(reply.data) or len(sizes) > k:
                raise StorageError(f"peer {self.client.url}: a windows answer does not add up")
            offset = 0
            for i, size in enumerate(sizes):
                m = first + i
                data = reply.data[offset : offset + size]
                offset += size
                if hashlib.sha256(data).hexdigest() != plan.hashes[m]:
                    raise IntegrityError(f"window {plan.window_name(m)} from the peer is damaged")
                self.local.put(plan.window_name(m), data)
            attempt = 0
            self.sizer.done(len(reply.data), size)
            self.stats.add(bytes=len(reply.data), windows_sent=len(sizes), requests=1)
            self._advance(len(reply.data))
            todo = todo[len(sizes) :]

    def _commit(self, plan: BlobPlan) -> None:
        missing = [m for m in plan.present if not self.local.exists(plan.window_name(m))]
        if missing:
            raise IntegrityError(f"{plan.path}: windows {missing[:5]} were not fetched")
        self.local.put(f"{plan.path}/{INDEX}", plan.index)
