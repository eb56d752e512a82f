"""`chute peer add|list|remove`, `chute push`, `chute pull`: this node's repository on peers.

Each command parses, calls a plain function of `chute.peering` and prints
the result (text, or `--json`); a progress bar shows bytes on a terminal.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from chute.cli import EPILOG, Ctx, cli, common


@contextmanager
def _bytes_bar(enabled: bool, label: str) -> Iterator[Callable[[int, int], None] | None]:
    if not (enabled and sys.stderr.isatty()):
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn(label),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        yield update


@cli.group()
def peer() -> None:
    """Manage peers: servers that hold this node's repository."""


@peer.command("add", epilog=EPILOG)
@click.argument("name")
@click.argument("url")
@click.option("--token", help="A token of the peer's server (`write`; `read` too for --from).")
@click.option(
    "--space",
    metavar="DOMAIN/NODE",
    help="Where the peer keeps this node's repository (default: this node's domain/node).",
)
@click.option(
    "--timeout",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds a stalled request is waited for.",
)
@click.option(
    "--inflight", type=int, default=4, show_default=True, help="Requests in flight at once."
)
@click.option(
    "--attempts",
    type=int,
    default=6,
    show_default=True,
    help="Tries per request (backoff between) before giving up.",
)
@click.option("--replace", is_flag=True, help="Overwrite an existing peer of that name.")
@common
def peer_add(
    c: Ctx,
    name: str,
    url: str,
    token: str | None,
    space: str | None,
    timeout: float,
    inflight: int,
    attempts: int,
    replace: bool,
) -> None:
    """Record a peer NAME at URL (e.g. https://b.example.com or http://127.0.0.1:2002)."""
    from chute.peers import Peer, PeerBook, parse_space

    domain, node = parse_space(space) if space else (c.settings.domain, c.settings.node)
    entry = Peer(name, url.rstrip("/"), token, domain, node, timeout, inflight, attempts)
    PeerBook().add(entry, replace)
    click.echo(f"added peer {name}: {entry.url} (space {entry.space})")


@peer.command("list", epilog=EPILOG)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@common
def peer_list(c: Ctx, as_json: bool) -> None:
    """List peers (never their tokens)."""
    from chute.peers import PeerBook

    rows = [p.describe() for p in PeerBook().list()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['name']}\t{row['url']}\t{row['space']}")


@peer.command("remove", epilog=EPILOG)
@click.argument("name")
@common
def peer_remove(c: Ctx, name: str) -> None:
    """Forget a peer (what it holds stays there)."""
    from chute.adapt import forget_learned
    from chute.peers import PeerBook

    PeerBook().remove(name)
    forget_learned(name)
    click.echo(f"removed peer {name}")


def _report(stats: Any, as_json: bool, verb: str) -> None:
    from chute.output import human_size

    summary = stats.as_dict()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(
        f"{verb} {summary['windows_sent']} windows ({human_size(summary['bytes'])}) "
        f"in {summary['requests']} requests, {summary['blobs_sent']} blobs; "
        f"skipped {summary['windows_skipped']} windows already there "
        f"({summary['blobs_skipped']} blobs); "
        f"{human_size(summary['throughput'])}/s; window size "
        f"{human_size(summary['window_size_start'])} -> {human_size(summary['window_size'])}"
    )


@cli.command(epilog=EPILOG)
@click.argument("name")
@click.argument("snapshots", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@common
def push(c: Ctx, name: str, snapshots: tuple[str, ...], as_json: bool) -> None:
    """Send the blobs peer NAME lacks (all, or those SNAPSHOTS need); resumable."""
    from chute.peering import push_to

    with _bytes_bar(not as_json, f"push {name}") as progress:
        stats = push_to(c.settings, name, list(snapshots), progress)
    _report(stats, as_json, "pushed")


@cli.command(epilog=EPILOG)
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@common
def pull(c: Ctx, name: str, as_json: bool) -> None:
    """Fetch this node's blobs back from peer NAME into the repository (made if missing)."""
    from chute.peering import pull_from

    with _bytes_bar(not as_json, f"pull {name}") as progress:
        stats = pull_from(c.settings, name, progress)
    _report(stats, as_json, "pulled")
