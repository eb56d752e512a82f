"""Fingerprints of trees, to check a restore against its source by hashing.

A manifest maps each path (relative to the tree's root, `/`-separated) to
a short description: `d <mode>` for a directory, `l <target>` for a
symlink, `f <mode> <size> <sha256>` for a regular file.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

Manifest = dict[str, str]


def walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Yield (relative path, lstat) for everything under `root`, in sorted order."""
    stack = [""]
    while stack:
        rel = stack.pop()
        base = root / rel if rel else root
        names = sorted(os.listdir(base), reverse=True)
        for name in names:
            child = f"{rel}/{name}" if rel else name
            st = os.lstat(base / name)
            yield child, st
            if stat.S_ISDIR(st.st_mode):
                stack.append(child)


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def describe(path: Path, st: os.stat_result) -> str | None:
    """Describe one entry as a manifest value (None for sockets, fifos and devices)."""
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        return f"d {mode:o}"
    if stat.S_ISLNK(st.st_mode):
        return f"l {os.readlink(path)}"
    if stat.S_ISREG(st.st_mode):
        return f"f {mode:o} {st.st_size} {_sha256(path)}"
    return None


def make(root: Path) -> Manifest:
    """Fingerprint every entry under `root`."""
    out: Manifest = {}
    for rel, st in walk(root):
        value = describe(root / rel, st)
        if value is not None:
            out[rel] = value
    return out


def differences(expected: Manifest, actual: Manifest, limit: int = 5) -> list[str]:
    """List up to `limit` paths that differ, are missing or are extra."""
    found: list[str] = []
    for rel in sorted(expected.keys() | actual.keys()):
        want, got = expected.get(rel), actual.get(rel)
        if want == got:
            continue
        if got is None:
            found.append(f"missing {rel}")
        elif want is None:
            found.append(f"extra {rel}")
        else:
            found.append(f"differs {rel}: {got} instead of {want}")
        if len(found) >= limit:
            break
    return found


def files_and_bytes(manifest: Manifest) -> tuple[int, int]:
    """Count the regular files of a manifest and add up their sizes."""
    files = [v.split() for v in manifest.values() if v.startswith("f ")]
    return len(files), sum(int(f[2]) for f in files)


def save(manifest: Manifest, path: Path) -> None:
    """Write a manifest as JSON."""
    path.write_text(json.dumps(manifest, indent=0, sort_keys=True), encoding="utf-8")


def load(path: Path) -> Manifest:
    """Read a manifest written by `save`."""
    data: Manifest = json.loads(path.read_text(encoding="utf-8"))
    return data
