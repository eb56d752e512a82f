"""The benchmark's data sets, built deterministically and cached between runs.

- `mixed`: copies of the Python standard-library trees found on this machine
  (without site-packages, dist-packages, __pycache__ and the static-library
  `config-*` folders), seeded incompressible files from 1 KiB up to the
  profile's largest, and compressible text (logs, CSV, prose);
- `mixed-v2`: `mixed` with the edits of `chute.bench.mutate` applied
  (unchanged files are hard links into `mixed`);
- `smallfiles`: many files of 100 B to 8 KiB in nested folders.

A data set is rebuilt only when its specification (profile, seed, generator
version, the standard-library trees found) changes; `done.json`, written
last, records the specification and the figures the report shows.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import stat
import sysconfig
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chute.bench import manifest, mutate
from chute.bench.content import TEXT_KINDS, TextMaker, log_uniform, random_blocks, rng_for
from chute.bench.manifest import Manifest

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

SEED = "chute-bench-1"
GENERATOR_VERSION = 1
EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z: fixed times for generated files

SKIPPED_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__"})


@dataclass(frozen=True)
class Profile:
    """The sizes of the data sets and of the scratch file system they need."""

    name: str
    stdlib_bytes: int
    random_bytes: int
    random_max: int
    text_bytes: int
    text_max: int
    smallfiles: int
    find_name: str = "os.py"
    shape: mutate.Shape = field(default_factory=mutate.Shape)
    scratch_image: int = 24 * GiB


FULL = Profile("full", 448 * MiB, 448 * MiB, 200 * MiB, 128 * MiB, 8 * MiB, 50_000)
QUICK = Profile(
    "quick",
    2 * MiB,
    3 * MiB,
    1 * MiB,
    1 * MiB,
    256 * KiB,
    300,
    "__init__.py",
    mutate.Shape(renames=3, deletions=3, additions=4, addition_max=64 * KiB),
    scratch_image=2 * GiB,
)
DATA_IMAGE = 8 * GiB  # one image holds every profile's data sets


@dataclass(frozen=True)
class DataSets:
    """Paths of the built data sets, the v2 edits, and figures for the report."""

    root: Path
    edits: list[mutate.Edit]
    info: dict[str, Any]

    @property
    def mixed(self) -> Path:
        return self.root / "mixed"

    @property
    def smallfiles(self) -> Path:
        return self.root / "smallfiles"

    def manifest(self, name: str) -> Manifest:
        """Load the manifest of data set `name` (`mixed` or `mixed-v2`)."""
        return manifest.load(self.root / f"{name}.manifest.json")


def stdlib_trees() -> list[Path]:
    """Find the standard-library folders of the Python installations on this machine."""
    home = pwd.getpwuid(os.getuid()).pw_dir
    patterns = (
        "/usr/lib/python[23].*",
        "/usr/local/lib/python[23].*",
        "/opt/*/lib/python[23].*",
        f"{home}/.pyenv/versions/*/lib/python[23].*",
    )
    candidates = [Path(p) for pattern in patterns for p in glob.glob(pattern)]
    candidates.append(Path(sysconfig.get_paths()["stdlib"]))
    found = {os.path.realpath(c) for c in candidates if (c / "os.py").is_file()}
    return sorted(Path(p) for p in found)


def ensure(profile: Profile, area: Path, say: Callable[[str], None]) -> DataSets:
    """Return the data sets of `profile` under `area`, building them if needed."""
    root = area / profile.name
    trees = stdlib_trees()
    spec = {
        "generator": GENERATOR_VERSION,
        "seed": SEED,
        "profile": asdict(profile),
        "stdlib": [str(t) for t in trees],
    }
    done = root / "done.json"
    if done.exists():
        recorded = json.loads(done.read_text(encoding="utf-8"))
        if recorded.get("spec") == spec:
            say(f"data sets: cached in {root}")
            return DataSets(root, mutate.load(root / "v2-edits.json"), recorded["info"])
    say(f"data sets: building {profile.name} in {root} (cached for later runs)")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    started = time.monotonic()
    info = _build(root, profile, trees, say)
    say(f"data sets: built in {time.monotonic() - started:.0f} s")
    done.write_text(json.dumps({"spec": spec, "info": info}, indent=1), encoding="utf-8")
    return DataSets(root, mutate.load(root / "v2-edits.json"), info)


def _build(root: Path, profile: Profile, trees: list[Path], say: Callable[[str], None]) -> Any:
    mixed = root / "mixed"
    text = TextMaker(SEED)
    say("  mixed: standard-library trees")
    used_trees, stdlib_bytes = _copy_stdlib(trees, mixed / "stdlib", profile.stdlib_bytes)
    say("  mixed: incompressible files")
    # A machine with fewer standard libraries gets more random data instead.
    random_budget = profile.random_bytes + profile.stdlib_bytes - stdlib_bytes
    n_random = _make_random(mixed / "random", random_budget, profile.random_max)
    say("  mixed: text")
    n_text = _make_text(mixed / "text", profile.text_bytes, profile.text_max, text)
    m1 = manifest.make(mixed)
    manifest.save(m1, root / "mixed.manifest.json")
    say("  mixed-v2: edits")
    edits = mutate.plan(m1, SEED, profile.shape)
    mutate.save(edits, root / "v2-edits.json")
    _link_farm(mixed, root / "mixed-v2")
    mutate.apply(root / "mixed-v2", edits, SEED)
    m2 = manifest.make(root / "mixed-v2")
    manifest.save(m2, root / "mixed-v2.manifest.json")
    say(f"  smallfiles: {profile.smallfiles} files")
    small_bytes = _make_smallfiles(root / "smallfiles", profile.smallfiles, text)
    files1, bytes1 = manifest.files_and_bytes(m1)
    files2, bytes2 = manifest.files_and_bytes(m2)
    changes = mutate.counts(edits, m1)
    return {
        "stdlib_trees": [str(t) for t in used_trees],
        "mixed": {
            "files": files1,
            "bytes": bytes1,
            "stdlib_bytes": stdlib_bytes,
            "random_files": n_random,
            "text_files": n_text,
        },
        "mixed-v2": {
            "files": files2,
            "bytes": bytes2,
            "edits": changes.changes,
            "modified_fraction": round(changes.modified_fraction, 4),
        },
        "smallfiles": {"files": profile.smallfiles, "bytes": small_bytes},
    }


def _stdlib_walk(tree: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Yield (relative path, lstat) of a standard-library tree, sorted, pre-order."""
    stack = [""]
    while stack:
        rel = stack.pop()
        names = sorted(os.listdir(tree / rel) if rel else os.listdir(tree), reverse=True)
        for name in names:
            if name in SKIPPED_DIRS or (not rel and name.partition("-")[0] == "config"):
                continue
            child = f"{rel}/{name}" if rel else name
            st = os.lstat(tree / child)
            if stat.S_ISDIR(st.st_mode):
                stack.append(child)
            else:
                yield child, st


def _copy_stdlib(trees: list[Path], dest: Path, budget: int) -> tuple[list[Path], int]:
    used = 0
    used_trees: list[Path] = []
    for i, tree in enumerate(trees):
        used_trees.append(tree)
        top = dest / f"{i:02d}-{tree.name}"
        for rel, st in sorted(_stdlib_walk(tree)):
            src, dst = tree / rel, top / rel
            if stat.S_ISLNK(st.st_mode):
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(os.readlink(src), dst)
            elif stat.S_ISREG(st.st_mode):
                if used + st.st_size > budget:
                    return used_trees, used
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    shutil.copy2(src, dst)
                except PermissionError:
                    continue
                used += st.st_size
    return used_trees, used


def _write_random(path: Path, size: int, stamp: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        for block in random_blocks(size, SEED, path.name):
            handle.write(block)
    os.utime(path, (stamp, stamp))


def _make_random(dest: Path, budget: int, largest: int) -> int:
    rng = rng_for(SEED, "random-sizes")
    sizes = [min(largest, budget)]
    total = sizes[0]
    while budget - total >= KiB:
        size = min(log_uniform(rng, KiB, min(64 * MiB, largest)), budget - total)
        sizes.append(size)
        total += size
    for i, size in enumerate(sizes):
        _write_random(dest / f"d{i // 16:02d}" / f"r-{i:04d}.bin", size, EPOCH + i)
    return len(sizes)


def _make_text(dest: Path, budget: int, largest: int, text: TextMaker) -> int:
    rng = rng_for(SEED, "text-sizes")
    total = 0
    count = 0
    while budget - total >= KiB:
        size = min(log_uniform(rng, KiB, largest), budget - total)
        kind = TEXT_KINDS[rng.randrange(len(TEXT_KINDS))]
        path = dest / f"d{count // 32:02d}" / f"t-{count:04d}.{kind}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.text(rng_for(SEED, "text", count), size, kind))
        os.utime(path, (EPOCH + count, EPOCH + count))
        total += size
        count += 1
    return count


def _link_farm(src: Path, dst: Path) -> None:
    """Mirror `src` at `dst` with hard links for files (edits replace, never write in place)."""
    dst.mkdir()
    for rel, st in manifest.walk(src):
        if stat.S_ISDIR(st.st_mode):
            (dst / rel).mkdir()
            os.chmod(dst / rel, stat.S_IMODE(st.st_mode))
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src / rel), dst / rel)
        else:
            os.link(src / rel, dst / rel)


def _make_smallfiles(dest: Path, count: int, text: TextMaker) -> int:
    rng = rng_for(SEED, "smallfiles")
    total = 0
    for i in range(count):
        leaf = i // 50
        folder = dest / f"d{leaf // 100:02d}" / f"e{leaf // 10 % 10}" / f"f{leaf % 10}"
        if i % 50 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        size = rng.randint(100, 8 * KiB)
        kind = TEXT_KINDS[i % len(TEXT_KINDS)]
        data = text.text(rng, size, kind) if i % 2 else rng.randbytes(size)
        path = folder / f"s-{i:05d}.{kind if i % 2 else 'bin'}"
        path.write_bytes(data)
        os.utime(path, (EPOCH + i, EPOCH + i))
        total += size
    return total
