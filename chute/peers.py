"""Peers: the chute servers that hold this node's repository.

`chute peer add NAME URL --token T` records a peer in
`$XDG_CONFIG_HOME/chute/peers.json` (mode 0600: it holds the tokens). An
entry names the server, the token, and the *space* on it: the
`<domain>/<node>` under which the server keeps this node's repository. The
space defaults to this node's own domain and node, fixed when the peer is
added, so a fresh machine with another host name (and only the key and
this file) still finds its repository. An entry also says how long a
stalled connection is waited for (`timeout`, seconds), how many requests
may be in flight at once (`inflight`) and how often a request that failed
in a way that may pass is tried before giving up (`attempts`, with
exponential backoff from half a second).

What runs against a peer opens it here: `peer_store` (the repository as a
`BlobStore` over HTTP) and `open_peer_repository` (the same, opened with
the key: `chute get --from`, `chute graph rebuild --from`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chute.config import Settings, xdg
from chute.errors import NoRepository, NotFound, StorageError, UsageError
from chute.store.http import DEFAULT_ATTEMPTS, DEFAULT_TIMEOUT, HttpClient, HttpStore

if TYPE_CHECKING:
    from chute.repository import Repository

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_SEGMENT = re.compile(r"^(?!\.)[A-Za-z0-9._~%-]{1,255}\Z")
DEFAULT_INFLIGHT = 4
MAX_INFLIGHT = 32


@dataclass(frozen=True)
class Peer:
    """One peer entry."""

    name: str
    url: str
    token: str | None
    domain: str
    node: str
    timeout: float = DEFAULT_TIMEOUT
    inflight: int = DEFAULT_INFLIGHT
    attempts: int = DEFAULT_ATTEMPTS

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise UsageError(f"invalid peer name {self.name!r} (letters, digits, . _ -)")
        if not (_SEGMENT.match(self.domain) and _SEGMENT.match(self.node)):
            raise UsageError(f"invalid space {self.domain}/{self.node} (DOMAIN/NODE)")
        if not 0 < self.timeout <= 3600:
            raise UsageError("a peer's timeout is 0 < SECONDS <= 3600")
        if not 1 <= self.inflight <= MAX_INFLIGHT:
            raise UsageError(f"a peer's in-flight requests are 1..{MAX_INFLIGHT}")
        if not 1 <= self.attempts <= 100:
            raise UsageError("a peer's attempts per request are 1..100")
        HttpClient(self.url)  # checks the URL

    @property
    def space(self) -> str:
        return f"{self.domain}/{self.node}"

    def describe(self) -> dict[str, Any]:
        """The entry without its token."""
        return {
            "name": self.name,
            "url": self.url,
            "space": self.space,
            "timeout": self.timeout,
            "inflight": self.inflight,
            "attempts": self.attempts,
            "token": bool(self.token),
        }


def parse_space(text: str) -> tuple[str, str]:
    """Split `DOMAIN/NODE`."""
    domain, sep, node = text.strip().strip("/").partition("/")
    if not sep or "/" in node or not _SEGMENT.match(domain) or not _SEGMENT.match(node):
        raise UsageError(f"a space is DOMAIN/NODE, not {text!r}")
    return domain, node


def peers_file() -> Path:
    return xdg("config") / "chute" / "peers.json"


class PeerBook:
    """The peers file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or peers_file()

    def list(self) -> list[Peer]:
        """Every peer, by name."""
        try:
            doc = json.loads(self.path.read_text())
            return sorted((Peer(**entry) for entry in doc["peers"]), key=lambda p: p.name)
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"cannot read the peers file {self.path}: {exc}") from exc

    def get(self, name: str) -> Peer:
        """One peer; NotFound if there is none by that name."""
        for peer in self.list():
            if peer.name == name:
                return peer
        raise NotFound(f"no peer named {name} (see `chute peer list`)")

    def add(self, peer: Peer, replace: bool = False) -> None:
        """Record a peer (UsageError if the name is taken, unless `replace`)."""
        peers = [p for p in self.list() if p.name != peer.name]
        if not replace and len(peers) != len(self.list()):
            raise UsageError(f"a peer named {peer.name} exists (remove it first, or --replace)")
        self._save([*peers, peer])

    def remove(self, name: str) -> None:
        """Forget a peer; NotFound if there is none by that name."""
        peers = self.list()
        kept = [p for p in peers if p.name != name]
        if len(kept) == len(peers):
            raise NotFound(f"no peer named {name}")
        self._save(kept)

    def _save(self, peers: Sequence[Peer]) -> None:
        doc = {"version": 1, "peers": [asdict(p) for p in sorted(peers, key=lambda p: p.name)]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(doc, indent=1) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            raise StorageError(f"cannot write the peers file {self.path}: {exc}") from exc


def peer_client(peer: Peer) -> HttpClient:
    """A client for a peer's server."""
    return HttpClient(peer.url, peer.token, timeout=peer.timeout, attempts=peer.attempts)


def peer_store(peer: Peer) -> HttpStore:
    """The repository a peer holds for this node, as a BlobStore."""
    return HttpStore(peer_client(peer), peer.domain, peer.node)


def open_peer_repository(settings: Settings, name: str) -> Repository:
    """Open the repository a peer holds for this node, with this node's key."""
    from chute.repository import Repository

    peer = PeerBook().get(name)
    store = peer_store(peer)
    try:
        Repository.read_config(store)  # "no repository" comes before "no key"
    except NoRepository:
        raise NoRepository(
            f"peer {name} holds no repository for {peer.space} (run `chute push {name}`)"
        ) from None
    return Repository.open(store, settings.secret(), settings.cache_root())
