"""The phases the benchmark measures, and what one measurement records."""

from __future__ import annotations

from dataclasses import dataclass

# (key, title), in the order they run.
PHASES: tuple[tuple[str, str], ...] = (
    ("init", "init"),
    ("backup-1", "first backup (mixed)"),
    ("backup-2", "second backup (mixed-v2)"),
    ("backup-nochange", "no-change backup"),
    ("restore", "full restore"),
    ("find", "find across snapshots"),
    ("smallfiles", "smallfiles backup"),
)
PHASE_TITLES = dict(PHASES)

TOOL_ORDER = ("chute", "restic", "borg")


@dataclass(frozen=True)
class Sample:
    """One tool's run of one phase in one repetition.

    `added_bytes` is the growth of the repository during the phase;
    `state_bytes` the size of the tool's HOME afterwards (its caches, keys
    and, for chute, the history graph); `graph` the seconds a chute backup
    spent recording its snapshot in the graph (from its `--json` summary).
    `ok` is false when the command failed, the restore did not match its
    source, or the phase was skipped.
    """

    rep: int
    phase: str
    tool: str
    ok: bool
    wall: float | None = None
    cpu: float | None = None
    user: float | None = None
    system: float | None = None
    max_rss: int | None = None
    peak_memory: int | None = None
    repo_bytes: int | None = None
    added_bytes: int | None = None
    state_bytes: int | None = None
    verified: bool | None = None
    matches: int | None = None
    graph: float | None = None
    skipped: bool = False
    note: str = ""

    @property
    def wall_without_graph(self) -> float | None:
        """The wall time less chute's graph phase (for the other tools, all of it)."""
        return None if self.wall is None else self.wall - (self.graph or 0.0)
