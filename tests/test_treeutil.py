"""Tests for the tree builder / snapshot / comparison helpers in treeutil."""

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
import treeutil
import xattr
from treeutil import (
    ABSOLUTE_SYMLINK,
    CHOWN_GID,
    CHOWN_UID,
    CHOWNED_FILE,
    DANGLING_SYMLINK,
    EMPTY_DIR,
    EMPTY_FILE,
    EXEC_FILE,
    FIFO,
    HARDLINK_PAIR,
    HARDLINK_TRIPLE,
    NEWLINE_NAME,
    NON_UTF8_NAME,
    ONE_BYTE_FILE,
    PRIVATE_DIR,
    RANDOM_3M_FILE,
    RANDOM_100K_FILE,
    RELATIVE_UP_SYMLINK,
    SECRET_FILE,
    SETGID_DIR,
    SPARSE_FILE,
    SPARSE_SIZE,
    SYMLINK_TO_DIR,
    SYMLINK_TO_FILE,
    TEXT_FILE,
    XATTR_DIR,
    XATTR_FILE,
    XATTRS,
    assert_trees_equal,
    diff_snapshots,
    make_every_kind_tree,
    snapshot_tree,
)

# ---------------------------------------------------------------------------
# A small reference copier, independent of chute, using os-level calls only.
# ---------------------------------------------------------------------------

_ZERO_BLOCK = bytes(64 * 1024)


def _copy_xattrs(src: bytes, dst: bytes, is_link: bool) -> None:
    try:
        names = xattr.listxattr(src, symlink=True)
    except OSError:
        if is_link:
            return
        raise
    for name in names:
        xattr.setxattr(dst, name, xattr.getxattr(src, name, symlink=True), symlink=is_link)


def _copy_file_sparse(src: bytes, dst: bytes, size: int) -> None:
    with open(src, "rb") as fi, open(dst, "xb") as fo:
        while chunk := fi.read(len(_ZERO_BLOCK)):
            if chunk == _ZERO_BLOCK[: len(chunk)]:
                fo.seek(len(chunk), os.SEEK_CUR)
            else:
                fo.write(chunk)
        fo.truncate(size)


def reference_copy(src: Path, dst: Path) -> None:
    """Copy src to dst (which must not exist) preserving everything snapshot_tree looks at."""
    linked: dict[tuple[int, int], bytes] = {}
    as_root = os.geteuid() == 0

    def copy(s: bytes, d: bytes) -> None:
        st = os.lstat(s)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(d, 0o700)
            for name in sorted(os.listdir(s)):
                copy(os.path.join(s, name), os.path.join(d, name))
        else:
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in linked:
                os.link(linked[key], d, follow_symlinks=False)
                return
            linked[key] = d
            if stat.S_ISLNK(mode):
                os.symlink(os.readlink(s), d)
            elif stat.S_ISREG(mode):
                _copy_file_sparse(s, d, st.st_size)
            elif stat.S_ISFIFO(mode):
                os.mkfifo(d, 0o600)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                os.mknod(d, mode, st.st_rdev)
            else:
                raise ValueError(f"cannot copy {s!r}")
        is_link = stat.S_ISLNK(mode)
        if as_root:
            os.chown(d, st.st_uid, st.st_gid, follow_symlinks=False)
        if not is_link:
            os.chmod(d, stat.S_IMODE(mode))  # after chown, which clears set-id bits
        _copy_xattrs(s, d, is_link)
        # Directory times are set here too: all its children already exist.
        os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

    copy(os.fsencode(src), os.fsencode(dst))


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("every-kind") / "tree"
    make_every_kind_tree(root)
    return root


@pytest.fixture
def copy(tree: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    reference_copy(tree, dst)
    return dst


def _p(root: Path, rel: bytes) -> bytes:
    return os.path.join(os.fsencode(root), rel)


# ---------------------------------------------------------------------------
# Builder
# ---------------------------------------------------------------------------


def test_builder_refuses_existing_root(tmp_path: Path) -> None:
    with pytest.raises(FileExistsError):
        make_every_kind_tree(tmp_path)


def test_regular_files(tree: Path) -> None:
    assert os.path.getsize(_p(tree, EMPTY_FILE)) == 0
    assert os.path.getsize(_p(tree, ONE_BYTE_FILE)) == 1
    assert os.path.getsize(_p(tree, RANDOM_100K_FILE)) == 100 * 1024
    assert os.path.getsize(_p(tree, RANDOM_3M_FILE)) == 3 * 1024 * 1024
    assert os.path.isdir(_p(tree, EMPTY_DIR)) and not os.listdir(_p(tree, EMPTY_DIR))


def test_sparse_file_is_really_sparse(tree: Path) -> None:
    st = os.lstat(_p(tree, SPARSE_FILE))
    assert st.st_size == SPARSE_SIZE
    assert st.st_blocks * 512 < st.st_size
    assert st.st_blocks * 512 < 1024 * 1024
    assert snapshot_tree(tree)[SPARSE_FILE]["sparse"] is True


def test_hardlinks_share_inode(tree: Path) -> None:
    for group in (HARDLINK_PAIR, HARDLINK_TRIPLE):
        stats = [os.lstat(_p(tree, rel)) for rel in group]
        assert len({(s.st_dev, s.st_ino) for s in stats}) == 1
        assert all(s.st_nlink == len(group) for s in stats)
    snap = snapshot_tree(tree)
    assert snap[HARDLINK_PAIR[1]]["hardlinks"] == tuple(sorted(HARDLINK_PAIR))
    assert snap[HARDLINK_TRIPLE[2]]["hardlinks"] == tuple(sorted(HARDLINK_TRIPLE))
    assert snap[TEXT_FILE]["hardlinks"] is None


def test_awkward_names_exist(tree: Path) -> None:
    names = os.listdir(os.fsencode(tree))
    assert NON_UTF8_NAME in names
    assert NEWLINE_NAME in names
    with pytest.raises(UnicodeDecodeError):
        NON_UTF8_NAME.decode("utf-8")
    for name in (b"with space.txt", "café.txt".encode(), b"back\\slash.txt", b"-dash.txt"):
        assert name in names
    assert b".hidden" in names
    assert "語.txt".encode() in os.listdir(_p(tree, "日本".encode()))


def test_special_entries(tree: Path) -> None:
    assert stat.S_ISFIFO(os.lstat(_p(tree, FIFO)).st_mode)
    assert os.readlink(_p(tree, SYMLINK_TO_FILE)) == TEXT_FILE
    assert os.path.isfile(_p(tree, SYMLINK_TO_FILE))
    assert os.path.isdir(_p(tree, SYMLINK_TO_DIR))
    assert not os.path.exists(_p(tree, DANGLING_SYMLINK))
    assert os.path.islink(_p(tree, DANGLING_SYMLINK))
    assert os.path.isabs(os.readlink(_p(tree, ABSOLUTE_SYMLINK)))
    assert b".." in os.readlink(_p(tree, RELATIVE_UP_SYMLINK))
    assert os.path.isfile(_p(tree, RELATIVE_UP_SYMLINK))


def test_modes(tree: Path) -> None:
    def mode(rel: bytes) -> int:
        return stat.S_IMODE(os.lstat(_p(tree, rel)).st_mode)

    assert mode(SECRET_FILE) == 0o600
    assert mode(EXEC_FILE) == 0o755
    assert mode(TEXT_FILE) == 0o644
    assert mode(PRIVATE_DIR) == 0o700
    assert mode(SETGID_DIR) in (0o2775, 0o775)
    if os.geteuid() == 0:
        assert mode(SETGID_DIR) == 0o2775


def test_xattrs(tree: Path) -> None:
    snap = snapshot_tree(tree)
    if not treeutil.XATTRS_SUPPORTED:
        assert snap[XATTR_FILE]["xattrs"] == {}
        pytest.skip("filesystem refuses user xattrs")
    for rel in (XATTR_FILE, XATTR_DIR):
        assert {k: v for k, v in snap[rel]["xattrs"].items() if k in XATTRS} == XATTRS


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_chowned_file(tree: Path) -> None:
    st = os.lstat(_p(tree, CHOWNED_FILE))
    assert (st.st_uid, st.st_gid) == (CHOWN_UID, CHOWN_GID)


def test_mtimes_distinct_with_nanoseconds(tree: Path) -> None:
    snap = snapshot_tree(tree)
    by_inode: dict[tuple[int, int], int] = {}
    for rel, entry in snap.items():
        assert entry["mtime_ns"] % 1_000_000_000 != 0, rel
        st = os.lstat(_p(tree, rel))
        by_inode[(st.st_dev, st.st_ino)] = entry["mtime_ns"]
    assert len(set(by_inode.values())) == len(by_inode)
    kinds = {e["type"] for e in snap.values()}
    assert {"file", "dir", "symlink", "fifo"} <= kinds


def test_builder_is_deterministic(tree: Path, tmp_path: Path) -> None:
    other = tmp_path / "again"
    make_every_kind_tree(other)
    assert_trees_equal(tree, other)


# ---------------------------------------------------------------------------
# Snapshot / compare
# ---------------------------------------------------------------------------


def test_snapshot_root_and_types(tree: Path) -> None:
    snap = snapshot_tree(tree)
    assert snap[b"."]["type"] == "dir"
    assert snap[FIFO]["type"] == "fifo"
    assert snap[SYMLINK_TO_DIR]["type"] == "symlink"
    assert snap[SYMLINK_TO_DIR]["target"] == b"dir/nested"
    assert snap[TEXT_FILE]["size"] == os.path.getsize(_p(tree, TEXT_FILE))
    assert snap[TEXT_FILE]["sparse"] is False
    # Symlinks to directories are not descended into.
    assert not any(rel.startswith(SYMLINK_TO_DIR + b"/") for rel in snap)


def test_tree_equals_itself(tree: Path) -> None:
    assert_trees_equal(tree, tree)


def test_tree_equals_reference_copy(tree: Path, copy: Path) -> None:
    assert_trees_equal(tree, copy)
    assert snapshot_tree(copy)[SPARSE_FILE]["sparse"] is True


# ---------------------------------------------------------------------------
# Each kind of difference is reported
# ---------------------------------------------------------------------------


def _keep_parent_times(root: Path, rel: bytes, change: Callable[[], None]) -> None:
    """Run change() and restore the parent directory's times afterwards."""
    parent = os.path.dirname(_p(root, rel))
    st = os.lstat(parent)
    change()
    os.utime(parent, ns=(st.st_atime_ns, st.st_mtime_ns))


def _flip_byte(root: Path) -> None:
    path = _p(root, RANDOM_100K_FILE)
    st = os.lstat(path)
    with open(path, "r+b") as f:
        f.seek(12345)
        b = f.read(1)
        f.seek(12345)
        f.write(bytes([b[0] ^ 1]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _chmod(root: Path) -> None:
    os.chmod(_p(root, SECRET_FILE), 0o640)


def _touch_1ns(root: Path) -> None:
    st = os.lstat(_p(root, TEXT_FILE))
    os.utime(_p(root, TEXT_FILE), ns=(st.st_atime_ns, st.st_mtime_ns + 1))


def _touch_symlink_1ns(root: Path) -> None:
    path = _p(root, SYMLINK_TO_FILE)
    st = os.lstat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1), follow_symlinks=False)


def _touch_dir_1ns(root: Path) -> None:
    path = _p(root, PRIVATE_DIR)
    st = os.lstat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 1))


def _retarget_symlink(root: Path) -> None:
    path = _p(root, SYMLINK_TO_FILE)
    st = os.lstat(path)

    def change() -> None:
        os.unlink(path)
        os.symlink(EXEC_FILE, path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

    _keep_parent_times(root, SYMLINK_TO_FILE, change)


def _break_hardlink(root: Path) -> None:
    src, path = _p(root, HARDLINK_PAIR[0]), _p(root, HARDLINK_PAIR[1])
    st = os.lstat(path)

    def change() -> None:
        os.unlink(path)
        _copy_file_sparse(src, path, st.st_size)
        os.chmod(path, stat.S_IMODE(st.st_mode))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    _keep_parent_times(root, HARDLINK_PAIR[1], change)


def _change_xattr(root: Path) -> None:
    if not treeutil.XATTRS_SUPPORTED:
        pytest.skip("filesystem refuses user xattrs")
    xattr.setxattr(_p(root, XATTR_FILE), "user.chute.test", b"other")


def _extra_file(root: Path) -> None:
    _keep_parent_times(root, b"dir/extra", lambda: open(_p(root, b"dir/extra"), "xb").close())


def _missing_file(root: Path) -> None:
    _keep_parent_times(root, ONE_BYTE_FILE, lambda: os.unlink(_p(root, ONE_BYTE_FILE)))


def _densify(root: Path) -> None:
    path = _p(root, SPARSE_FILE)
    st = os.lstat(path)
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "r+b") as f:
        f.write(data)  # rewriting every byte allocates the holes
        f.flush()
        os.fsync(f.fileno())
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.lstat(path).st_blocks * 512 >= st.st_size


def _fifo_to_file(root: Path) -> None:
    path = _p(root, FIFO)
    st = os.lstat(path)

    def change() -> None:
        os.unlink(path)
        open(path, "xb").close()
        os.chmod(path, stat.S_IMODE(st.st_mode))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    _keep_parent_times(root, FIFO, change)


DIFFERENCES = [
    # (mutation, expected diff lines; each "path: field" or a full "missing/extra" line)
    (_flip_byte, {"'random-100k.bin': sha256"}),
    (_chmod, {"'secret.txt': mode: a=0o600 b=0o640"}),
    (_touch_1ns, {"'text.txt': mtime_ns"}),
    (_touch_symlink_1ns, {"'link-to-file': mtime_ns"}),
    (_touch_dir_1ns, {"'private': mtime_ns"}),
    (_retarget_symlink, {"'link-to-file': target: a=b'text.txt' b=b'run.sh'"}),
    (_break_hardlink, {"'hardlink-a': hardlinks", "'hardlink-b': hardlinks"}),
    (_change_xattr, {"'xattr.txt': xattrs"}),
    (_extra_file, {"extra in b: 'dir/extra' (file)"}),
    (_missing_file, {"missing in b: 'one.bin' (file)"}),
    (_densify, {"'sparse.img': sparse: a=True b=False"}),
    (_fifo_to_file, {"'fifo': type", "'fifo': size", "'fifo': sha256", "'fifo': sparse"}),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), DIFFERENCES, ids=[m.__name__.lstrip("_") for m, _ in DIFFERENCES]
)
def test_difference_is_reported(
    tree: Path, copy: Path, mutate: Callable[[Path], None], expected: set[str]
) -> None:
    mutate(copy)
    lines = diff_snapshots(snapshot_tree(tree), snapshot_tree(copy))
    # Exactly the expected differences, nothing else (each line starts with its expectation).
    assert len(lines) == len(expected), lines
    for exp in expected:
        assert any(line.startswith(exp) for line in lines), (exp, lines)
    with pytest.raises(AssertionError) as info:
        assert_trees_equal(tree, copy)
    message = str(info.value)
    for exp in expected:
        assert exp in message


def test_non_utf8_path_shown_readably(tree: Path, copy: Path) -> None:
    path = _p(copy, NON_UTF8_NAME)
    st = os.lstat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    with pytest.raises(AssertionError, match=r"b'caf\\xe9\.txt': mtime_ns"):
        assert_trees_equal(tree, copy)


def test_ignore_root_times(tree: Path, copy: Path) -> None:
    st = os.lstat(copy)
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    with pytest.raises(AssertionError, match=r"'\.': mtime_ns"):
        assert_trees_equal(tree, copy)
    assert_trees_equal(tree, copy, ignore_root_times=True)
    # Only the root's times are ignored, not other fields or other entries.
    os.chmod(copy, 0o700)
    with pytest.raises(AssertionError, match=r"'\.': mode"):
        assert_trees_equal(tree, copy, ignore_root_times=True)


def test_message_is_at_most_50_lines(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for i in range(120):
        (b / f"extra-{i:03d}").write_bytes(b"")
    os.utime(b, ns=(0, os.lstat(a).st_mtime_ns))
    with pytest.raises(AssertionError) as info:
        assert_trees_equal(a, b)
    lines = str(info.value).splitlines()
    assert len(lines) <= 50
    assert "120 difference(s)" in lines[0]
    assert lines[-1].strip().startswith("... and")
