"""Which store a request reaches: this node's repository, or one it holds for another node.

A server holds, next to its own repository (none with `--blobs-only`), one
repository for each other node that pushes to it, in its own directory:
`<held_dir>/<domain>/<node>/`. Each is an ordinary chute repository
directory (`config`, `keys/`, blobs, packs, tombstones) that only its
owner's key opens, so the owner's `chute check --repo <that directory>`
works on it as on any repository. Keeping them apart is what lets peers be
mutual: B's blobs in A's own repository would be snapshots A's key cannot
open.

A request names the space by `<domain>/<node>`: the repository routes
(`/chute/repo/<domain>/<node>/...`) say it outright, the blob routes by the
blob's name. This node's own domain and node reach its own repository.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from chute.errors import UsageError
from chute.store.base import BlobStore
from chute.store.local import LocalStore
from chute.web.blobnames import RESERVED, check_url_segment
from chute.web.blobservice import BlobService


@dataclass(frozen=True)
class Space:
    """One repository the server serves: its store and the checks over it."""

    domain: str
    node: str
    store: BlobStore
    service: BlobService
    own: bool

    @property
    def key(self) -> str:
        return f"{self.domain}/{self.node}"


def check_space_name(domain: str, node: str) -> None:
    """Refuse a domain or node that is no plain name segment."""
    check_url_segment(domain)
    check_url_segment(node)
    if domain in RESERVED or domain.startswith("."):
        raise UsageError(f"{domain!r} is reserved, not a domain")
    if node.startswith("."):
        raise UsageError(f"invalid node {node!r}")


class Spaces:
    """This node's repository and the repositories it holds for others."""

    def __init__(
        self,
        own: BlobStore | None,
        identity: tuple[str, str],
        held_dir: Path,
        append_only: bool,
        max_window: int,
    ) -> None:
        self.identity = identity
        self.held_dir = held_dir
        self.append_only = append_only
        self.max_window = max_window
        self._own = own
        self._spaces: dict[tuple[str, str], Space] = {}
        self._lock = threading.Lock()

    def get(self, domain: str, node: str) -> Space:
        """Return the space of `<domain>/<node>` (held repositories are made on first write)."""
        check_space_name(domain, node)
        with self._lock:
            found = self._spaces.get((domain, node))
            if found is None:
                own = self._own is not None and (domain, node) == self.identity
                store = self._own if own and self._own is not None else self._held(domain, node)
                service = BlobService(store, self.append_only, self.max_window)
                found = self._spaces[(domain, node)] = Space(domain, node, store, service, own)
            return found

    def _held(self, domain: str, node: str) -> BlobStore:
        return LocalStore(self.held_dir / domain / node)

    def held(self) -> list[Space]:
        """Every held repository that exists, sorted by domain and node."""
        found = []
        for domain, node in held_spaces(self.held_dir):
            try:
                space = self.get(domain, node)
            except UsageError:
                continue
            if not space.own:
                found.append(space)
        return found

    def all(self) -> list[Space]:
        """This node's own repository (if served) and every held one."""
        own = [self.get(*self.identity)] if self._own is not None else []
        return own + self.held()


def held_spaces(held_dir: Path) -> list[tuple[str, str]]:
    """The (domain, node) directories under `held_dir`, sorted."""
    found: list[tuple[str, str]] = []
    try:
        domains = sorted(os.listdir(held_dir))
    except FileNotFoundError:
        return []
    for domain in domains:
        try:
            found.extend((domain, node) for node in sorted(os.listdir(held_dir / domain)))
        except (NotADirectoryError, FileNotFoundError):
            continue
    return found
