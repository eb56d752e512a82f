"""`chute forget`: take snapshots out of the repository's list and the graph.

Forget deletes nothing: it writes a sealed tombstone next to each chosen
snapshot's blob (see chute.tombstone), which takes the snapshot out of
`chute ls`, selection and graph syncs, while its object table keeps
serving the chunks that later snapshots share. `chute prune` then removes
the data that no kept snapshot uses. Forget takes a shared lock: it only
adds objects, so it may run beside puts; prune waits for it.

The snapshots to forget are named, or chosen by a retention policy
(chute.retention) applied per mount. After the tombstones, the caller
syncs the graph, which removes the snapshots the repository no longer
lists and the versions only they held (`History.sync`); a crash in between
is healed by the next command that syncs the graph.
"""

from __future__ import annotations

from dataclasses import dataclass

from chute.errors import NotFound
from chute.ids import SnapshotName
from chute.repository import Repository
from chute.retention import Candidate, Decision, Policy, decide
from chute.tombstone import write_tombstone


@dataclass(frozen=True)
class ForgetPlan:
    """The verdict for every snapshot considered."""

    decisions: list[Decision]

    @property
    def doomed(self) -> list[SnapshotName]:
        return [d.name for d in self.decisions if not d.keep]


def _matches_mount(name: SnapshotName, mounts: tuple[str, ...]) -> bool:
    if not mounts:
        return True
    wanted = {m.strip("/") for m in mounts}
    return name.mount in wanted or name.mount_path.strip("/") in wanted


def plan_policy(repo: Repository, policy: Policy, mounts: tuple[str, ...] = ()) -> ForgetPlan:
    """Decide, per mount, which snapshots the policy keeps."""
    names = [n for n in repo.snapshots() if _matches_mount(n, mounts)]
    for mount in mounts:
        if not any(_matches_mount(n, (mount,)) for n in names):
            raise NotFound(f"no snapshot of mount {mount}")
    if policy.tags:  # tags live in the sealed part of each index: read them only when needed
        cands = [Candidate(n, tuple(repo.read_index(n).meta.get("tags", []))) for n in names]
    else:
        cands = [Candidate(n) for n in names]
    return ForgetPlan(decide(policy, cands))


def plan_named(names: list[SnapshotName]) -> ForgetPlan:
    """Forget exactly these snapshots."""
    unique = sorted(set(names), key=lambda n: (n.timestamp, n.path))
    return ForgetPlan([Decision(n, False, ("named",)) for n in unique])


def forget(repo: Repository, names: list[SnapshotName]) -> list[SnapshotName]:
    """Write a tombstone for each snapshot; return those this call forgot."""
    return [n for n in names if write_tombstone(repo.store, repo.key, n.path, "forget")]
