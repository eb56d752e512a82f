"""The HTTP peer store: the one contract suite against a live `chute serve`, and its errors."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_contract import StoreContract
from webutil import Node, make_node

from chute.errors import Forbidden, StorageError, Unauthorized, UsageError
from chute.store.base import BlobStore
from chute.store.http import HttpClient, HttpStore

_spaces = itertools.count()


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, str]]:
    node = make_node(tmp_path_factory.mktemp("httpstore") / "home", node="peer", init=False)
    node.add_token("client", "write,delete")
    node.add_token("reader", "read")
    node.add_token("limited", "write")
    with node.serve("--blobs-only") as base:
        yield node, base


class TestHttpStore(StoreContract):
    @pytest.fixture
    def store(self, peer: tuple[Node, str]) -> BlobStore:
        node, base = peer
        client = HttpClient(base, node.tokens["client"])
        return HttpStore(client, "example.org", f"n{next(_spaces)}")


def test_objects_land_in_the_held_repository(peer: tuple[Node, str]) -> None:
    node, base = peer
    store = HttpStore(HttpClient(base, node.tokens["client"]), "example.org", "lands")
    store.put("config", b"{}")
    store.put("keys/abc", b"wrapped")
    held = node.home / "data" / "chute" / "held" / "example.org" / "lands"
    assert (held / "config").read_bytes() == b"{}"
    assert (held / "keys" / "abc").read_bytes() == b"wrapped"
    assert not (node.repo / "config").exists()


def test_scopes_and_append_only(peer: tuple[Node, str]) -> None:
    node, base = peer
    writer = HttpStore(HttpClient(base, node.tokens["limited"]), "example.org", "scoped")
    writer.put("x", b"1")
    writer.put("locks/mine", b"1", replace=True)
    writer.put("locks/mine", b"2", replace=True)
    writer.delete("locks/mine")
    with pytest.raises(Forbidden):
        writer.put("x", b"2", replace=True)
    with pytest.raises(Forbidden):
        writer.delete("x")
    reader = HttpStore(HttpClient(base, node.tokens["reader"]), "example.org", "scoped")
    assert reader.get("x") == b"1"
    with pytest.raises(Forbidden):
        reader.put("y", b"1")
    nobody = HttpStore(HttpClient(base, None), "example.org", "scoped")
    with pytest.raises(Unauthorized):
        nobody.get("x")
    with pytest.raises(UsageError):
        HttpStore(HttpClient(base, node.tokens["client"]), "keys", "x").put("a", b"1")


def test_unreachable_peer_is_a_storage_error(tmp_path: Path) -> None:
    slept: list[float] = []
    client = HttpClient("http://127.0.0.1:9", "t", timeout=2, attempts=3, sleep=slept.append)
    with pytest.raises(StorageError, match="gave up after 3 attempts"):
        HttpStore(client, "example.org", "x").get("config")
    assert slept == [0.5, 1.0]
    with pytest.raises(UsageError):
        HttpClient("ftp://x", None)
