"""Run every tool through every phase, interleaved, on the same data.

Each repetition gets a freshly made scratch file system holding a live copy
of `mixed`, one folder per tool and the restored trees. Within a phase the
tools run one after the other (their order rotates between repetitions),
and before each measured command dirty pages are written back and, when
this process may, the page cache is dropped, so no tool reads what the
previous one left in memory. Between the first and second backup the live
copy is edited in place into `mixed-v2`.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chute.bench import areas, datasets, manifest, measure, mutate, primitives, report, tools
from chute.bench.results import PHASES, Sample
from chute.bench.tools import Command, Place, Tool

Say = Callable[[str], None]


@dataclass(frozen=True)
class Options:
    """What `python -m chute.bench` was asked to do."""

    work_dir: Path
    profile: datasets.Profile
    tools: tuple[str, ...]
    repeat: int = 1
    loop: bool = True
    drop_caches: bool = True
    install: bool = True


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(opts: Options, say: Say = _say) -> int:
    """Run the benchmark, print the table, write the reports; 0 if every step succeeded."""
    work = opts.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    tools.install_missing(list(opts.tools), opts.install, say)
    chosen = tools.available(list(opts.tools), say)
    if not chosen:
        say("no tool to run")
        return 2
    drop = opts.drop_caches and areas.can_drop_caches()
    if opts.drop_caches and not drop:
        say("WARNING: cannot drop the page cache (needs root): figures are warm-cache")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    logs = work / "logs" / stamp
    load_before = os.getloadavg()[0]
    samples: list[Sample] = []
    with areas.data_area(work / "data", datasets.DATA_IMAGE, opts.loop, say) as data:
        sets = datasets.ensure(opts.profile, data.path, say)
        mixed = sets.mixed
        speeds = primitives.measure([mixed / "text", mixed / "stdlib"], mixed / "random")
        say(primitives.describe(speeds))
        scratch_kind = ""
        for rep in range(opts.repeat):
            order = chosen[rep % len(chosen) :] + chosen[: rep % len(chosen)]
            size = opts.profile.scratch_image
            with areas.scratch_area(work / "scratch", size, opts.loop, say) as scratch:
                scratch_kind = scratch.describe()
                bench = _Repetition(rep, order, sets, scratch.path, logs, drop, opts, say)
                samples.extend(bench.run())
        meta = _meta(opts, chosen, sets, data.describe(), scratch_kind, drop, stamp, logs)
    # Other work on the machine skews the figures; the load average shows it.
    meta["machine"]["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    meta["machine"]["primitives"] = speeds
    rows = report.summarize(samples, [t.name for t in chosen])
    text = report.markdown(meta, rows, samples)
    print(text)
    written = report.write(work, stamp, text, report.as_json(meta, rows, samples))
    say("written: " + ", ".join(str(p) for p in written))
    return 0 if all(s.ok for s in samples) else 1


class _Repetition:
    """One pass of every phase for every tool, on a fresh scratch file system."""

    def __init__(
        self,
        rep: int,
        order: list[Tool],
        sets: datasets.DataSets,
        scratch: Path,
        logs: Path,
        drop: bool,
        opts: Options,
        say: Say,
    ) -> None:
        self.rep = rep
        self.order = order
        self.sets = sets
        self.scratch = scratch
        self.logs = logs / f"rep-{rep + 1}"
        self.drop = drop
        self.opts = opts
        self.say = say
        self.source = scratch / "src" / "mixed"
        self.places = {t.name: Place(scratch / t.name) for t in order}
        self.failed: set[str] = set()
        self.samples: list[Sample] = []

    def run(self) -> list[Sample]:
        self.say(
            f"repetition {self.rep + 1}/{self.opts.repeat}: "
            f"order {', '.join(t.name for t in self.order)}"
        )
        shutil.copytree(self.sets.mixed, self.source, symlinks=True)
        for place in self.places.values():
            place.prepare()
        self._phase("init", lambda t: self._measured("init", t, t.init(self._place(t))))
        self._phase("backup-1", lambda t: self._backup("backup-1", t, "b1"))
        mutate.apply(self.source, self.sets.edits, datasets.SEED)
        self._phase("backup-2", lambda t: self._backup("backup-2", t, "b2"))
        self._phase("backup-nochange", lambda t: self._backup("backup-nochange", t, "b3"))
        self._phase("restore", self._restore)
        self._phase("find", self._find)
        self._smallfiles()
        return self.samples

    def _place(self, tool: Tool) -> Place:
        return self.places[tool.name]

    def _phase(self, phase: str, action: Callable[[Tool], Sample]) -> None:
        """Run `action` for each tool still going; a failure stops that tool's chain."""
        for tool in self.order:
            if tool.name in self.failed:
                sample = Sample(
                    self.rep,
                    phase,
                    tool.name,
                    ok=False,
                    skipped=True,
                    note="skipped: an earlier phase failed",
                )
            else:
                sample = action(tool)
                if not sample.ok:
                    self.failed.add(tool.name)
            self._keep(sample)

    def _keep(self, sample: Sample) -> None:
        self.samples.append(sample)
        if sample.skipped:
            return
        line = f"  {sample.phase:<16} {sample.tool:<7}"
        if sample.wall is not None:
            line += f" {sample.wall:8.2f} s wall {sample.cpu or 0:8.2f} s CPU"
            line += f" {report.size(sample.max_rss)} RSS {report.size(sample.peak_memory)} all"
        if sample.added_bytes:
            line += f"  +{report.size(sample.added_bytes)}"
        self.say(line + ("" if sample.ok else f"  FAILED: {sample.note}"))

    def _log(self, step: str, tool: Tool) -> Path:
        """Where a measured step's output goes (`measure.run` adds .out and .err)."""
        return self.logs / f"{step}.{tool.name}"

    def _output(self, step: str, tool: Tool) -> str:
        """Return what a measured step printed."""
        log = self._log(step, tool)
        return log.with_name(log.name + ".out").read_text(encoding="utf-8", errors="replace")

    def _measured(
        self,
        phase: str,
        tool: Tool,
        command: Command,
        place: Place | None = None,
        step: str = "",
    ) -> Sample:
        """Run `command` for `phase` (logged as `step`, default the phase) and sample it."""
        place = place or self._place(tool)
        before = areas.tree_bytes(place.repo)
        areas.settle(self.drop)
        log = self._log(step or phase, tool)
        done = measure.run(command.argv, tool.env(place), log, command.cwd)
        after = areas.tree_bytes(place.repo)
        ok = done.exit_code == 0
        return Sample(
            rep=self.rep,
            phase=phase,
            tool=tool.name,
            ok=ok,
            wall=done.wall,
            cpu=done.cpu,
            user=done.user,
            system=done.system,
            max_rss=done.max_rss,
            peak_memory=done.peak_memory,
            repo_bytes=after,
            added_bytes=after - before,
            state_bytes=areas.tree_bytes(place.home),
            note="" if ok else f"exit {done.exit_code}: {done.tail()} (log {done.stderr})",
        )

    def _backup(self, phase: str, tool: Tool, snapshot: str) -> Sample:
        place = self._place(tool)
        return self._backed_up(phase, tool, tool.backup(place, self.source, snapshot), place)

    def _backed_up(self, phase: str, tool: Tool, command: Command, place: Place) -> Sample:
        """Run a backup command; note how much of it was chute's graph phase."""
        sample = self._measured(phase, tool, command, place)
        if not sample.ok:
            return sample
        graph = tool.graph_seconds(self._output(phase, tool))
        return dataclasses.replace(sample, graph=graph)

    def _restore(self, tool: Tool) -> Sample:
        target = self.scratch / "restore" / tool.name
        target.mkdir(parents=True)
        command = tool.restore(self._place(tool), target, "b3")
        sample = self._measured("restore", tool, command)
        if not sample.ok:
            return sample
        root = tool.restored_root(target, self.source)
        actual = manifest.make(root) if root.is_dir() else {}
        wrong = manifest.differences(self.sets.manifest("mixed-v2"), actual)
        if wrong:
            return dataclasses.replace(
                sample, ok=False, verified=False, note="restore differs: " + "; ".join(wrong)
            )
        return dataclasses.replace(sample, verified=True)

    def _find(self, tool: Tool) -> Sample:
        name = self.opts.profile.find_name
        sample = self._measured("find", tool, tool.find(self._place(tool), name))
        if not sample.ok:
            return sample
        out = self._output("find", tool)
        found = count_paths(out, name)
        expected = expected_matches(self.sets, name)
        wrong = found != expected if tool.find_per_snapshot else found == 0
        note = f"found {found} paths, expected {expected}" if wrong else ""
        return dataclasses.replace(sample, matches=found, note=note)

    def _smallfiles(self) -> None:
        places = {t.name: Place(self.scratch / f"{t.name}-small") for t in self.order}
        ready: set[str] = set()
        for tool in self.order:
            place = places[tool.name]
            place.prepare()
            init = self._measured("smallfiles", tool, tool.init(place), place, "smallfiles-init")
            if init.ok:
                ready.add(tool.name)
            else:
                self._keep(dataclasses.replace(init, note="init " + init.note))
        for tool in self.order:
            if tool.name in ready:
                command = tool.backup(places[tool.name], self.sets.smallfiles, "s1")
                self._keep(self._backed_up("smallfiles", tool, command, places[tool.name]))


def count_paths(output: str, name: str) -> int:
    """Count the lines of `output` that name a path ending in the file `name`."""
    pattern = re.compile("/" + re.escape(name) + r"(?=$|[\s,\"])", re.MULTILINE)
    return sum(1 for line in output.splitlines() if pattern.search(line))


def expected_matches(sets: datasets.DataSets, name: str) -> int:
    """Count the files called `name` in the three snapshots (mixed, then v2 twice)."""

    def count(m: manifest.Manifest) -> int:
        return sum(1 for rel, v in m.items() if rel.rpartition("/")[2] == name and v[0] == "f")

    return count(sets.manifest("mixed")) + 2 * count(sets.manifest("mixed-v2"))


def _meta(
    opts: Options,
    chosen: list[Tool],
    sets: datasets.DataSets,
    data_kind: str,
    scratch_kind: str,
    drop: bool,
    stamp: str,
    logs: Path,
) -> dict[str, Any]:
    return {
        "date": stamp,
        "profile": opts.profile.name,
        "repeat": opts.repeat,
        "machine": _machine(),
        "data_fs": data_kind,
        "scratch_fs": scratch_kind + " (made afresh for each repetition)",
        "page_cache": (
            "dropped before every measured command"
            if drop
            else "not dropped (warm cache); dirty pages written back before each command"
        ),
        "tools": {t.name: {"version": t.version(), "settings": t.settings} for t in chosen},
        "datasets": sets.info,
        "find": {
            "name": opts.profile.find_name,
            "expected": expected_matches(sets, opts.profile.find_name),
        },
        "logs": str(logs),
        "phases": dict(PHASES),
    }


def _machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            model = next(
                (ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), ""
            )
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "memory_bytes": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
