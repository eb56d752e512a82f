"""Retention policies: restic's keep rules, per mount."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chute.errors import UsageError
from chute.ids import SnapshotName, timestamp_now
from chute.retention import Candidate, Duration, Policy, decide

START = datetime(2026, 1, 1, tzinfo=UTC)


def _cands(
    times: list[datetime], mount: str = "src", tags: tuple[str, ...] = ()
) -> list[Candidate]:
    return [
        Candidate(SnapshotName("example.com", "n1", mount, timestamp_now(t.timestamp())), tags)
        for t in times
    ]


def _kept(policy: Policy, cands: list[Candidate]) -> list[str]:
    return sorted(d.name.timestamp for d in decide(policy, cands) if d.keep)


def test_keep_last_keeps_the_newest() -> None:
    cands = _cands([START + timedelta(hours=i) for i in range(10)])
    assert _kept(Policy(last=3), cands) == [c.name.timestamp for c in cands[-3:]]


def test_keep_daily_keeps_the_newest_of_each_day() -> None:
    times = [START + timedelta(hours=6 * i) for i in range(12)]  # 3 days, 4 a day
    kept = _kept(Policy(daily=2), _cands(times))
    assert kept == [timestamp_now((START + timedelta(hours=h)).timestamp()) for h in (42, 66)]


def test_keep_weekly_monthly_yearly_use_calendar_periods() -> None:
    times = [START + timedelta(days=d) for d in range(0, 800, 3)]
    cands = _cands(times)
    assert len(_kept(Policy(weekly=4), cands)) == 4
    monthly = _kept(Policy(monthly=5), cands)
    assert len({t[:6] for t in monthly}) == 5
    assert len(_kept(Policy(yearly=10), cands)) == 3  # 2026, 2027, 2028


def test_rules_combine_and_counts_below_zero_mean_all() -> None:
    cands = _cands([START + timedelta(days=d) for d in range(10)])
    assert len(_kept(Policy(daily=-1), cands)) == 10
    decisions = decide(Policy(last=1, daily=2), cands)
    newest = decisions[0]
    assert newest.keep and newest.reasons == ("last", "daily")
    assert sum(d.keep for d in decisions) == 2


def test_keep_within_is_relative_to_the_newest_snapshot() -> None:
    cands = _cands([START + timedelta(days=d) for d in range(30)])
    kept = _kept(Policy(within=Duration.parse("1w")), cands)
    assert len(kept) == 7  # strictly younger than newest - 7 days


def test_keep_tag_keeps_tagged_snapshots() -> None:
    plain = _cands([START + timedelta(days=d) for d in range(5)])
    tagged = _cands([START - timedelta(days=1)], tags=("keep", "x"))
    decisions = decide(Policy(last=1, tags=frozenset({"keep"})), plain + tagged)
    by_time = {d.name.timestamp: d for d in decisions}
    assert by_time[tagged[0].name.timestamp].reasons == ("tag keep",)
    assert sum(d.keep for d in decisions) == 2


def test_policy_applies_per_mount() -> None:
    a = _cands([START + timedelta(days=d) for d in range(4)], mount="a")
    b = _cands([START + timedelta(days=d) for d in range(2)], mount="b/c")
    decisions = decide(Policy(last=1), a + b)
    assert {(d.name.mount, d.name.timestamp) for d in decisions if d.keep} == {
        ("a", a[-1].name.timestamp),
        ("b/c", b[-1].name.timestamp),
    }


def test_an_empty_policy_is_refused() -> None:
    with pytest.raises(UsageError):
        decide(Policy(), _cands([START]))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", Duration(days=7)),
        ("2w3h", Duration(days=14, hours=3)),
        ("1y6m", Duration(years=1, months=6)),
        ("36h", Duration(hours=36)),
    ],
)
def test_durations_parse(text: str, expected: Duration) -> None:
    assert Duration.parse(text) == expected


@pytest.mark.parametrize("text", ["", "7", "d", "1x", "-1d", "1d junk"])
def test_bad_durations_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        Duration.parse(text)


def test_months_clamp_to_the_end_of_a_shorter_month() -> None:
    moment = datetime(2026, 3, 31, 12, tzinfo=UTC)
    assert Duration(months=1).before(moment) == datetime(2026, 2, 28, 12, tzinfo=UTC)
    assert Duration(years=1, months=2).before(moment) == datetime(2025, 1, 31, 12, tzinfo=UTC)


@given(
    st.lists(st.integers(min_value=0, max_value=3000), min_size=1, max_size=40, unique=True),
    st.integers(min_value=0, max_value=5),
    st.integers(min_value=0, max_value=5),
)
def test_every_policy_keeps_the_newest_and_is_monotone(
    hours: list[int], last: int, daily: int
) -> None:
    cands = _cands([START + timedelta(hours=h) for h in hours])
    policy = Policy(last=max(last, 1), daily=daily)
    kept = set(_kept(policy, cands))
    assert max(c.name.timestamp for c in cands) in kept
    assert len(kept) <= policy.last + policy.daily
    more = set(_kept(Policy(last=policy.last + 1, daily=daily), cands))
    assert kept <= more
