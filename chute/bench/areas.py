"""Where the benchmark keeps its files: loop-mounted ext4 images or plain folders.

On the project's machines, creating files right after deleting many gets
slower every cycle on the root file system, so the figures are taken on a
freshly made ext4 file system (an image file mounted with `-o loop`). That
needs root; without it the areas are plain folders and a warning says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

Say = Callable[[str], None]

DROP_CACHES = Path("/proc/sys/vm/drop_caches")


@dataclass(frozen=True)
class Area:
    """A folder for benchmark files, and the image mounted on it, if any."""

    path: Path
    image: Path | None

    def describe(self) -> str:
        """Say what kind of file system holds this area."""
        if self.image is None:
            return f"plain folder {self.path}"
        return f"ext4 on loop image {self.image}"


def loop_possible() -> bool:
    """Tell whether this process can make and loop-mount an ext4 image."""
    tools = ("mkfs.ext4", "mount", "umount")
    return os.geteuid() == 0 and all(shutil.which(t) for t in tools)


def is_mounted(path: Path) -> bool:
    """Tell whether a file system is mounted on `path`."""
    want = os.path.realpath(path)
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            fields = line.split()
            point = fields[1].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
            if point == want:
                return True
    return False


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def _make_image(image: Path, size: int) -> None:
    image.unlink(missing_ok=True)
    with open(image, "wb") as handle:
        handle.truncate(size)
    # Initialise inode tables and journal now, so no background writer runs
    # while a command is being measured.
    _run(
        "mkfs.ext4",
        "-q",
        "-F",
        "-m",
        "0",
        "-E",
        "lazy_itable_init=0,lazy_journal_init=0",
        str(image),
    )


def _mount(image: Path, path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    _run("mount", "-o", "loop,noatime", str(image), str(path))


def _unmount(path: Path) -> None:
    if not is_mounted(path):
        return
    try:
        _run("umount", str(path))
    except subprocess.CalledProcessError:
        _run("umount", "-l", str(path))


def _warn_plain(say: Say, path: Path, why: str) -> None:
    say(
        f"WARNING: {why}; using the plain folder {path}. Figures taken on a file system "
        "that has seen many deletions can mislead (see PERFORMANCE.md)."
    )


def _mount_data(path: Path, image: Path, size: int, loop: bool, say: Say) -> bool:
    if not loop:
        _warn_plain(say, path, "loop images disabled (--no-loop)")
        return False
    if not loop_possible():
        _warn_plain(say, path, "not root or no mkfs.ext4/mount: no loop-mounted image")
        return False
    if is_mounted(path):
        return True
    try:
        if not image.exists():
            if path.exists() and any(path.iterdir()):
                raise OSError(f"{path} is not empty")
            say(f"making the data image {image} ({size >> 30} GiB, sparse)")
            _make_image(image, size)
        _mount(image, path)
    except (OSError, subprocess.CalledProcessError) as exc:
        _warn_plain(say, path, f"could not mount {image}: {_reason(exc)}")
        return False
    return True


@contextmanager
def data_area(path: Path, size: int, loop: bool, say: Say) -> Iterator[Area]:
    """Mount the cached data-set image on `path` (made once, kept between runs)."""
    image = path.with_name(path.name + ".img")
    mounted = _mount_data(path, image, size, loop, say)
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield Area(path, image if mounted else None)
    finally:
        if mounted:
            _unmount(path)


@contextmanager
def scratch_area(path: Path, size: int, loop: bool, say: Say) -> Iterator[Area]:
    """Give a freshly made file system on `path`; unmount and delete it afterwards."""
    image = path.with_name(path.name + ".img")
    _unmount(path)
    image.unlink(missing_ok=True)
    shutil.rmtree(path, ignore_errors=True)
    mounted = False
    if loop and loop_possible():
        try:
            _make_image(image, size)
            _mount(image, path)
            mounted = True
        except (OSError, subprocess.CalledProcessError) as exc:
            _warn_plain(say, path, f"could not mount {image}: {_reason(exc)}")
            image.unlink(missing_ok=True)
    elif loop:
        _warn_plain(say, path, "not root or no mkfs.ext4/mount: no fresh file system")
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield Area(path, image if mounted else None)
    finally:
        if mounted:
            _unmount(path)
            image.unlink(missing_ok=True)
        shutil.rmtree(path, ignore_errors=True)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        stderr = exc.stderr.decode(errors="replace").strip() if exc.stderr else ""
        return stderr or str(exc)
    return str(exc)


def can_drop_caches() -> bool:
    """Tell whether this process may drop the kernel's page cache."""
    return os.access(DROP_CACHES, os.W_OK)


def settle(drop: bool) -> None:
    """Write dirty pages back, then drop the page cache if `drop` (needs root)."""
    os.sync()
    if drop:
        DROP_CACHES.write_text("3\n", encoding="ascii")


def tree_bytes(path: Path) -> int:
    """Add up the apparent sizes of the files under `path` (0 if it is missing)."""
    total = 0
    stack = [os.fspath(path)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            else:
                total += entry.stat(follow_symlinks=False).st_size
    return total
