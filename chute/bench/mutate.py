"""The change from `mixed` to `mixed-v2`: a list of edits, planned once, applied anywhere.

A plan is made from the manifest of `mixed` with a seeded generator: a
fraction of the files get bytes appended or inserted in the middle (the
largest file always gets an insertion, the case content-defined chunking is
for), a few files are renamed, deleted or added, and one small directory is
renamed. The same plan applied to any copy of `mixed` gives the same bytes,
so the benchmark edits its live copy in place between two backups.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from chute.bench.content import TextMaker, log_uniform, random_bytes, rng_for
from chute.bench.manifest import Manifest

# fmt: off
TEXT_SUFFIXES = frozenset((
    ".py", ".pyi", ".txt", ".log", ".csv", ".md", ".rst", ".cfg", ".ini", ".toml", ".json",
    ".html", ".xml", ".c", ".h", ".sh", ".bat", ".ps1", ".tcl", ".css", ".js", ".pem", ".rc",
))
# fmt: on


@dataclass(frozen=True)
class Edit:
    """One change: append, insert, rename, delete or add at `path`."""

    kind: str
    path: str
    size: int = 0
    offset: int = 0
    to: str = ""


@dataclass(frozen=True)
class Counts:
    """How many edits of each kind a plan holds, for reports."""

    changes: dict[str, int]
    modified_fraction: float


@dataclass(frozen=True)
class Shape:
    """How much to change: the fraction of files modified and a few other edits."""

    fraction: float = 0.05
    renames: int = 20
    deletions: int = 30
    additions: int = 30
    addition_max: int = 4 << 20


def is_text(path: str) -> bool:
    """Guess from the suffix whether edits to `path` should be text."""
    return os.path.splitext(path)[1].lower() in TEXT_SUFFIXES


def _files(manifest: Manifest) -> list[tuple[str, int]]:
    return sorted((rel, int(v.split()[2])) for rel, v in manifest.items() if v.startswith("f "))


def _small_leaf_dir(manifest: Manifest, seed: str) -> str | None:
    """Pick a directory of 2-30 files and no subdirectories, at least 3 levels deep."""
    children: Counter[str] = Counter()
    has_subdir: set[str] = set()
    for rel, value in manifest.items():
        parent = rel.rpartition("/")[0]
        if value.startswith("d "):
            has_subdir.add(parent)
        elif value.startswith("f "):
            children[parent] += 1
    leaves = sorted(
        d for d, n in children.items() if 2 <= n <= 30 and d not in has_subdir and d.count("/") >= 2
    )
    return rng_for(seed, "dir").choice(leaves) if leaves else None


def plan(manifest: Manifest, seed: str, shape: Shape) -> list[Edit]:
    """Plan the edits that turn the tree of `manifest` into its next version."""
    rng = rng_for(seed, "v2")
    files = _files(manifest)
    moved_dir = _small_leaf_dir(manifest, seed)
    pool = [f for f in files if moved_dir is None or not f[0].startswith(moved_dir + "/")]
    largest = max(pool, key=lambda f: (f[1], f[0]))
    pool.remove(largest)
    rng.shuffle(pool)
    n_modified = max(1, round(shape.fraction * len(files)))
    modified, pool = [largest, *pool[: n_modified - 1]], pool[n_modified - 1 :]
    edits: list[Edit] = []
    for i, (rel, size) in enumerate(modified):
        grow = log_uniform(rng, 16, 16 << 10)
        if i == 0 or rng.random() < 0.5:
            edits.append(Edit("insert", rel, grow, size // 2))
        else:
            edits.append(Edit("append", rel, grow, size))
    taken = set(manifest)
    cut = max(1, min(shape.renames, len(pool) // 4))
    for rel, _ in pool[:cut]:
        head, _, name = rel.rpartition("/")
        new = f"{head}/renamed-{name}" if head else f"renamed-{name}"
        if new not in taken:
            edits.append(Edit("rename", rel, to=new))
            taken.add(new)
    pool = pool[cut:]
    for rel, _ in pool[: max(1, min(shape.deletions, len(pool) // 4))]:
        edits.append(Edit("delete", rel))
    if moved_dir is not None:
        edits.append(Edit("rename", moved_dir, to=moved_dir + "-renamed"))
    for i in range(shape.additions):
        suffix = "txt" if i % 3 else "bin"
        size = log_uniform(rng, 1 << 10, shape.addition_max)
        edits.append(Edit("add", f"added/{i // 10:02d}/new-{i:03d}.{suffix}", size))
    return edits


def counts(edits: list[Edit], manifest: Manifest) -> Counts:
    """Count the edits by kind; give the fraction of files modified."""
    by_kind = Counter(e.kind for e in edits)
    n_files = sum(1 for v in manifest.values() if v.startswith("f "))
    modified = by_kind["append"] + by_kind["insert"]
    return Counts(dict(sorted(by_kind.items())), modified / max(1, n_files))


def payload(seed: str, edit: Edit, text: TextMaker) -> bytes:
    """Return the bytes that `edit` writes (deterministic)."""
    if is_text(edit.path):
        return text.text(rng_for(seed, edit.kind, edit.path), edit.size, "md")
    return random_bytes(edit.size, seed, edit.kind, edit.path)


def _rewrite(path: Path, offset: int, data: bytes) -> None:
    """Write a new file with `data` inserted at `offset` and rename it over `path`.

    A new file, not an edit in place: the data-set cache keeps unchanged
    files of `mixed-v2` as hard links into `mixed`.
    """
    tmp = path.with_name(f".{path.name}.bench-tmp")
    with open(path, "rb") as old, open(tmp, "wb") as new:
        left = offset
        while left > 0:
            block = old.read(min(left, 4 << 20))
            if not block:
                break
            new.write(block)
            left -= len(block)
        new.write(data)
        shutil.copyfileobj(old, new, 4 << 20)
    shutil.copymode(path, tmp)
    os.replace(tmp, path)


def apply(root: Path, edits: list[Edit], seed: str) -> None:
    """Apply `edits` to the tree at `root`, in order."""
    text = TextMaker(seed)
    for edit in edits:
        path = root / edit.path
        if edit.kind in ("append", "insert"):
            _rewrite(path, edit.offset, payload(seed, edit, text))
        elif edit.kind == "rename":
            os.rename(path, root / edit.to)
        elif edit.kind == "delete":
            os.unlink(path)
        elif edit.kind == "add":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(payload(seed, edit, text))
        else:
            raise ValueError(f"unknown edit {edit.kind!r}")


def save(edits: list[Edit], path: Path) -> None:
    """Write a plan as JSON."""
    path.write_text(json.dumps([asdict(e) for e in edits], indent=1), encoding="utf-8")


def load(path: Path) -> list[Edit]:
    """Read a plan written by `save`."""
    return [Edit(**item) for item in json.loads(path.read_text(encoding="utf-8"))]
