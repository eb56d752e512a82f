"""`chute forget`, `chute prune`, `chute check`: the repository's life cycle.

Each command parses its options, takes the lock its work needs (see
chute.locking: forget and check shared, prune exclusive; `--lock-wait`
says how long to wait for a conflicting lock), calls the plain function
(chute.forget, chute.prune, chute.check) and prints the result, as text or
with `--json`. check exits with 13 when it finds damage.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import click

from chute.cli import EPILOG, LOCK_WAIT, Ctx, cli, common
from chute.errors import IntegrityError, UsageError
from chute.locking import EXCLUSIVE, SHARED, GuardedStore, lock, read_lock
from chute.output import human_size

_MAX_UNUSED = click.option(
    "--max-unused",
    default="5%",
    show_default=True,
    metavar="LIMIT",
    help="Unused data to tolerate: a percentage, a size (100M, 2G) or 'unlimited'.",
)


def _count(name: str, what: str) -> Any:
    return click.option(
        f"--keep-{name}", type=int, default=0, metavar="N", help=f"Keep the {what} (-1: all)."
    )


@cli.command(epilog=EPILOG)
@click.argument("snapshots", nargs=-1)
@_count("last", "N newest snapshots")
@_count("hourly", "newest snapshot of each of the last N hours")
@_count("daily", "newest snapshot of each of the last N days")
@_count("weekly", "newest snapshot of each of the last N ISO weeks")
@_count("monthly", "newest snapshot of each of the last N months")
@_count("yearly", "newest snapshot of each of the last N years")
@click.option(
    "--keep-within",
    metavar="DURATION",
    help="Keep snapshots younger than DURATION before a mount's newest (e.g. 7d, 1y6m).",
)
@click.option("--keep-tag", multiple=True, metavar="TAG", help="Keep snapshots with this tag.")
@click.option(
    "--mount", "mounts", multiple=True, metavar="MOUNT", help="Only this mount (label or path)."
)
@click.option("--dry-run", "-n", is_flag=True, help="Only list what would be forgotten.")
@click.option("--prune", "then_prune", is_flag=True, help="Run prune afterwards.")
@_MAX_UNUSED
@LOCK_WAIT
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@common
def forget(
    c: Ctx,
    snapshots: tuple[str, ...],
    keep_last: int,
    keep_hourly: int,
    keep_daily: int,
    keep_weekly: int,
    keep_monthly: int,
    keep_yearly: int,
    keep_within: str | None,
    keep_tag: tuple[str, ...],
    mounts: tuple[str, ...],
    dry_run: bool,
    then_prune: bool,
    max_unused: str,
    lock_wait: float,
    as_json: bool,
) -> None:
    """Forget SNAPSHOTS, or those a retention policy (per mount) does not keep.

    Forgotten snapshots leave the snapshot list and the graph at once; the
    data only they used stays until `chute prune` (or --prune) removes it.
    """
    from chute.forget import ForgetPlan, forget, plan_named, plan_policy
    from chute.retention import Duration, Policy
    from chute.session import select_snapshot

    policy = Policy(
        keep_last,
        keep_hourly,
        keep_daily,
        keep_weekly,
        keep_monthly,
        keep_yearly,
        Duration.parse(keep_within) if keep_within else None,
        frozenset(keep_tag),
    )
    if snapshots and (not policy.empty() or mounts):
        raise UsageError("name snapshots or give a policy (--keep-*, --mount), not both")
    repo = c.repo()
    plan: ForgetPlan
    if snapshots:
        plan = plan_named([select_snapshot(repo, s) for s in snapshots])
    else:
        plan = plan_policy(repo, policy, mounts)
    done: list[Any] = []
    dropped: set[str] = set()
    if not dry_run:
        with lock(repo.store, SHARED, "forget", lock_wait) as held:
            locked = repo.with_store(GuardedStore(repo.store, held))
            done = forget(locked, plan.doomed)
            dropped = _sync_graph(c, locked)
    summary = {
        "dry_run": dry_run,
        "snapshots": [
            {"snapshot": d.name.path, "keep": d.keep, "reasons": list(d.reasons)}
            for d in plan.decisions
        ],
        "forgotten": [n.path for n in done],
        "graph_dropped": len(dropped),
    }
    if as_json and not then_prune:
        click.echo(json.dumps(summary, indent=2))
    elif not as_json:
        _print_plan(plan, dry_run)
    if then_prune and not dry_run:
        report = _prune(c, max_unused, False, lock_wait)
        if as_json:
            click.echo(json.dumps({**summary, "prune": report.as_dict()}, indent=2))
        else:
            _print_prune(report)


def _sync_graph(c: Ctx, repo: Any) -> set[str]:
    """Make the graph match the repository; return the snapshot IRIs it dropped."""
    from chute.session import history

    with history(c.settings, repo, sync=False) as graph:
        before = graph.snapshot_iris()
        graph.sync(repo)
        return before - graph.snapshot_iris()


def _print_plan(plan: Any, dry_run: bool) -> None:
    mount = None
    for decision in plan.decisions:
        name = decision.name
        if name.mount != mount:
            mount = name.mount
            click.echo(f"{name.domain}/{name.node}/{name.mount} ({name.mount_path})")
        verdict = "keep  " if decision.keep else "forget"
        click.echo(f"  {verdict}  {name.timestamp}  {', '.join(decision.reasons)}".rstrip())
    doomed = len(plan.doomed)
    if dry_run:
        click.echo(f"would forget {doomed} snapshot(s) (dry run)")
    else:
        click.echo(f"forgot {doomed} snapshot(s); `chute prune` removes the data only they used")


@cli.command(epilog=EPILOG)
@_MAX_UNUSED
@click.option("--dry-run", "-n", is_flag=True, help="Only show what would be removed.")
@LOCK_WAIT
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@common
def prune(c: Ctx, max_unused: str, dry_run: bool, lock_wait: float, as_json: bool) -> None:
    """Delete data no snapshot uses; repack partly used windows (exclusive lock)."""
    report = _prune(c, max_unused, dry_run, lock_wait)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        _print_prune(report)


def _prune(c: Ctx, max_unused: str, dry_run: bool, lock_wait: float) -> Any:
    from chute.prune import parse_max_unused, prune

    parse_max_unused(max_unused)  # a bad value fails before the lock is taken
    repo = c.repo()
    with lock(repo.store, EXCLUSIVE, "prune", lock_wait) as held:
        locked = repo.with_store(GuardedStore(repo.store, held))
        if not dry_run:
            _sync_graph(c, locked)  # a forget that stopped before its graph step
        return prune(locked, max_unused, dry_run)


def _print_prune(report: Any) -> None:
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    verb = "would " if report.dry_run else ""
    click.echo(
        f"{report.snapshots} snapshot(s) use {report.objects_live} objects, "
        f"{human_size(report.bytes_used)} in {report.windows} windows; "
        f"{human_size(report.bytes_unused_before)} unused"
    )
    click.echo(
        f"{verb}delete {report.windows_deleted} window(s), repack {report.windows_repacked} "
        f"({report.objects_moved} objects, {human_size(report.bytes_written)} written), "
        f"free {human_size(report.bytes_deleted - report.bytes_written)}; "
        f"{verb}remove {report.blobs_removed} forgotten index(es) and "
        f"{report.leftovers_removed} leftover(s)"
    )
    click.echo(f"unused afterwards: {human_size(report.bytes_unused_after)} ({report.seconds} s)")


@cli.command(epilog=EPILOG)
@click.option("--read-data", is_flag=True, help="Also read and verify every window.")
@click.option(
    "--read-data-subset",
    metavar="n/t|p%",
    help="Read group n of t (e.g. 1/5) or a random p% (e.g. 10%) of the windows.",
)
@LOCK_WAIT
@click.option(
    "--no-lock",
    is_flag=True,
    help="Take no lock (a read-only repository); a prune running meanwhile looks like damage.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@common
def check(
    c: Ctx,
    read_data: bool,
    read_data_subset: str | None,
    lock_wait: float,
    no_lock: bool,
    as_json: bool,
) -> None:
    """Check the repository; name the files and snapshots any damage breaks (exit 13)."""
    from chute.check import Subset, check
    from chute.session import history

    if read_data and read_data_subset:
        raise UsageError("give --read-data or --read-data-subset, not both")
    subset = Subset() if read_data else None
    if read_data_subset:
        subset = Subset.parse(read_data_subset)
    repo = c.repo()
    with contextlib.ExitStack() as stack:
        if not no_lock:
            stack.enter_context(read_lock(repo.store, "check", lock_wait))
        with history(c.settings, repo, sync=False) as graph:
            in_graph = graph.snapshot_iris()
        report = check(repo, in_graph, subset)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        _print_check(report)
    if not report.ok:
        snapshots = {b.snapshot for b in report.broken}
        raise IntegrityError(
            f"check found damage: {len(report.broken)} file(s), director(ies) or snapshot(s) "
            f"broken in {len(snapshots)} snapshot(s)"
        )


def _print_check(report: Any) -> None:
    read = ""
    if report.windows_read:
        read = (
            f"; read {report.windows_read} windows ({human_size(report.bytes_read)}), "
            f"{report.objects_read} objects"
        )
    click.echo(
        f"checked {report.snapshots} snapshot(s): {report.blobs} blobs, {report.windows} windows, "
        f"{report.trees} listings{read}"
    )
    for note in report.notes:
        click.echo(f"note: {note}")
    for line in report.damage:
        click.echo(f"damage: {line}")
    snapshot = None
    for broken in report.broken:
        if broken.snapshot != snapshot:
            snapshot = broken.snapshot
            click.echo(f"broken in {snapshot}:")
        where = broken.path or "(the whole snapshot)"
        click.echo(f"  {where} [{broken.kind}]: {broken.reason}")
    if report.ok:
        click.echo("no damage found")
