"""`chute log`, `chute diff`, `chute find`: questions to the history, answered from the graph.

Each runs one of the example queries (see `chute.timeline`); `--json` prints
the rows as JSON objects. `log` and `find` need the key only when the graph
has to catch up with the repository.
"""

from __future__ import annotations

from typing import Any

import click

from chute.cli import EPILOG, Ctx, cli, common


@cli.command(epilog=EPILOG)
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@common
def log(c: Ctx, path: str, as_json: bool) -> None:
    """Show every version of PATH, oldest first, and the snapshots that held it.

    PATH is a path inside snapshots (`docs/notes.txt`, starting with the name
    of what was backed up) or an absolute path under a backed-up tree.
    """
    from chute import output, timeline

    with timeline.reading_history(c.settings) as history:
        versions = timeline.log(history, path)
    if as_json:
        click.echo(output.dumps([v.as_json() for v in versions]))
        return
    mounts = len({v.mount for v in versions}) > 1
    rows = []
    for v in versions:
        rows.append(_version_row(v, mounts))
        if v.deleted:
            gone = [v.until_timestamp or "", "", "", "", "", "", "(deleted)"]
            rows.append(gone + _mount(v, mounts))
    headers = ["since", "last", "size", "modified", "sha256", "mode", "entry"]
    click.echo(output.table(headers + (["mount"] if mounts else []), rows))


def _version_row(v: Any, mounts: bool) -> list[str]:
    from chute import output

    size = output.human_size(v.size) if v.size is not None else ""
    modified = (v.modified or "").replace("T", " ").rstrip("Z")[:19]
    entry = v.type + (f" -> {v.target}" if v.target else "")
    sha = (v.sha256 or "")[:12]
    fields = [v.since_timestamp, v.last_timestamp, size, modified, sha, v.permissions or "", entry]
    return fields + _mount(v, mounts)


def _mount(v: Any, mounts: bool) -> list[str]:
    return [v.mount] if mounts else []


@cli.command(epilog=EPILOG)
@click.argument("old")
@click.argument("new", required=False, default="latest")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@common
def diff(c: Ctx, old: str, new: str, as_json: bool) -> None:
    """Show entries added, changed and deleted from snapshot OLD to NEW (default: latest).

    OLD and NEW are selected as for `get`: `latest`, `latest:<mount>`, a
    snapshot URI or blob path, or a unique timestamp prefix. Both must be
    snapshots of one mount.
    """
    from chute import output, timeline
    from chute.session import history, select_snapshot

    repo = c.repo()
    first, second = select_snapshot(repo, old), select_snapshot(repo, new)
    with history(c.settings, repo) as graph:
        changes = timeline.diff(graph, first, second)
    if as_json:
        click.echo(output.dumps([change.as_json() for change in changes]))
        return
    marks = {"added": "+", "changed": "~", "deleted": "-"}
    for ch in changes:
        click.echo(f"{marks[ch.change]} {ch.path}{_sizes(ch)}")
    counts = {kind: sum(1 for ch in changes if ch.change == kind) for kind in marks}
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    click.echo(f"{first.timestamp} -> {second.timestamp}: {summary}")


def _sizes(ch: Any) -> str:
    from chute.output import human_size

    def size(value: int | None) -> str:
        return human_size(value) if value is not None else "-"

    if ch.type == "directory":
        return "/"
    if ch.change == "added":
        return f"  {size(ch.new_size)}"
    if ch.change == "deleted":
        return f"  {size(ch.old_size)}"
    if ch.old_sha256 == ch.new_sha256 and ch.old_size == ch.new_size:
        return "  (metadata only)"
    return f"  {size(ch.old_size)} -> {size(ch.new_size)}"


@cli.command(epilog=EPILOG)
@click.argument("pattern")
@click.option("--regex", is_flag=True, help="PATTERN is a regular expression over whole paths.")
@click.option("--each", is_flag=True, help="One line per snapshot holding a match.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@common
def find(c: Ctx, pattern: str, regex: bool, each: bool, as_json: bool) -> None:
    """Find paths matching PATTERN in any snapshot: when each was first and last seen.

    PATTERN is a glob: without `/` it matches names (`'*.toml'`), with `/`
    whole paths from the top (`'docs/**/*.md'`); `*` and `?` stay within a
    name, `**` crosses directories. Quote it from the shell. With --each,
    every snapshot that holds a match is listed (as `restic find` does).
    """
    from chute import output, timeline

    with timeline.reading_history(c.settings) as history:
        if each:
            hits = timeline.find_each(history, pattern, regex)
        else:
            found = timeline.find(history, pattern, regex)
    if each:
        _print_hits(hits, as_json)
        return
    if as_json:
        click.echo(output.dumps([f.as_json() for f in found]))
        return
    if not found:
        click.echo(f"nothing matches {pattern!r} in any snapshot")
        return
    mounts = len({f.mount for f in found}) > 1
    rows = []
    for f in found:
        last = "present" if f.present else f.last_timestamp
        size = output.human_size(f.size) if f.size is not None else ""
        row = [f.first_timestamp, last, str(f.versions), size, f.type, f.path]
        rows.append(row + ([f.mount] if mounts else []))
    headers = ["first", "last", "versions", "size", "type", "path"]
    click.echo(output.table(headers + (["mount"] if mounts else []), rows))


def _print_hits(hits: list[Any], as_json: bool) -> None:
    from chute import output

    if as_json:
        click.echo(output.dumps([h.as_json() for h in hits]))
        return
    mounts = len({h.mount for h in hits}) > 1
    rows = []
    for h in hits:
        size = output.human_size(h.size) if h.size is not None else ""
        rows.append([h.timestamp, size, h.type, h.path] + ([h.mount] if mounts else []))
    headers = ["snapshot", "size", "type", "path"] + (["mount"] if mounts else [])
    click.echo(output.table(headers, rows))
