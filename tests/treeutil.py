"""Test helpers: build a tree holding every kind of entry, snapshot it, compare two trees.

Typical use::

    from treeutil import assert_trees_equal, make_every_kind_tree

    make_every_kind_tree(tmp_path / "src")
    ...  # back up tmp_path / "src", restore into tmp_path / "dst"
    assert_trees_equal(tmp_path / "src", tmp_path / "dst")

All paths inside snapshots are ``bytes`` relative to the root (the root itself is ``b"."``),
so names that are not valid UTF-8 survive untouched.
"""

import contextlib
import errno
import hashlib
import os
import random
import stat
import tempfile
from pathlib import Path
from typing import Any

import xattr

KIB = 1024
MIB = 1024 * KIB

# ---------------------------------------------------------------------------
# Names used by make_every_kind_tree (relative bytes paths), exported for tests.
# ---------------------------------------------------------------------------
EMPTY_FILE = b"empty.bin"
ONE_BYTE_FILE = b"one.bin"
RANDOM_100K_FILE = b"random-100k.bin"
RANDOM_3M_FILE = b"random-3m.bin"
TEXT_FILE = b"text.txt"
SECRET_FILE = b"secret.txt"  # 0o600
EXEC_FILE = b"run.sh"  # 0o755
CHOWNED_FILE = b"owned.txt"  # chowned to CHOWN_UID:CHOWN_GID when running as root
SPARSE_FILE = b"sparse.img"
FIFO = b"fifo"
SPACE_NAME = b"with space.txt"
UNICODE_NAME = "café.txt".encode()
UNICODE_DIR = "日本".encode()
UNICODE_DIR_FILE = "日本/語.txt".encode()
NEWLINE_NAME = b"new\nline.txt"
BACKSLASH_NAME = b"back\\slash.txt"
NON_UTF8_NAME = b"caf\xe9.txt"  # latin-1 "café", not valid UTF-8
DASH_NAME = b"-dash.txt"
DOT_NAME = b".hidden"
NESTED_DIR = b"dir/nested"
DEEP_FILE = b"dir/nested/deep/file.txt"
EMPTY_DIR = b"empty-dir"
PRIVATE_DIR = b"private"  # 0o700
SETGID_DIR = b"shared"  # 0o2775 (if the kernel lets us)
SYMLINK_TO_FILE = b"link-to-file"
SYMLINK_TO_DIR = b"link-to-dir"
DANGLING_SYMLINK = b"dangling"
ABSOLUTE_SYMLINK = b"abs-link"
RELATIVE_UP_SYMLINK = b"dir/nested/rel-up"
HARDLINK_PAIR = (b"hardlink-a", b"hardlink-b")
HARDLINK_TRIPLE = (b"dir/triple-1", b"dir/nested/triple-2", UNICODE_DIR + b"/triple-3")
XATTR_FILE = b"xattr.txt"
XATTR_DIR = b"xattr-dir"

SPARSE_SIZE = 64 * MIB
SPARSE_DATA_OFFSETS = (0, 32 * MIB)
SPARSE_CHUNK = 4 * KIB

CHOWN_UID = 1234
CHOWN_GID = 5678

XATTRS = {"user.chute.test": b"value", "user.chute.binary": b"\x00\xff\x01bin\nary\x00"}

# Base of the deterministic mtimes (2021-01-01T00:00:00Z); every entry gets a distinct one.
_BASE_NS = 1_609_459_200 * 1_000_000_000

_XATTR_REFUSED = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES}


def _probe_xattrs(directory: str) -> bool:
    try:
        with tempfile.NamedTemporaryFile(dir=directory) as f:
            xattr.setxattr(f.name, "user.chute.probe", b"1")
    except OSError:
        return False
    return True


# True if user xattrs can be set. Probed at import time in the temp directory and updated by
# make_every_kind_tree for the filesystem it actually built on; read it as
# ``treeutil.XATTRS_SUPPORTED`` after building (a ``from treeutil import`` copy can go stale).
XATTRS_SUPPORTED: bool = _probe_xattrs(tempfile.gettempdir())


# ---------------------------------------------------------------------------
# Builder
# ---------------------------------------------------------------------------


def _write(path: bytes, data: bytes, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.chmod(path, mode)


def _mkdir(path: bytes, mode: int = 0o755) -> None:
    os.mkdir(path)
    os.chmod(path, mode)


def _walk_post_order(root: bytes) -> list[bytes]:
    """All paths under (and including) root, children before their directory."""
    out: list[bytes] = []
    for name in sorted(os.listdir(root)):
        p = os.path.join(root, name)
        if stat.S_ISDIR(os.lstat(p).st_mode):
            out.extend(_walk_post_order(p))
        else:
            out.append(p)
    out.append(root)
    return out


def make_every_kind_tree(root: Path) -> None:
    """Create ``root`` (which must not exist) holding every kind of entry to restore exactly."""
    global XATTRS_SUPPORTED
    r = os.fsencode(root)
    if os.path.lexists(r):
        raise FileExistsError(errno.EEXIST, "tree root already exists", os.fsdecode(r))
    os.mkdir(r)
    os.chmod(r, 0o755)

    def p(rel: bytes) -> bytes:
        return os.path.join(r, rel)

    rng = random.Random(0xC4A7E)

    # Directories.
    for d in (b"dir", NESTED_DIR, b"dir/nested/deep", UNICODE_DIR, XATTR_DIR):
        _mkdir(p(d))
    _mkdir(p(EMPTY_DIR))
    _mkdir(p(PRIVATE_DIR), 0o700)
    _mkdir(p(SETGID_DIR), 0o2775)  # the kernel may silently drop S_ISGID for non-members

    # Regular files of several sizes.
    _write(p(EMPTY_FILE), b"")
    _write(p(ONE_BYTE_FILE), b"*")
    _write(p(RANDOM_100K_FILE), rng.randbytes(100 * KIB))
    _write(p(RANDOM_3M_FILE), rng.randbytes(3 * MIB))
    text = b"".join(
        b"line %06d: the quick brown fox jumps over the lazy dog\n" % i for i in range(4000)
    )
    _write(p(TEXT_FILE), text)
    _write(p(DEEP_FILE), b"deep inside\n")
    _write(p(PRIVATE_DIR + b"/inner.txt"), b"private\n", 0o600)
    _write(p(SETGID_DIR + b"/note.txt"), b"in a setgid directory\n", 0o664)
    _write(p(UNICODE_DIR_FILE), "日本語のテキスト\n".encode())

    # Modes.
    _write(p(SECRET_FILE), b"top secret\n", 0o600)
    _write(p(EXEC_FILE), b"#!/bin/sh\necho hello\n", 0o755)

    # Awkward names.
    for name in (SPACE_NAME, UNICODE_NAME, NEWLINE_NAME, BACKSLASH_NAME, DASH_NAME, DOT_NAME):
        _write(p(name), b"name: " + name + b"\n")
    _write(p(NON_UTF8_NAME), b"latin-1 name\n")  # bytes path all the way down to open(2)

    # Ownership (chown clears set-id bits, so chmod afterwards).
    _write(p(CHOWNED_FILE), b"owned by someone else\n")
    if os.geteuid() == 0:
        os.chown(p(CHOWNED_FILE), CHOWN_UID, CHOWN_GID)
    os.chmod(p(CHOWNED_FILE), 0o640)

    # Sparse file: 64 MiB with 4 KiB of data at 0 and at 32 MiB, holes elsewhere.
    fd = os.open(p(SPARSE_FILE), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.ftruncate(fd, SPARSE_SIZE)
        for off in SPARSE_DATA_OFFSETS:
            os.lseek(fd, off, os.SEEK_SET)
            os.write(fd, rng.randbytes(SPARSE_CHUNK))
    finally:
        os.close(fd)
    os.chmod(p(SPARSE_FILE), 0o644)
    st = os.lstat(p(SPARSE_FILE))
    assert st.st_size == SPARSE_SIZE
    assert st.st_blocks * 512 < st.st_size, "filesystem did not create a sparse file"

    # FIFO.
    os.mkfifo(p(FIFO), 0o600)
    os.chmod(p(FIFO), 0o640)

    # Symlinks.
    os.symlink(TEXT_FILE, p(SYMLINK_TO_FILE))
    os.symlink(NESTED_DIR, p(SYMLINK_TO_DIR))
    os.symlink(b"nowhere/missing-target", p(DANGLING_SYMLINK))
    os.symlink(b"/nonexistent/chute-absolute-target", p(ABSOLUTE_SYMLINK))
    os.symlink(b"../../" + TEXT_FILE, p(RELATIVE_UP_SYMLINK))

    # Hard links.
    _write(p(HARDLINK_PAIR[0]), b"hardlinked pair\n")
    os.link(p(HARDLINK_PAIR[0]), p(HARDLINK_PAIR[1]))
    _write(p(HARDLINK_TRIPLE[0]), b"hardlinked triple\n", 0o664)
    for other in HARDLINK_TRIPLE[1:]:
        os.link(p(HARDLINK_TRIPLE[0]), p(other))

    # Extended attributes (xattr changes only ctime, never mtime).
    _write(p(XATTR_FILE), b"file with xattrs\n")
    try:
        for target in (XATTR_FILE, XATTR_DIR):
            for xname, value in XATTRS.items():
                xattr.setxattr(p(target), xname, value)
    except OSError as e:
        if e.errno not in _XATTR_REFUSED:
            raise
        XATTRS_SUPPORTED = False
        for target in (XATTR_FILE, XATTR_DIR):
            for xname in XATTRS:
                with contextlib.suppress(OSError):
                    xattr.removexattr(p(target), xname)
    else:
        XATTRS_SUPPORTED = True

    # Times last: distinct mtimes with non-zero nanoseconds; directories after their children.
    for i, path in enumerate(_walk_post_order(r)):
        mtime = _BASE_NS + i * 3_600_000_000_000 + 1 + (i * 123_456_789) % 999_999_999
        atime = mtime + 86_400_000_000_000 + 7
        os.utime(path, ns=(atime, mtime), follow_symlinks=False)


# ---------------------------------------------------------------------------
# Snapshot
# ---------------------------------------------------------------------------


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "chardev"
    if stat.S_ISBLK(mode):
        return "blockdev"
    return "unknown"


def _read_xattrs(path: bytes, is_link: bool) -> dict[str, bytes]:
    try:
        names = xattr.listxattr(path, symlink=True)
        return {n: xattr.getxattr(path, n, symlink=True) for n in sorted(names)}
    except OSError as e:
        if e.errno in _XATTR_REFUSED or is_link:
            return {}
        raise


def _sha256(path: bytes) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def snapshot_tree(root: Path) -> dict[bytes, dict[str, Any]]:
    """Describe every entry under ``root`` (never following symlinks).

    Keys are paths relative to root as bytes (root is ``b"."``). Each value has the keys
    ``type, mode, uid, gid, mtime_ns, size, sha256, sparse, target, rdev, xattrs, hardlinks``;
    fields that do not apply to the entry's type are ``None``. ``hardlinks`` is the sorted
    tuple of relative paths in the tree sharing the entry's inode when there are two or more
    of them (links from outside the tree are ignored), else ``None``.
    """
    r = os.fsencode(root)
    out: dict[bytes, dict[str, Any]] = {}
    inodes: dict[tuple[int, int], list[bytes]] = {}

    def visit(rel: bytes) -> None:
        full = r if rel == b"." else os.path.join(r, rel)
        st = os.lstat(full)
        kind = _kind(st.st_mode)
        is_file = kind == "file"
        entry: dict[str, Any] = {
            "type": kind,
            "mode": stat.S_IMODE(st.st_mode),
            "uid": st.st_uid,
            "gid": st.st_gid,
            "mtime_ns": st.st_mtime_ns,
            "size": st.st_size if is_file else None,
            "sha256": _sha256(full) if is_file else None,
            "sparse": (st.st_blocks * 512 < st.st_size and st.st_size > MIB) if is_file else None,
            "target": os.readlink(full) if kind == "symlink" else None,
            "rdev": st.st_rdev if kind in ("chardev", "blockdev") else None,
            "xattrs": _read_xattrs(full, kind == "symlink"),
            "hardlinks": None,
        }
        out[rel] = entry
        if kind != "dir" and st.st_nlink > 1:
            inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
        if kind == "dir":
            for name in sorted(os.listdir(full)):
                visit(name if rel == b"." else os.path.join(rel, name))

    visit(b".")
    for paths in inodes.values():
        if len(paths) > 1:
            group = tuple(sorted(paths))
            for rel in paths:
                out[rel]["hardlinks"] = group
    return out


# ---------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------

MAX_DIFF_LINES = 50
_MAX_VALUE_CHARS = 160


def show_path(rel: bytes) -> str:
    """Readable, unambiguous rendering of a relative bytes path."""
    try:
        return repr(rel.decode("utf-8"))
    except UnicodeDecodeError:
        return repr(rel)


def _show_value(field: str, value: Any) -> str:
    if field == "mode" and isinstance(value, int):
        text = oct(value)
    elif field == "hardlinks" and isinstance(value, tuple):
        text = "(" + ", ".join(show_path(x) for x in value) + ")"
    else:
        text = repr(value)
    if len(text) > _MAX_VALUE_CHARS:
        text = text[: _MAX_VALUE_CHARS - 3] + "..."
    return text


def diff_snapshots(
    a: dict[bytes, dict[str, Any]],
    b: dict[bytes, dict[str, Any]],
    *,
    ignore_root_times: bool = False,
) -> list[str]:
    """All differences between two snapshots, one human-readable line each (unlimited)."""
    lines: list[str] = []
    for rel in sorted(a.keys() - b.keys()):
        lines.append(f"missing in b: {show_path(rel)} ({a[rel]['type']})")
    for rel in sorted(b.keys() - a.keys()):
        lines.append(f"extra in b: {show_path(rel)} ({b[rel]['type']})")
    for rel in sorted(a.keys() & b.keys()):
        ea, eb = a[rel], b[rel]
        for field in sorted(ea.keys() | eb.keys()):
            if rel == b"." and ignore_root_times and field == "mtime_ns":
                continue
            va, vb = ea.get(field), eb.get(field)
            if va != vb:
                lines.append(
                    f"{show_path(rel)}: {field}: a={_show_value(field, va)}"
                    f" b={_show_value(field, vb)}"
                )
    return lines


def assert_trees_equal(a: Path, b: Path, *, ignore_root_times: bool = False) -> None:
    """Raise AssertionError listing differences (at most 50 lines) if the trees differ."""
    lines = diff_snapshots(snapshot_tree(a), snapshot_tree(b), ignore_root_times=ignore_root_times)
    if not lines:
        return
    header = f"trees differ (a={os.fsdecode(a)}, b={os.fsdecode(b)}): {len(lines)} difference(s)"
    body = ["  " + line for line in lines]
    if len(body) > MAX_DIFF_LINES - 1:
        keep = MAX_DIFF_LINES - 2
        body = [*body[:keep], f"  ... and {len(lines) - keep} more"]
    raise AssertionError("\n".join([header, *body]))
