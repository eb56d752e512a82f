"""The benchmark harness: deterministic data sets, and a --quick run end to end.

Nothing here times anything or asserts on speed: the harness prints figures,
these tests only check that it produces every row it promises.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import chute.cli
from chute.bench import datasets, manifest, mutate, primitives
from chute.bench.report import PHASE_METRICS
from chute.bench.results import PHASE_TITLES, PHASES
from chute.bench.runner import count_paths
from chute.bench.tools import Chute, Restic

KiB = 1 << 10

TINY = datasets.Profile(
    "tiny", 64 * KiB, 64 * KiB, 32 * KiB, 16 * KiB, 4 * KiB, 20, "__init__.py",
    mutate.Shape(fraction=0.2, renames=2, deletions=2, additions=2, addition_max=4 * KiB),
)  # fmt: skip


def _build(area: Path) -> datasets.DataSets:
    return datasets.ensure(TINY, area, lambda _: None)


def test_data_sets_are_deterministic(tmp_path: Path) -> None:
    one, two = _build(tmp_path / "a"), _build(tmp_path / "b")
    for name in ("mixed", "mixed-v2"):
        assert one.manifest(name) == two.manifest(name)
    assert manifest.make(one.smallfiles) == manifest.make(two.smallfiles)
    assert one.edits == two.edits
    assert one.info["smallfiles"]["files"] == 20


def test_v2_edits_applied_to_a_copy_give_mixed_v2(tmp_path: Path) -> None:
    sets = _build(tmp_path / "area")
    live = tmp_path / "live"
    shutil.copytree(sets.mixed, live, symlinks=True)
    mutate.apply(live, sets.edits, datasets.SEED)
    assert manifest.differences(sets.manifest("mixed-v2"), manifest.make(live)) == []
    kinds = {e.kind for e in sets.edits}
    assert kinds == {"append", "insert", "rename", "delete", "add"}


def test_cached_data_sets_are_reused(tmp_path: Path) -> None:
    _build(tmp_path)
    marker = tmp_path / "tiny" / "mixed" / "marker"
    marker.write_text("kept")
    _build(tmp_path)
    assert marker.exists()


def test_primitives_are_measured_on_the_samples_given(tmp_path: Path) -> None:
    sets = _build(tmp_path)
    text, noise = sets.mixed / "text", sets.mixed / "random"
    speeds = primitives.measure([text], noise)
    assert set(speeds) == set(primitives.NAMES)
    assert all(speed > 0 for speed in speeds.values())
    line = primitives.describe(speeds)
    assert line.startswith("primitives on one core, MB/s: SHA-256 ")
    assert all(name in line for name in primitives.NAMES.values())
    # A sample is the folders' files in a fixed order, cut at SAMPLE bytes.
    whole = b"".join(p.read_bytes() for p in sorted(noise.rglob("*")) if p.is_file())
    assert primitives._sample([noise]) == whole[: primitives.SAMPLE]


def test_find_output_is_counted_by_path_component() -> None:
    out = "/a/os.py\n/b/renamed-os.py\nuri,m/os.py\n-rw 12 w/x/os.py\nm/os.py  File\n/os.pyc\n"
    assert count_paths(out, "os.py") == 4


def test_the_graph_phase_is_read_from_chute_put_summary_only() -> None:
    chute_tool = Chute("chute")
    assert chute_tool.graph_seconds('{"graph_seconds": 1.25, "files": 3}') == 1.25
    wrong = ('{"files": 3}', '{"graph_seconds": "soon"}', '{"graph_seconds": true}')
    for output in ("", "not json", "[1, 2]", *wrong):
        assert chute_tool.graph_seconds(output) is None, output
    assert Restic().graph_seconds('{"graph_seconds": 1.25}') is None


def test_the_measured_chute_runs_from_compiled_bytecode() -> None:
    script = Chute.locate()
    if script != str(Path(sys.executable).with_name("chute")):
        pytest.skip("no chute script in the running environment")
    compiled = Path(importlib.util.cache_from_source(chute.cli.__file__))
    compiled.unlink(missing_ok=True)
    assert Chute(script).compile()
    assert compiled.is_file()
    assert Chute("/elsewhere/bin/chute").compile()  # another environment's: left alone


@pytest.mark.slow
def test_quick_run_reports_every_phase_and_metric(tmp_path: Path) -> None:
    tools = ["chute"] + [t for t in ("restic", "borg") if shutil.which(t)]
    work = tmp_path / "bench"
    argv = [sys.executable, "-m", "chute.bench", "--quick", "--work-dir", str(work)]
    argv += ["--no-loop", "--no-drop-caches", "--no-install", "--only", ",".join(tools)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=1200)
    assert done.returncode == 0, done.stdout + done.stderr

    data = json.loads((work / "report.json").read_text(encoding="utf-8"))
    expected = [(phase, m.key) for phase, _ in PHASES for m in PHASE_METRICS[phase]]
    assert [(r["phase"], r["metric"]) for r in data["rows"]] == expected
    for row in data["rows"]:
        assert list(row["values"]) == tools
        assert set(row["status"].values()) == {"ok"}
        assert set(row["ratios"]) == (
            {f"chute/{t}" for t in tools[1:]} if row["unit"] in ("s", "bytes") else set()
        )
        if row["metric"] == "verified":
            assert set(row["values"].values()) == {True}
        if row["metric"] == "matches":
            assert set(row["values"].values()) == {data["meta"]["find"]["expected"]}
    values = {(r["phase"], r["metric"]): r["values"] for r in data["rows"]}
    for phase in ("backup-1", "backup-2", "backup-nochange", "smallfiles"):
        wall, graph = values[(phase, "wall")], values[(phase, "graph")]
        assert 0 < graph["chute"] < wall["chute"]  # from chute's own summary
        assert all(graph[t] is None for t in tools[1:])  # the others keep no graph
        without = values[(phase, "wall_without_graph")]
        assert without["chute"] == pytest.approx(wall["chute"] - graph["chute"])
        assert all(without[t] == wall[t] for t in tools[1:])
    ran = sorted((s["phase"], s["tool"]) for s in data["samples"])
    assert ran == sorted((phase, t) for phase, _ in PHASES for t in tools)

    speeds = data["meta"]["machine"]["primitives"]
    assert set(speeds) == set(primitives.NAMES)
    assert all(speed > 0 for speed in speeds.values())

    text = (work / "report.md").read_text(encoding="utf-8")
    assert text in done.stdout
    assert f"- {primitives.describe(speeds)}" in text
    header = "| phase | metric | " + " | ".join(tools)
    assert header in text
    for row in data["rows"]:
        assert f"| {PHASE_TITLES[row['phase']]} | {row['label']} |" in text


FORKS = """
import os, time
MiB = 1 << 20

def resident(size):
    block = bytearray(size)
    block[::4096] = b"x" * len(range(0, size, 4096))  # a byte in every page
    return block

shared = resident(60 * MiB)  # in every copy, never written again: counted once
pids = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        own = resident(30 * MiB)  # each copy's own
        time.sleep(1.0)  # ten samples
        os._exit(0)
    pids.append(pid)
for pid in pids:
    os.waitpid(pid, 0)
"""


def test_peak_memory_counts_every_process_and_what_they_share_once(tmp_path: Path) -> None:
    from chute.bench import measure

    done = measure.run([sys.executable, "-c", FORKS], {}, tmp_path / "forks")
    assert done.exit_code == 0, done.tail()
    mib = 1 << 20
    assert done.max_rss < 110 * mib  # one process: 60 + 30 MiB and the interpreter
    assert done.peak_memory is not None
    # 60 + 2 x 30 MiB and the interpreter; an RSS or PSS sum over-counts or under-counts
    assert 120 * mib < done.peak_memory < 150 * mib, done.peak_memory / mib
