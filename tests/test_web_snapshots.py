"""History browsing and file download (decrypted on the fly, seekable) under real waitress."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Run
from webutil import Node, curl_status_if_none_match, make_node, request

BIG = 6 << 20  # several FastCDC chunks


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Node:
    home = tmp_path_factory.mktemp("snapshots") / "home"
    found = make_node(home)
    tree = home.parent / "docs"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "big.bin").write_bytes(os.urandom(BIG))
    (tree / "note.txt").write_text("first\n")
    found.run("put", str(tree))
    (tree / "note.txt").write_text("second, longer\n")
    found.run("put", str(tree))
    config = home / "config" / "chute" / "config.toml"
    config.write_text(f'[mounts]\ndocs = "{tree}"\n')
    found.add_token("reader", "read")
    found.add_token("admin", "admin")
    found.add_token("writer", "write")
    return found


@pytest.fixture(scope="module")
def server(node: Node) -> Iterator[str]:
    with node.serve() as base:
        yield base


def test_list_json_and_html(node: Node, server: str) -> None:
    r = node.tokens["reader"]
    rows = request(server, "GET", "/chute/snapshots", token=r).json()
    assert len(rows) >= 2 and rows[0]["uri"].startswith("https://example.com/chute/blob/")
    page = request(server, "GET", "/chute/snapshots", headers={"Accept": "text/html"}, token=r)
    assert page.header(
        "Content-Type",
    ).startswith("text/html")  # type: ignore[union-attr]
    assert b"/chute/snapshots/tree?snapshot=" in page.body


def test_tree_and_versions(node: Node, server: str) -> None:
    r = node.tokens["reader"]
    top = request(server, "GET", "/chute/snapshots/tree?snapshot=latest", token=r).json()
    assert [e["path"] for e in top["entries"]] == ["docs"]
    docs = request(server, "GET", "/chute/snapshots/tree?snapshot=latest&path=docs", token=r)
    assert {e["path"] for e in docs.json()["entries"]} == {"docs/note.txt", "docs/sub"}
    html = request(
        server,
        "GET",
        "/chute/snapshots/tree?snapshot=latest&path=docs",
        headers={"Accept": "text/html,*/*;q=0.8"},
        token=r,
    )
    assert b"/chute/snapshots/file?snapshot=" in html.body
    versions = request(server, "GET", "/chute/snapshots/versions?path=docs/note.txt", token=r)
    sizes = [v["size"] for v in versions.json()["versions"]]
    assert sizes[:2] == [6, 15]
    missing = request(server, "GET", "/chute/snapshots/versions?path=nope", token=r)
    assert missing.status == 404
    absent = request(server, "GET", "/chute/snapshots/tree?snapshot=latest&path=docs/nope", token=r)
    assert absent.status == 404 and absent.json()["error"] == "not-found"


def test_file_download_range_and_etag(node: Node, server: str, tmp_path: Path) -> None:
    r = node.tokens["reader"]
    original = (node.home.parent / "docs" / "sub" / "big.bin").read_bytes()
    url = f"{server}/chute/snapshots/file?snapshot=latest&path=docs/sub/big.bin"
    auth = ["-H", f"Authorization: Bearer {r}"]
    whole = subprocess.run(
        ["curl", "-sS", "-f", *auth, "-D", str(tmp_path / "h"), url],
        capture_output=True,
        check=True,
    ).stdout
    assert hashlib.sha256(whole).digest() == hashlib.sha256(original).digest()
    etag = next(
        line.split(":", 1)[1].strip()
        for line in (tmp_path / "h").read_text().splitlines()
        if line.lower().startswith("etag:")
    )
    assert etag == f'"sha256-{hashlib.sha256(original).hexdigest()}"'
    start, end = 3_000_000, 4_500_000
    part = subprocess.run(
        ["curl", "-sS", "-f", *auth, "-r", f"{start}-{end}", url], capture_output=True, check=True
    ).stdout
    assert part == original[start : end + 1]
    code = curl_status_if_none_match(url, auth, etag)
    assert code == "304"
    head = request(
        server, "HEAD", "/chute/snapshots/file?snapshot=latest&path=docs/sub/big.bin", token=r
    )
    assert head.status == 200 and head.header("Content-Length") == str(BIG) and head.body == b""
    beyond = request(
        server,
        "GET",
        "/chute/snapshots/file?snapshot=latest&path=docs/sub/big.bin",
        headers={"Range": f"bytes={BIG}-"},
        token=r,
    )
    assert beyond.status == 416
    old = request(
        server, "GET", "/chute/snapshots/file?snapshot=latest&path=docs/note.txt", token=r
    )
    assert old.body == b"second, longer\n"
    directory = request(server, "GET", "/chute/snapshots/file?snapshot=latest&path=docs", token=r)
    assert directory.status == 404


def test_only_the_covering_chunks_are_decrypted(
    chute: Callable[..., Run], repo_ready: None, tmp_path: Path
) -> None:
    from chute.config import load_settings
    from chute.files import FileReader
    from chute.session import open_repository, read_snapshot

    data = os.urandom(8 << 20)
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "f.bin").write_bytes(data)
    chute("put", str(tmp_path / "t"))
    repo = open_repository(load_settings({}))
    reader = FileReader(repo)
    version = reader.open(read_snapshot(repo, "latest"), "t/f.bin")
    assert len(version.chunks) >= 4
    start, end = 5_000_000, 5_000_100
    assert b"".join(reader.read(version, start, end)) == data[start:end]
    assert reader.stats.decrypted == 1  # incompressible: sizes come from envelope headers
    assert b"".join(reader.read(version, 100, 200)) == data[100:200]
    assert reader.stats.decrypted == 2
    assert b"".join(reader.read(version)) == data


def test_compressible_file_is_seekable_after_one_pass(
    chute: Callable[..., Run], repo_ready: None, tmp_path: Path
) -> None:
    from chute.config import load_settings
    from chute.files import FileReader
    from chute.session import open_repository, read_snapshot

    data = b"".join(b"line %08d of a compressible file\n" % i for i in range(200_000))
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "log.txt").write_bytes(data)
    chute("put", str(tmp_path / "t"))
    repo = open_repository(load_settings({}))
    reader = FileReader(repo)
    version = reader.open(read_snapshot(repo, "latest"), "t/log.txt")
    tail = len(data) - 50
    assert b"".join(reader.read(version, tail)) == data[tail:]
    first = reader.stats.decrypted
    assert b"".join(reader.read(version, 10, 20)) == data[10:20]
    assert reader.stats.decrypted == first + 1


def test_snapshot_now(node: Node, server: str) -> None:
    body = b'{"mount": "docs", "tags": ["web"]}'
    refused = request(server, "POST", "/chute/snapshot", body, {}, node.tokens["reader"])
    assert refused.status == 403
    made = request(server, "POST", "/chute/snapshot", body, {}, node.tokens["admin"])
    assert made.status == 201, made.body
    uri = made.json()["uri"]
    assert made.json()["triples_added"] > 0 and made.json()["graph_seconds"] > 0
    assert made.header("Location") == f"/chute/blob/{made.json()['snapshot']}/"
    listed = request(server, "GET", "/chute/snapshots", token=node.tokens["reader"]).json()
    assert uri in [row["uri"] for row in listed] and listed[-1]["tags"] == ["web"]
    unknown = request(
        server, "POST", "/chute/snapshot", b'{"mount": "/etc"}', {}, node.tokens["admin"]
    )
    assert unknown.status == 404
    bad = request(server, "POST", "/chute/snapshot", b"[1]", {}, node.tokens["admin"])
    assert bad.status == 400


def test_plaintext_routes_need_read(node: Node, server: str) -> None:
    for path in (
        "/chute/snapshots",
        "/chute/snapshots/tree?snapshot=latest",
        "/chute/snapshots/file?snapshot=latest&path=docs/note.txt",
    ):
        assert request(server, "GET", path).status == 401
        assert request(server, "GET", path, token=node.tokens["writer"]).status == 403
