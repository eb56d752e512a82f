"""Retention policies for `chute forget`, with restic's semantics.

Snapshots are grouped by mount (domain, node, mount label) and each group
is judged alone. Within a group, newest first, a snapshot is kept when any
rule keeps it:

* `last n`: the n newest snapshots;
* `hourly/daily/weekly/monthly/yearly n`: the newest snapshot of each of
  the n newest hours (days, ISO weeks, months, years) that have one;
* `within d`: every snapshot taken less than d before the group's newest
  (d like `2d`, `1y6m`, `3w12h`: years, months, weeks, days, hours);
* `tags`: every snapshot carrying one of the tags.

A count below zero means "no limit". Periods are UTC calendar periods, as
snapshot timestamps are UTC.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from chute.errors import UsageError
from chute.ids import SnapshotName, parse_timestamp

_DURATION = re.compile(r"(\d+)([ymwdh])")


@dataclass(frozen=True)
class Duration:
    """A calendar duration: years and months count on the calendar, the rest in hours."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse `1y2m3w4d5h` (any subset, in any order)."""
        compact = text.strip().lower()
        if not compact or _DURATION.sub("", compact):
            raise UsageError(f"bad duration {text!r}: use e.g. 7d, 2w, 6m, 1y, 1y6m, 36h")
        values = {"y": 0, "m": 0, "w": 0, "d": 0, "h": 0}
        for number, unit in _DURATION.findall(compact):
            values[unit] += int(number)
        return cls(values["y"], values["m"], values["w"] * 7 + values["d"], values["h"])

    def before(self, moment: datetime) -> datetime:
        """Return the moment this long before `moment`."""
        month_index = moment.year * 12 + moment.month - 1 - self.years * 12 - self.months
        year, month = divmod(month_index, 12)
        day = min(moment.day, calendar.monthrange(year, month + 1)[1])
        shifted = moment.replace(year=year, month=month + 1, day=day)
        return shifted - timedelta(days=self.days, hours=self.hours)


@dataclass(frozen=True)
class Policy:
    """What to keep; the counts are per mount."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: Duration | None = None
    tags: frozenset[str] = field(default_factory=frozenset)

    def empty(self) -> bool:
        counts = (self.last, self.hourly, self.daily, self.weekly, self.monthly, self.yearly)
        return not any(counts) and self.within is None and not self.tags


@dataclass(frozen=True)
class Candidate:
    """A snapshot as the policy sees it."""

    name: SnapshotName
    tags: tuple[str, ...] = ()

    @property
    def time(self) -> datetime:
        return parse_timestamp(self.name.timestamp)


@dataclass(frozen=True)
class Decision:
    """Whether a snapshot stays, and which rules keep it."""

    name: SnapshotName
    keep: bool
    reasons: tuple[str, ...]


Bucket = Callable[[datetime], object]

_BUCKETS: tuple[tuple[str, Bucket], ...] = (
    ("hourly", lambda t: (t.year, t.month, t.day, t.hour)),
    ("daily", lambda t: (t.year, t.month, t.day)),
    ("weekly", lambda t: t.isocalendar()[:2]),
    ("monthly", lambda t: (t.year, t.month)),
    ("yearly", lambda t: t.year),
)


def decide(policy: Policy, candidates: Iterable[Candidate]) -> list[Decision]:
    """Apply the policy to every mount's snapshots; decisions come newest first per mount."""
    if policy.empty():
        raise UsageError("give at least one --keep-* option, or name the snapshots to forget")
    groups: dict[tuple[str, str, str], list[Candidate]] = {}
    for cand in candidates:
        key = (cand.name.domain, cand.name.node, cand.name.mount)
        groups.setdefault(key, []).append(cand)
    decisions: list[Decision] = []
    for key in sorted(groups):
        decisions.extend(_decide_group(policy, groups[key]))
    return decisions


def _decide_group(policy: Policy, group: list[Candidate]) -> list[Decision]:
    ordered = sorted(group, key=lambda c: c.name.timestamp, reverse=True)
    left = {"last": policy.last} | {rule: getattr(policy, rule) for rule, _ in _BUCKETS}
    seen: dict[str, object] = {}
    cutoff = policy.within.before(ordered[0].time) if policy.within else None
    out = []
    for cand in ordered:
        reasons = []
        moment = cand.time
        if left["last"] != 0:
            reasons.append("last")
            left["last"] -= 1
        for rule, bucket in _BUCKETS:
            value = bucket(moment)
            if left[rule] != 0 and seen.get(rule) != value:
                seen[rule] = value
                reasons.append(rule)
                left[rule] -= 1
        if cutoff is not None and moment > cutoff:
            reasons.append("within")
        matched = sorted(policy.tags.intersection(cand.tags))
        if matched:
            reasons.append("tag " + ",".join(matched))
        out.append(Decision(cand.name, bool(reasons), tuple(reasons)))
    return out
