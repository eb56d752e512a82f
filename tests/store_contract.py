"""The one contract every BlobStore backend passes.

A backend's test module subclasses `StoreContract` and provides a `store`
fixture that yields an empty store of that backend:

    class TestLocalStore(StoreContract):
        @pytest.fixture
        def store(self, tmp_path: Path) -> BlobStore:
            return LocalStore(tmp_path / "repo")

The contract, in words: names are checked before storage is touched; objects
are immutable (an identical re-put is fine, different bytes are a
BlobConflict unless `replace`); a prefix is a directory-like prefix (`a`
lists `a/x`, not `ab/x`) and a prefix is not an object; `list` is recursive
and sorted; writes are atomic, also under concurrency.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from chute.errors import BlobConflict, NotFound, UsageError
from chute.store.base import BlobStore

DATA = bytes(range(256)) * 4  # 1024 bytes, every offset distinguishable by a range read

HOSTILE_NAMES = [
    "",
    "/abs",
    "/",
    "a/../b",
    "..",
    ".",
    "../x",
    "a/..",
    "a//b",
    "a/./b",
    "trailing/",
    "nul\x00x",
    "back\\slash",
    "a\\..\\b",
    "sp ace",
    "tab\tx",
    "new\nline",
    "a\n",
    "a/b\n",
    "query?x",
    "frag#x",
    "colon:x",
    "star*",
    "caf\u00e9",
    "x" * 256,  # one segment longer than a file name may be
    "/".join(["x" * 200] * 6),  # > 1024 characters in all
]

# Names made of allowed characters that a careless backend might decode or normalise.
LITERAL_NAMES = ["%2e%2e/x", "%2E%2E/%2e%2e/y", "a%2Fb", "%2e", "%00", "...", "~"]


def spawn(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(i)` for i in range(count) on as many threads, started together."""
    barrier = threading.Barrier(count)

    def run(i: int) -> Any:
        barrier.wait()
        try:
            return work(i)
        except Exception as exc:  # collected and checked by the caller
            return exc

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


class StoreContract:
    """The tests every backend runs; subclasses provide the `store` fixture."""

    # --- put and get ----------------------------------------------------

    def test_put_get_round_trip(self, store: BlobStore) -> None:
        store.put("a/b/c", DATA)
        got = store.get("a/b/c")
        assert isinstance(got, bytes)
        assert got == DATA

    def test_put_accepts_memoryview_and_bytearray(self, store: BlobStore) -> None:
        store.put("view", memoryview(DATA)[10:20])
        store.put("array", bytearray(b"xyz"))
        assert store.get("view") == DATA[10:20]
        assert store.get("array") == b"xyz"

    def test_empty_object(self, store: BlobStore) -> None:
        store.put("empty", b"")
        assert store.get("empty") == b""
        assert store.size("empty") == 0
        assert store.exists("empty")
        assert list(store.list()) == ["empty"]

    def test_single_segment_and_deep_names(self, store: BlobStore) -> None:
        deep = "/".join(f"d{i}" for i in range(20))
        store.put("top", b"1")
        store.put(deep, b"2")
        assert store.get("top") == b"1"
        assert store.get(deep) == b"2"

    @pytest.mark.parametrize(
        ("offset", "length", "expected"),
        [
            (0, 10, DATA[:10]),
            (0, None, DATA),
            (100, 50, DATA[100:150]),
            (1000, 24, DATA[1000:]),
            (1000, None, DATA[1000:]),
            (1000, 100, DATA[1000:]),  # crosses the end: what there is
            (1024, 10, b""),
            (5000, 10, b""),
            (5000, None, b""),
            (10, 0, b""),
        ],
        ids=[
            "start",
            "all",
            "middle",
            "end",
            "to-end",
            "across-end",
            "at-end",
            "past-end",
            "past-end-open",
            "zero-length",
        ],
    )
    def test_get_range(
        self, store: BlobStore, offset: int, length: int | None, expected: bytes
    ) -> None:
        store.put("ranged", DATA)
        assert store.get("ranged", offset, length) == expected

    @pytest.mark.parametrize(("offset", "length"), [(-1, None), (-1, 10), (0, -1)])
    def test_negative_range_is_a_usage_error(
        self, store: BlobStore, offset: int, length: int | None
    ) -> None:
        store.put("ranged", DATA)
        with pytest.raises(UsageError):
            store.get("ranged", offset, length)

    def test_large_object_round_trip(self, store: BlobStore) -> None:
        big = bytes(range(256)) * (20 * 4096) + b"tail"  # 20 MiB and a bit, not page-aligned
        store.put("big/object", big)
        assert store.size("big/object") == len(big)
        assert store.get("big/object") == big
        middle = 10 << 20
        assert store.get("big/object", middle, 1 << 20) == big[middle : middle + (1 << 20)]
        assert store.get("big/object", len(big) - 4) == b"tail"

    # --- size, exists, absence -------------------------------------------

    def test_size_and_exists(self, store: BlobStore) -> None:
        store.put("dir/obj", DATA)
        assert store.size("dir/obj") == len(DATA)
        assert store.exists("dir/obj")
        assert store.size("dir/absent") is None
        assert not store.exists("dir/absent")
        assert store.size("absent/obj") is None
        assert not store.exists("absent")

    def test_a_prefix_is_not_an_object(self, store: BlobStore) -> None:
        store.put("dir/sub/obj", DATA)
        for name in ("dir", "dir/sub"):
            assert store.size(name) is None
            assert not store.exists(name)
            with pytest.raises(NotFound):
                store.get(name)

    def test_get_absent_is_not_found(self, store: BlobStore) -> None:
        with pytest.raises(NotFound):
            store.get("absent")
        with pytest.raises(NotFound):
            store.get("absent/deeper", 10, 10)
        store.put("file", DATA)
        # A name below an existing object is simply absent.
        with pytest.raises(NotFound):
            store.get("file/below")
        assert store.size("file/below") is None

    # --- list --------------------------------------------------------------

    def test_list_is_recursive_and_sorted(self, store: BlobStore) -> None:
        names = ["a/z", "a/b/c/3", "a/b/2", "a/1", "ab/4", "b", "config", "A/0", "a-x/5"]
        for name in names:
            store.put(name, name.encode())
        assert list(store.list()) == sorted(names)
        assert list(store.list("")) == sorted(names)
        assert list(store.list("a")) == ["a/1", "a/b/2", "a/b/c/3", "a/z"]
        assert list(store.list("a/b")) == ["a/b/2", "a/b/c/3"]
        assert list(store.list("a/b/c")) == ["a/b/c/3"]

    def test_list_of_absent_prefix_is_empty(self, store: BlobStore) -> None:
        assert list(store.list()) == []
        assert list(store.list("nothing")) == []
        store.put("x/y", b"1")
        assert list(store.list("nothing/here")) == []
        assert list(store.list("x/y/z")) == []
        assert list(store.list("x/y")) == []  # an object is not a prefix

    def test_list_shows_objects_only(self, store: BlobStore) -> None:
        store.put("p/q/r/s", b"1")
        assert list(store.list()) == ["p/q/r/s"]
        store.delete("p/q/r/s")
        assert list(store.list()) == []
        assert list(store.list("p")) == []

    # --- immutability --------------------------------------------------------

    def test_identical_reput_is_fine(self, store: BlobStore) -> None:
        store.put("same", DATA)
        store.put("same", DATA)
        store.put("same", memoryview(DATA))
        assert store.get("same") == DATA
        assert list(store.list()) == ["same"]

    def test_different_bytes_are_a_conflict(self, store: BlobStore) -> None:
        store.put("fixed", DATA)
        for other in (DATA[:-1], DATA + b"x", b"", bytes(len(DATA))):
            with pytest.raises(BlobConflict):
                store.put("fixed", other)
        assert store.get("fixed") == DATA
        assert list(store.list()) == ["fixed"]

    def test_replace_overwrites(self, store: BlobStore) -> None:
        store.put("lock", b"old")
        store.put("lock", b"new contents", replace=True)
        assert store.get("lock") == b"new contents"
        assert store.size("lock") == len(b"new contents")
        store.put("fresh", b"first", replace=True)
        assert store.get("fresh") == b"first"
        assert list(store.list()) == ["fresh", "lock"]

    # --- delete --------------------------------------------------------------

    def test_delete(self, store: BlobStore) -> None:
        store.put("gone/soon", DATA)
        store.put("gone/stays", DATA)
        store.delete("gone/soon")
        assert not store.exists("gone/soon")
        with pytest.raises(NotFound):
            store.get("gone/soon")
        assert list(store.list()) == ["gone/stays"]
        store.put("gone/soon", b"other bytes are fine now")
        assert store.get("gone/soon") == b"other bytes are fine now"

    def test_delete_absent_is_fine(self, store: BlobStore) -> None:
        store.delete("never/was")
        store.put("dir/obj", b"1")
        store.delete("dir")  # a prefix, not an object
        store.delete("dir/obj/below")
        store.delete("dir/obj")
        store.delete("dir/obj")
        assert list(store.list()) == []

    # --- names ---------------------------------------------------------------

    @pytest.mark.parametrize("name", HOSTILE_NAMES, ids=repr)
    def test_hostile_names_are_refused(self, store: BlobStore, name: str) -> None:
        calls: list[Callable[[], object]] = [
            lambda: store.put(name, b"x"),
            lambda: store.put(name, b"x", replace=True),
            lambda: store.get(name),
            lambda: store.size(name),
            lambda: store.exists(name),
            lambda: store.delete(name),
        ]
        if name:  # the empty prefix lists everything
            calls.append(lambda: list(store.list(name)))
        for call in calls:
            with pytest.raises(UsageError):
                call()
        assert list(store.list()) == []

    def test_longest_name(self, store: BlobStore) -> None:
        name = "/".join(["x" * 255] * 3 + ["x" * 254, "y"])  # 1024 characters
        assert len(name) == 1024
        store.put(name, b"long")
        assert store.get(name) == b"long"
        assert list(store.list()) == [name]
        with pytest.raises(UsageError):
            store.put(name + "z", b"longer")

    def test_encoded_names_are_literal(self, store: BlobStore) -> None:
        for name in LITERAL_NAMES:
            store.put(name, name.encode())
        for name in LITERAL_NAMES:
            assert store.get(name) == name.encode()
        assert list(store.list()) == sorted(LITERAL_NAMES)
        for decoded in ("x", "y", "a/b", "%2e%2e/y", "%2e%2e/%2e%2e/y"):
            assert not store.exists(decoded)
        assert list(store.list("%2e%2e")) == ["%2e%2e/x"]
        assert list(store.list("a")) == []

    # --- concurrency -----------------------------------------------------------

    def test_concurrent_writers(self, store: BlobStore) -> None:
        names = [f"c/{i % 8}/{i:03d}" for i in range(64)]
        results = spawn(64, lambda i: store.put(names[i], f"object {i}".encode() * 100))
        assert results == [None] * 64
        assert list(store.list()) == sorted(names)
        assert list(store.list("c")) == sorted(names)
        for i, name in enumerate(names):
            assert store.get(name) == f"object {i}".encode() * 100

    def test_concurrent_identical_writers(self, store: BlobStore) -> None:
        results = spawn(16, lambda i: store.put("shared", DATA))
        assert results == [None] * 16
        assert store.get("shared") == DATA

    def test_concurrent_conflicting_writers(self, store: BlobStore) -> None:
        payloads = [bytes([i]) * 4096 for i in range(16)]
        results = spawn(16, lambda i: store.put("contested", payloads[i]))
        winners = [i for i, result in enumerate(results) if result is None]
        assert len(winners) == 1
        assert all(isinstance(r, BlobConflict) for i, r in enumerate(results) if i != winners[0])
        assert store.get("contested") == payloads[winners[0]]
