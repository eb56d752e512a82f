"""The benchmark's table: absolute figures per tool and chute's ratios to the others.

With several repetitions each figure is the median of the successful runs.
The same rows are written as Markdown (also printed) and as JSON.
"""

from __future__ import annotations

import json
import shutil
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from chute.bench import primitives
from chute.bench.results import PHASE_TITLES, PHASES, TOOL_ORDER, Sample


@dataclass(frozen=True)
class Metric:
    """A figure the table shows: a `Sample` field, its label and its unit."""

    key: str
    label: str
    unit: str  # "s", "bytes", "count" or "bool"


WALL = Metric("wall", "wall time", "s")
CPU = Metric("cpu", "CPU time (user+sys)", "s")
RSS = Metric("max_rss", "peak RSS", "bytes")
MEMORY = Metric("peak_memory", "peak memory, all processes", "bytes")
ADDED = Metric("added_bytes", "bytes added", "bytes")
REPO = Metric("repo_bytes", "repository size", "bytes")
STATE = Metric("state_bytes", "local state (caches, graph)", "bytes")
VERIFIED = Metric("verified", "verified by hashing", "bool")
MATCHES = Metric("matches", "paths found", "count")
# What a backup costs beside restic and borg, which keep no such index: chute's
# wall time less the part it spent recording the snapshot in its history graph.
GRAPH = Metric("graph", "of which chute's history graph", "s")
WITHOUT_GRAPH = Metric("wall_without_graph", "wall time without chute's graph", "s")

PHASE_METRICS: dict[str, tuple[Metric, ...]] = {
    "init": (WALL, CPU, RSS, MEMORY, REPO),
    "backup-1": (WALL, GRAPH, WITHOUT_GRAPH, CPU, RSS, MEMORY, ADDED, STATE),
    "backup-2": (WALL, GRAPH, WITHOUT_GRAPH, CPU, RSS, MEMORY, ADDED),
    "backup-nochange": (WALL, GRAPH, WITHOUT_GRAPH, CPU, RSS, MEMORY, ADDED, REPO, STATE),
    "restore": (WALL, CPU, RSS, MEMORY, VERIFIED),
    "find": (WALL, CPU, RSS, MEMORY, MATCHES),
    "smallfiles": (WALL, GRAPH, WITHOUT_GRAPH, CPU, RSS, MEMORY, REPO, STATE),
}


@dataclass(frozen=True)
class Row:
    """One line of the table: a phase's metric for every tool, and chute's ratios."""

    phase: str
    metric: str
    label: str
    unit: str
    values: dict[str, float | bool | None]
    status: dict[str, str]  # "ok", "failed" or "skipped"
    ratios: dict[str, float | None]


def summarize(samples: list[Sample], tool_names: list[str]) -> list[Row]:
    """Reduce the samples to one row per phase and metric."""
    names = [t for t in TOOL_ORDER if t in tool_names]
    rows: list[Row] = []
    for phase, _ in PHASES:
        for metric in PHASE_METRICS[phase]:
            values: dict[str, float | bool | None] = {}
            status: dict[str, str] = {}
            for name in names:
                runs = [s for s in samples if s.phase == phase and s.tool == name]
                status[name] = _status(runs)
                values[name] = _reduce(metric, runs)
            rows.append(
                Row(
                    phase,
                    metric.key,
                    metric.label,
                    metric.unit,
                    values,
                    status,
                    _ratios(metric, values),
                )
            )
    return rows


def _status(runs: list[Sample]) -> str:
    if runs and all(s.ok for s in runs):
        return "ok"
    if runs and all(s.skipped for s in runs):
        return "skipped"
    return "failed"


def _reduce(metric: Metric, runs: list[Sample]) -> float | bool | None:
    if metric.unit == "bool":
        flags = [s.verified for s in runs if s.verified is not None]
        return all(flags) if flags else None
    numbers = [getattr(s, metric.key) for s in runs if s.ok]
    numbers = [n for n in numbers if n is not None]
    return statistics.median(numbers) if numbers else None


def _number(value: float | bool | None) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    return float(value)


def _ratios(metric: Metric, values: dict[str, float | bool | None]) -> dict[str, float | None]:
    if "chute" not in values or metric.unit not in ("s", "bytes"):
        return {}
    mine = _number(values["chute"])
    out: dict[str, float | None] = {}
    for other in (n for n in values if n != "chute"):
        theirs = _number(values[other])
        out[f"chute/{other}"] = mine / theirs if mine is not None and theirs else None
    return out


def size(n: float | None) -> str:
    """Write a byte count with a binary unit (B, KiB, MiB, GiB)."""
    if n is None:
        return "—"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= scale:
            value = n / scale
            return f"{value:.2f} {unit}" if value < 10 else f"{value:.1f} {unit}"
    return f"{int(n)} B"


def _cell(row: Row, name: str) -> str:
    value = row.values[name]
    if row.status[name] != "ok" and (value is None or row.unit == "bool"):
        return row.status[name]
    if value is None:
        return "—"
    if row.unit == "s":
        return f"{value:.2f} s"
    if row.unit == "bytes":
        return size(float(value))
    if row.unit == "bool":
        return "yes" if value else "NO"
    return str(int(value))


def _ratio_cell(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.2f}×"


def table(rows: list[Row]) -> str:
    """Render the rows as a Markdown table."""
    names = list(rows[0].values) if rows else []
    ratio_keys = list(rows[0].ratios) if rows else []
    for row in rows:
        ratio_keys += [k for k in row.ratios if k not in ratio_keys]
    head = ["phase", "metric", *names, *ratio_keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for row in rows:
        cells = [PHASE_TITLES[row.phase], row.label]
        cells += [_cell(row, n) for n in names]
        cells += [_ratio_cell(row.ratios.get(k)) if row.ratios else "" for k in ratio_keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(meta: dict[str, Any], rows: list[Row], samples: list[Sample]) -> str:
    """Render the whole report: context, the table, notes and failures."""
    sets = meta["datasets"]
    machine = meta["machine"]
    before, after = machine["load_average"]
    mixed, v2, small = sets["mixed"], sets["mixed-v2"], sets["smallfiles"]
    edits = ", ".join(f"{n} {kind}" for kind, n in v2["edits"].items())
    lines = [
        f"# chute benchmark, {meta['date']}",
        "",
        f"- machine: {machine['cores']} cores ({machine['cpu']}), "
        f"{size(machine['memory_bytes'])} memory, Linux {machine['kernel']}; "
        f"load average (1 min) {before} before the run, {after} after",
        f"- {primitives.describe(machine.get('primitives', {}))}",
        f"- data sets ({meta['profile']}): mixed {size(mixed['bytes'])} in {mixed['files']} files "
        f"({size(mixed['stdlib_bytes'])} from {len(sets['stdlib_trees'])} standard libraries, "
        f"{mixed['random_files']} random files, {mixed['text_files']} text files); "
        f"mixed-v2: {edits} ({v2['modified_fraction']:.1%} of files modified); "
        f"smallfiles {size(small['bytes'])} in {small['files']} files",
        f"- data sets on {meta['data_fs']}; repositories on {meta['scratch_fs']}",
        f"- page cache: {meta['page_cache']}",
        f"- find: files named `{meta['find']['name']}` in all three snapshots of mixed "
        f"(expected {meta['find']['expected']} paths)",
    ]
    for name, tool in meta["tools"].items():
        lines.append(f"- {name}: {tool['version']}; {tool['settings']}")
    repeat = meta["repeat"]
    lines.append(
        f"- figures: {'median of ' + str(repeat) + ' runs' if repeat > 1 else 'one run'}"
        "; ratios below 1 mean chute used less"
    )
    lines += ["", table(rows), ""]
    problems = [s for s in samples if s.note and not s.skipped]
    if problems:
        lines += ["Problems:", ""]
        lines += [
            f"- run {s.rep + 1}, {PHASE_TITLES[s.phase]}, {s.tool}: {s.note}" for s in problems
        ]
        lines.append("")
    lines.append(f"Logs: {meta['logs']}")
    return "\n".join(lines) + "\n"


def as_json(meta: dict[str, Any], rows: list[Row], samples: list[Sample]) -> dict[str, Any]:
    """Return the report as JSON-ready data: context, rows and every sample."""
    return {
        "meta": meta,
        "rows": [asdict(r) for r in rows],
        "samples": [asdict(s) for s in samples],
    }


def write(work: Path, stamp: str, text: str, data: dict[str, Any]) -> list[Path]:
    """Write report.md and report.json in `work`, with dated copies under reports/."""
    dated = work / "reports"
    dated.mkdir(parents=True, exist_ok=True)
    md, js = work / "report.md", work / "report.json"
    md.write_text(text, encoding="utf-8")
    js.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    shutil.copyfile(md, dated / f"{stamp}.md")
    shutil.copyfile(js, dated / f"{stamp}.json")
    return [md, js]
