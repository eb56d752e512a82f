"""The `chute` command line: parse, build, call, print; map errors to exit codes."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from chute import __version__
from chute.errors import (
    EXIT_CODES,
    ChuteError,
    IncompleteSnapshot,
    RepositoryExists,
    StorageError,
    UsageError,
)
from chute.locking import DEFAULT_WAIT

EPILOG = "Exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items())
LOCK_WAIT = click.option(
    "--lock-wait",
    type=click.FloatRange(min=0),
    default=DEFAULT_WAIT,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for a conflicting lock.",
)


class Ctx:
    """What the group options resolved to; commands open the rest lazily."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self._settings: Any = None

    @property
    def settings(self) -> Any:
        if self._settings is None:
            from chute.config import load_settings
            from chute.varsfile import read_vars_file

            vars_file = self.options.pop("vars_file", None)
            extra = read_vars_file(Path(vars_file)) if vars_file else None
            self._settings = load_settings(self.options, extra)
        return self._settings

    def repo(self) -> Any:
        from chute.session import open_repository

        return open_repository(self.settings)


_COMMON = (
    click.option("--repo", metavar="LOCATION", help="Repository (env CHUTE_REPO)."),
    click.option("--key-file", type=click.Path(dir_okay=False), help="Key file or key device."),
    click.option(
        "--password-file",
        type=click.Path(dir_okay=False),
        help="File whose first line is the passphrase.",
    ),
    click.option("--domain", help="This node's domain (env CHUTE_DOMAIN)."),
    click.option("--node", help="This node's name (env CHUTE_NODE)."),
    click.option(
        "--vars-file",
        type=click.Path(dir_okay=False),
        help="Shell file of CHUTE_* variables, sourced by bash.",
    ),
)
_COMMON_NAMES = ("repo", "key_file", "password_file", "domain", "node", "vars_file")


def common(func: Callable[..., Any]) -> Callable[..., Any]:
    """Accept the repository options on the command too (`chute init --key-file K`)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        c = click.get_current_context().find_object(Ctx)
        assert c is not None
        for name in _COMMON_NAMES:
            value = kwargs.pop(name, None)
            if value is not None:
                c.options[name] = value
        return func(c, *args, **kwargs)

    for option in reversed(_COMMON):
        wrapper = option(wrapper)
    return wrapper


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="chute")
@click.pass_context
def cli(ctx: click.Context, **options: Any) -> None:
    """chute: zero-knowledge, deduplicating backups with a SPARQL-queryable history."""
    ctx.obj = Ctx(options)


for _option in _COMMON:  # Command.params.append: keep the declared order
    cli = _option(cli)


@contextmanager
def _progress(enabled: bool, label: str) -> Iterator[Callable[[int, int], None] | None]:
    if not (enabled and sys.stderr.isatty()):
        yield None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(label)

        def update(files: int, size: int) -> None:
            from chute.output import human_size

            bar.update(task, description=f"{label}: {files} files, {human_size(size)}")

        yield update


@cli.command(epilog=EPILOG)
@click.option(
    "--generate-key",
    is_flag=True,
    help="Make a new random key file (at --key-file or the default place).",
)
@click.option("--exist-ok", is_flag=True, help="Succeed quietly if the repository exists.")
@common
def init(c: Ctx, generate_key: bool, exist_ok: bool) -> None:
    """Create a repository and its key."""
    from chute.crypto import Secret
    from chute.repository import Repository
    from chute.session import generate_key_file
    from chute.store.base import open_store

    settings = c.settings
    store = open_store(settings.repo)
    if store.exists("config"):
        if exist_ok:
            click.echo(f"repository exists: {settings.repo}")
            return
        raise RepositoryExists(f"a repository already exists at {settings.repo}")
    if generate_key:
        path = settings.key_file or settings.default_key_file
        if not path.exists():
            generate_key_file(path)
            click.echo(f"new key file: {path}")
            click.echo("Keep a copy of it somewhere safe: losing the key loses the backups.")
        secret = Secret.key_file(path)
    elif settings.key_file or settings.password_file or settings.password:
        secret = settings.secret()
    elif sys.stdin.isatty():
        import getpass

        first = getpass.getpass("new passphrase: ")
        if first != getpass.getpass("repeat passphrase: "):
            raise UsageError("the passphrases differ")
        secret = Secret.passphrase(first)
    else:
        raise UsageError("give a key: --key-file, --generate-key, CHUTE_PASSWORD(_FILE)")
    repo_id = Repository.init(store, secret)
    click.echo(f"created repository {repo_id} at {settings.repo}")


@cli.command(epilog=EPILOG)
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--exclude", "-e", multiple=True, metavar="PATTERN", help="gitignore-style pattern.")
@click.option(
    "--exclude-file", multiple=True, type=click.Path(dir_okay=False), help="File of patterns."
)
@click.option("--tag", multiple=True, help="Tag the snapshot (repeatable).")
@click.option("--label", help="Opaque mount label for the blob name instead of the path.")
@click.option("--meta", multiple=True, metavar="KEY=VALUE", help="Free-form snapshot metadata.")
@click.option(
    "--compression",
    metavar="LEVEL",
    help="off, fast, auto (default), max, or a zstd level 1-19 (env CHUTE_COMPRESSION).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@common
def put(
    c: Ctx,
    paths: tuple[str, ...],
    exclude: tuple[str, ...],
    exclude_file: tuple[str, ...],
    tag: tuple[str, ...],
    label: str | None,
    meta: tuple[str, ...],
    compression: str | None,
    as_json: bool,
) -> None:
    """Snapshot files or trees (one snapshot per PATH)."""
    from chute.backup import PutOptions
    from chute.compression import parse
    from chute.excludes import ExcludeMatcher
    from chute.session import take_snapshot

    patterns = list(exclude)
    for path in exclude_file:
        patterns.extend(ExcludeMatcher.from_file(path).patterns)
    matcher = ExcludeMatcher.from_patterns(patterns) if patterns else None
    pairs = {}
    for item in meta:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--meta wants KEY=VALUE, got {item!r}")
        pairs[key] = value
    if label and len(paths) > 1:
        raise UsageError("--label names one mount: give one PATH with it")
    settings = c.settings
    level = settings.compression if compression is None else parse(compression)
    repo = c.repo()
    skip = _own_dirs(settings, repo)
    summaries = []
    incomplete = False
    for path in paths:
        opts = PutOptions(
            Path(path),
            settings.domain,
            settings.node,
            label,
            tag,
            pairs,
            matcher,
            skip,
            compression=level,
        )
        with _progress(not as_json, "put") as progress:
            opts.progress = progress
            outcome = take_snapshot(settings, repo, opts)
        stats = outcome.result.stats
        for warning in stats.warnings:
            click.echo(f"warning: {warning}", err=True)
        incomplete = incomplete or bool(stats.warnings)
        summaries.append(outcome.summary())
        if not as_json:
            click.echo(outcome.uri)
    if as_json:
        click.echo(json.dumps(summaries[0] if len(summaries) == 1 else summaries, indent=2))
    if incomplete:
        raise IncompleteSnapshot("snapshot saved, but some files were not read as they were")


def _own_dirs(settings: Any, repo: Any) -> frozenset[tuple[int, int]]:
    """Return (dev, ino) of chute's own repository, graph and cache directories."""
    own = set()
    for path in (settings.repo, settings.graph_path(repo.repo_id), settings.cache_root()):
        try:
            st = os.stat(path)
        except OSError:
            continue
        own.add((st.st_dev, st.st_ino))
    return frozenset(own)


@cli.command(epilog=EPILOG)
@click.argument("snapshot")
@click.argument("path", required=False, default="")
@click.option(
    "--target",
    "-t",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory to restore into (new or empty).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.option("--from", "source", metavar="PEER", help="Read from the repository a peer holds.")
@LOCK_WAIT
@click.option(
    "--no-lock",
    is_flag=True,
    help="Take no lock (a read-only repository); a prune running meanwhile can fail the restore.",
)
@common
def get(
    c: Ctx,
    snapshot: str,
    path: str,
    target: str,
    as_json: bool,
    source: str | None,
    lock_wait: float,
    no_lock: bool,
) -> None:
    """Restore a snapshot, or one PATH of it, into TARGET (verified).

    It holds a shared lock on the repository it reads, so a prune (which
    deletes and moves windows) waits until the restore is done.
    """
    from chute.locking import read_lock
    from chute.peers import open_peer_repository
    from chute.restore import restore
    from chute.session import read_snapshot

    repo = open_peer_repository(c.settings, source) if source else c.repo()
    with contextlib.ExitStack() as stack:
        if not no_lock:
            stack.enter_context(read_lock(repo.store, "get", lock_wait))
        index = read_snapshot(repo, snapshot)
        with _progress(not as_json, "get") as progress:
            stats = restore(repo, index, Path(target), path, progress)
    for warning in stats.warnings:
        click.echo(f"warning: {warning}", err=True)
    summary = {
        "snapshot": index.name.path,
        "target": target,
        "files": stats.files,
        "dirs": stats.dirs,
        "hardlinks": stats.links,
        "other": stats.other,
        "bytes": stats.bytes,
        "warnings": stats.warnings,
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(
            f"restored {stats.files} files, {stats.dirs} dirs ({stats.bytes} bytes) to {target}"
        )


@cli.command(epilog=EPILOG)
@click.argument("snapshot", required=False)
@click.argument("path", required=False, default="")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "mtree"]),
    default="text",
    help="Entry list format.",
)
@common
def ls(c: Ctx, snapshot: str | None, path: str, as_json: bool, fmt: str) -> None:
    """List snapshots, or the entries of SNAPSHOT under PATH."""
    from chute import output
    from chute.session import iter_entries, read_snapshot

    repo = c.repo()
    if snapshot is None:
        base = c.settings.base_url
        rows = [output.snapshot_json(repo.read_index(n), base) for n in repo.snapshots()]
        if as_json:
            click.echo(output.dumps(rows))
            return
        click.echo(
            output.table(
                ["timestamp", "mount", "files", "size", "tags", "uri"],
                [
                    [
                        r["timestamp"],
                        r["mount"],
                        str(r["files"]),
                        output.human_size(r["size"]),
                        ",".join(r["tags"]),
                        r["uri"],
                    ]
                    for r in rows
                ],
            )
        )
        return
    index = read_snapshot(repo, snapshot)
    entries = iter_entries(repo, index, path)
    if fmt == "mtree":
        click.echo(output.mtree(entries), nl=False)
    elif as_json:
        click.echo(output.dumps([output.entry_json(p, e) for p, e in entries]))
    else:
        for p, e in entries:
            click.echo(output.entry_line(p, e))


@cli.command(epilog=EPILOG)
@click.argument("text", required=False)
@click.option("--file", "-f", "file", type=click.File("r"), help="Read the query from a file.")
@click.option(
    "--format",
    "fmt",
    default="table",
    type=click.Choice(["table", "json", "csv", "tsv", "xml", "turtle", "ntriples"]),
    help="Result format.",
)
@click.option(
    "--bind",
    "binds",
    multiple=True,
    metavar="VAR=VALUE",
    help="Bind ?VAR to a string, or to an IRI written <...> (repeatable).",
)
@common
def query(c: Ctx, text: str | None, file: Any, fmt: str, binds: tuple[str, ...]) -> None:
    """Run a SPARQL query over the whole history (standard prefixes pre-bound)."""
    from chute import output
    from chute.session import history

    if (text is None) == (file is None):
        raise UsageError("give the query as TEXT or with --file (one of them)")
    sparql = text if text is not None else file.read()
    repo = c.repo()
    with history(c.settings, repo) as graph:
        result = graph.query_native(sparql, _bindings(binds))
        click.echo(output.query_result(result, fmt).rstrip("\n"))


def _bindings(binds: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for item in binds:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise UsageError(f"--bind wants VAR=VALUE, got {item!r}")
        pairs[name] = value
    return pairs


@cli.group()
def graph() -> None:
    """Manage the history graph."""


@graph.command("rebuild")
@click.option("--from", "source", metavar="PEER", help="Read from the repository a peer holds.")
@common
def graph_rebuild(c: Ctx, source: str | None) -> None:
    """Recreate the graph from the repository's blobs and the key."""
    from chute.graph import rebuild
    from chute.graph_remote import graph_store
    from chute.peers import open_peer_repository

    repo = open_peer_repository(c.settings, source) if source else c.repo()
    remote = graph_store(c.settings, repo.repo_id)
    history, added = rebuild(c.settings.graph_path(repo.repo_id), c.settings.base_url, repo, remote)
    try:
        click.echo(f"rebuilt the graph: {len(added)} snapshots, {history.triple_count()} triples")
    finally:
        history.close()


@cli.group()
def key() -> None:
    """Manage the wrapped copies of the master key."""


@key.command("add")
@click.option(
    "--new-key-file", type=click.Path(dir_okay=False), help="Wrap the key for this key file."
)
@click.option(
    "--new-password-file", type=click.Path(dir_okay=False), help="Wrap the key for this passphrase."
)
@common
def key_add(c: Ctx, new_key_file: str | None, new_password_file: str | None) -> None:
    """Add another way to open the repository (a key file or a passphrase)."""
    from chute.crypto import Secret

    if (new_key_file is None) == (new_password_file is None):
        raise UsageError("give one of --new-key-file or --new-password-file")
    if new_key_file:
        secret = Secret.key_file(Path(new_key_file))
    else:
        secret = Secret.passphrase(Path(str(new_password_file)).read_text().splitlines()[0])
    name = c.repo().add_key(secret)
    click.echo(f"added {name}")


def _register_commands() -> None:
    """Import the command modules under `chute.commands` so they register."""
    import importlib
    import pkgutil

    import chute.commands

    for info in pkgutil.iter_modules(chute.commands.__path__):
        importlib.import_module(f"chute.commands.{info.name}")


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; print one line and exit with the documented code on errors."""
    try:
        cli.main(args=argv, prog_name="chute", standalone_mode=False)
    except ChuteError as exc:
        click.echo(f"chute: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("chute: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"chute: {exc.format_message()}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("chute: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except OSError as exc:  # one no command turned into a ChuteError: still one line
        click.echo(f"chute: {_os_error_text(exc)}", err=True)
        sys.exit(StorageError.exit_code)
    sys.exit(0)


def _os_error_text(exc: OSError) -> str:
    if exc.strerror and exc.filename:
        return f"{exc.strerror}: {os.fsdecode(exc.filename)}"
    return " ".join(str(exc).split()) or type(exc).__name__
