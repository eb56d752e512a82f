"""`python -m chute.bench.graph_scale`: the history graph at scale (`make bench-graph`).

Builds a synthetic history (`chute.bench.synthetic_history`: N files, S
snapshots, ~1% churn by default) in a fresh repository, recording every
snapshot in the graph through the same call a put makes, then prints:

- graph size: triples and bytes on disk after the first snapshot and at
  the end, and what each later snapshot added on average (the graph must
  grow with change, not with the number of snapshots);
- the time to write one snapshot's triples (median and 95th percentile);
- the latency of every example query (`examples/queries/*.rq`, median of
  several runs, bindings taken from the history itself);
- `chute log PATH` for the path with the most versions: the query time in
  process, and the wall time of the whole command as a separate process.

Nothing here asserts: it prints figures. Options: `--files`, `--snapshots`,
`--churn`, `--seed`, `--runs`, `--work-dir` (kept; default a temporary
directory that is removed).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import click

from chute.bench.synthetic_history import Params, SyntheticTree, Written, write_snapshot

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "queries"


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _median_ms(func: Callable[[], Any], runs: int) -> tuple[float, Any]:
    result = func()  # warm-up, and the answer
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, result


def _environment(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUTE_")}
    env.update(
        HOME=str(work / "home"),
        XDG_DATA_HOME=str(work / "home" / "data"),
        XDG_CONFIG_HOME=str(work / "home" / "config"),
        XDG_CACHE_HOME=str(work / "home" / "cache"),
        CHUTE_REPO=str(work / "repo"),
        CHUTE_KEY_FILE=str(work / "key"),
        CHUTE_DOMAIN="example.com",
        CHUTE_NODE="node1",
        CHUTE_BASE_URL="https://example.com",
    )
    return env


def build(work: Path, params: Params, say: Callable[[str], None]) -> dict[str, Any]:
    """Write the synthetic history; return what it cost and where the graph is."""
    from chute.config import load_settings
    from chute.crypto import Secret
    from chute.graph import History
    from chute.repository import Repository
    from chute.store.local import LocalStore

    os.environ.update(_environment(work))
    (work / "key").write_bytes(os.urandom(64))
    store = LocalStore(work / "repo")
    Repository.init(store, Secret.key_file(work / "key"))
    repo = Repository.open(store, Secret.key_file(work / "key"), work / "home" / "cache")
    settings = load_settings({})
    graph_path = settings.graph_path(repo.repo_id)
    tree = SyntheticTree(params)
    history = History(graph_path, settings.base_url)
    written: list[Written] = []
    first_triples = 0
    parent = None
    try:
        for n in range(params.snapshots):
            if n:
                tree.advance()
            tags = ("weekly",) if n % 7 == 6 else ()
            written.append(write_snapshot(repo, history, tree, parent, tags))
            parent = written[-1].name
            if n == 0:
                first_triples = history.triple_count()
            if n % 25 == 24:
                say(f"  {n + 1} snapshots, {history.triple_count():,} triples")
        triples = history.triple_count()
    finally:
        history.close()
    return {
        "graph": graph_path,
        "settings": settings,
        "written": written,
        "triples": triples,
        "first_triples": first_triples,
        "deleted": tree.deleted,
    }


def _at_rest(graph: Path) -> int:
    """Bytes on disk once the store is reopened (RocksDB drops replayed logs then)."""
    import pyoxigraph as ox

    store = ox.Store(str(graph))
    store.flush()
    del store
    return _du(graph)


def _bindings(history: Any, deleted: list[str]) -> dict[str, dict[str, str]]:
    """Pick, from the history itself, values for the variables of each example query."""
    hot = history.select(
        "SELECT ?path (COUNT(?v) AS ?n) WHERE { ?v a chute:File ; chute:path ?path } "
        "GROUP BY ?path ORDER BY DESC(?n) ?path LIMIT 1"
    )[0]["path"]
    snaps = [
        r["s"]
        for r in history.select(
            "SELECT ?s WHERE { ?s a chute:Snapshot ; chute:timestamp ?t } ORDER BY ?t"
        )
    ]
    mid = len(snaps) // 2
    times = [s.rstrip("/").rsplit("/", 1)[1] for s in snaps]

    def iso(ts: str) -> str:
        return f"{ts[0:4]}-{ts[4:6]}-{ts[6:8]}T{ts[9:11]}:{ts[11:13]}:{ts[13:15]}Z"

    sha = history.select(
        "SELECT ?h WHERE { ?v chute:path ?p ; nfo:hasHash/nfo:hashValue ?h } LIMIT 1",
        {"p": hot},
    )[0]["h"]
    later = min(mid + 30, len(snaps) - 1)
    return {
        "path-log.rq": {"path": hot},
        "versions-of-path.rq": {"path": hot},
        "when-deleted.rq": {"path": deleted[len(deleted) // 2] if deleted else hot},
        "restore-as-of.rq": {"path": hot, "at": iso(times[mid])},
        "changed-between.rq": {"old": f"<{snaps[mid - 1]}>", "new": f"<{snaps[mid]}>"},
        "changed-between.rq (30 snapshots apart)": {
            "old": f"<{snaps[mid]}>",
            "new": f"<{snaps[later]}>",
        },
        "find-paths.rq": {"pattern": r"/f0050[0-9]{2}\.[a-z]+$"},
        "largest-new-files.rq": {"from": iso(times[mid]), "to": iso(times[later])},
        "snapshots-with-hash.rq": {"sha256": sha},
        "duplicate-files.rq": {"snapshot": f"<{snaps[-1]}>"},
        "files-with-xattr.rq": {"name": "user.origin"},
        "snapshots-by-tag.rq": {"tag": "weekly"},
        "snapshots-by-meta.rq": {"key": "generator", "value": "chute.bench.synthetic_history"},
    }


def measure_queries(
    graph: Path, base: str, runs: int, deleted: list[str]
) -> tuple[list[tuple[str, int, float]], str]:
    """Return (query, rows, median ms) for every example query, and the hot path."""
    from chute.graph import History

    history = History(graph, base)
    results = []
    try:
        bindings = _bindings(history, deleted)
        names = sorted({p.name for p in EXAMPLES.glob("*.rq")} | set(bindings))
        for name in names:
            file = EXAMPLES / name.split(" ")[0]
            if not file.exists():
                continue
            text = file.read_text(encoding="utf-8")
            binds = bindings.get(name, {})
            ms, rows = _median_ms(partial(history.select, text, binds), runs)
            results.append((name, len(rows), ms))
    finally:
        history.close()
    return results, bindings["path-log.rq"]["path"]


def measure_log(work: Path, graph: Path, base: str, path: str, runs: int) -> dict[str, Any]:
    """Time `chute log PATH`: the query in process, and the command as a process."""
    from chute import timeline
    from chute.graph import History

    history = History(graph, base)
    try:
        query_ms, versions = _median_ms(lambda: timeline.log(history, path), runs)
    finally:
        history.close()
    command = [str(Path(sys.executable).with_name("chute")), "log", path]
    env = _environment(work)
    walls = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        walls.append(time.perf_counter() - started)
        if done.returncode:
            raise click.ClickException(f"chute log failed: {done.stderr.strip()}")
    help_walls = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([command[0], "--help"], env=env, capture_output=True, check=False)
        help_walls.append(time.perf_counter() - started)
    return {
        "path": path,
        "versions": len(versions),
        "query_ms": query_ms,
        "process_s": statistics.median(walls[1:]),
        "help_s": statistics.median(help_walls),
    }


def report(params: Params, built: dict[str, Any], at_rest: int, queries: Any, log: Any) -> str:
    """Return the figures as a plain text report."""
    written: list[Written] = built["written"]
    later = [w.seconds for w in written[1:]] or [0.0]
    grown = [w.triples for w in written[1:]] or [0]
    per_snapshot = (built["triples"] - built["first_triples"]) / max(1, len(written) - 1)
    lines = [
        f"chute graph at scale: {params.files:,} files, {params.snapshots} snapshots, "
        f"{params.churn:.1%} churn, seed {params.seed}",
        "",
        f"graph: {built['triples']:,} triples, {at_rest / 1e6:.1f} MB on disk "
        f"({at_rest / max(1, built['triples']):.0f} B/triple)",
        f"  first snapshot: {built['first_triples']:,} triples; each later snapshot: "
        f"{per_snapshot:,.0f} triples on average (written: median {statistics.median(grown):,.0f})",
        f"write one snapshot's triples: first {written[0].seconds * 1000:.0f} ms; later "
        f"median {statistics.median(later) * 1000:.0f} ms, "
        f"p95 {sorted(later)[int(0.95 * (len(later) - 1))] * 1000:.0f} ms",
        "",
        f"chute log {log['path']} ({log['versions']} versions):",
        f"  query in process: {log['query_ms']:.1f} ms; whole command: "
        f"{log['process_s'] * 1000:.0f} ms (chute --help: {log['help_s'] * 1000:.0f} ms)",
        "",
        "example queries (median of runs, warm):",
    ]
    width = max(len(name) for name, _, _ in queries)
    for name, rows, ms in queries:
        lines.append(f"  {name.ljust(width)}  {ms:9.1f} ms  {rows:6d} rows")
    return "\n".join(lines)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--files", default=10_000, show_default=True, help="Files in the tree.")
@click.option("--snapshots", default=100, show_default=True, help="Snapshots to take.")
@click.option("--churn", default=0.01, show_default=True, help="Share of files changed per day.")
@click.option("--seed", default=1, show_default=True, help="Seed of the generator.")
@click.option("--runs", default=5, show_default=True, help="Timed runs per measurement.")
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep everything here (default: a temporary directory, removed).",
)
def main(
    files: int, snapshots: int, churn: float, seed: int, runs: int, work_dir: Path | None
) -> None:
    """Build a synthetic history and print the graph's size and query latencies."""
    params = Params(files=files, snapshots=snapshots, churn=churn, seed=seed)
    work = work_dir or Path(tempfile.mkdtemp(prefix="chute-graph-bench-"))
    if work_dir is not None:
        if work.exists() and any(work.iterdir()):
            raise click.UsageError(f"{work} is not empty")
        work.mkdir(parents=True, exist_ok=True)
    try:
        click.echo(f"building {snapshots} snapshots of {files:,} files in {work} ...", err=True)
        built = build(work, params, lambda text: click.echo(text, err=True))
        at_rest = _at_rest(built["graph"])
        base = built["settings"].base_url
        queries, hot = measure_queries(built["graph"], base, runs, built["deleted"])
        log = measure_log(work, built["graph"], base, hot, runs)
        click.echo(report(params, built, at_rest, queries, log))
    finally:
        if work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
