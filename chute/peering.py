"""The plain functions behind `chute push` and `chute pull`.

Both take a shared lock on the local repository (`chute.locking`) for
their whole run, so a prune cannot remove a window a push is about to send
or a pull is writing next to, start from the transfer size learned for
that peer and direction (`chute.adapt`), and save what they learned at the
end, also when they fail (a link that needed smaller requests is
remembered as such).
"""

from __future__ import annotations

from chute.adapt import START_SIZE, Sizer, load_learned, save_learned
from chute.config import Settings
from chute.locking import SHARED, GuardedStore, lock
from chute.peers import Peer, PeerBook, peer_store
from chute.pull import Puller
from chute.repository import Repository
from chute.store.base import open_store
from chute.sync import Pusher, needed_blobs
from chute.transfer import Progress, TransferStats


def _sizer(peer: Peer, direction: str) -> Sizer:
    learned = load_learned(peer.name, direction)
    return Sizer(size=learned.size if learned else START_SIZE, round_requests=max(4, peer.inflight))


def _keep(peer: Peer, direction: str, sizer: Sizer) -> None:
    learned = sizer.learned()
    if learned is not None:
        save_learned(peer.name, direction, learned)


def push_to(
    settings: Settings, name: str, selectors: list[str], progress: Progress | None = None
) -> TransferStats:
    """Push this node's repository (or what some snapshots need) to peer `name`."""
    from chute.session import select_snapshot

    peer = PeerBook().get(name)
    local = open_store(settings.repo)
    Repository.read_config(local)
    sizer = _sizer(peer, "push")
    stats = TransferStats("push", peer.name)
    with lock(local, SHARED, "push"):
        only = None
        if selectors:
            repo = Repository.open(local, settings.secret(), settings.cache_root())
            only = needed_blobs(repo, [select_snapshot(repo, s) for s in selectors])
        pusher = Pusher(
            local,
            peer_store(peer),
            sizer,
            stats=stats,
            inflight=peer.inflight,
            progress=progress,
            attempts=peer.attempts,
        )
        try:
            return pusher.run(only)
        finally:
            _keep(peer, "push", sizer)


def pull_from(settings: Settings, name: str, progress: Progress | None = None) -> TransferStats:
    """Fetch what the local repository lacks from the one peer `name` holds for this node."""
    peer = PeerBook().get(name)
    local = open_store(settings.repo)
    sizer = _sizer(peer, "pull")
    stats = TransferStats("pull", peer.name)
    with lock(local, SHARED, "pull") as held:
        puller = Puller(
            GuardedStore(local, held),
            peer_store(peer),
            sizer,
            stats=stats,
            inflight=peer.inflight,
            progress=progress,
            attempts=peer.attempts,
        )
        try:
            return puller.run()
        finally:
            _keep(peer, "pull", sizer)
