"""The blob API under real waitress: windows first, index.json last, verified, immutable.

curl drives the parts a person would use from a shell (Range, Content-Range
PUT, If-None-Match); the rest goes through http.client with paths sent
exactly as written.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from webutil import (
    Node,
    curl_status_if_none_match,
    digest_header,
    make_node,
    request,
    sha256,
)

WINDOW = 65536
DOMAIN, NODE = "peer.example.org", "alpha"


def blob_name(ts: str, mount: str = "srv/data") -> str:
    return f"{DOMAIN}/{NODE}/{mount}/{ts}"


def make_blob(size: int, ts: str, seed: int = 1, mount: str = "srv/data") -> tuple[bytes, bytes]:
    """Return (stream, index.json) of an opaque blob as a client would send them."""
    stream = os.urandom(size) if seed else b""
    windows = [stream[i : i + WINDOW] for i in range(0, size, WINDOW)]
    index = {
        "version": 1,
        "domain": DOMAIN,
        "node": NODE,
        "mount": mount,
        "timestamp": ts,
        "parent": None,
        "shards": len(windows),
        "size": size,
        "checksum": sha256(stream),
        "encrypted": True,
        "window": WINDOW,
        "windows": [sha256(w) for w in windows],
        "salt": "c2FsdHNhbHRzYWx0c2FsdHNhbHRzYWx0",
        "sealed": "b3BhcXVl",
    }
    return stream, json.dumps(index, indent=1).encode()


def put_windows(base: str, token: str, name: str, stream: bytes) -> None:
    for m, start in enumerate(range(0, len(stream), WINDOW)):
        part = stream[start : start + WINDOW]
        resp = request(
            base, "PUT", f"/chute/blob/{name}/0/{WINDOW}/{m}", part, digest_header(part), token
        )
        assert resp.status in (200, 201), resp.body
        assert resp.json() is True


def files_of(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Node:
    found = make_node(tmp_path_factory.mktemp("blobs") / "home")
    found.add_token("writer", "write")
    found.add_token("reader", "read")
    found.add_token("deleter", "write,delete")
    return found


@pytest.fixture(scope="module")
def server(node: Node) -> Iterator[str]:
    with node.serve("--blobs-only") as base:
        yield base


def test_windows_first_then_index(node: Node, server: str) -> None:
    w = node.tokens["writer"]
    stream, index = make_blob(3 * WINDOW + 1000, "20260101T000000Z")
    name = blob_name("20260101T000000Z")
    early = request(server, "POST", "/chute/blob/", index, {"Content-Type": "application/json"}, w)
    assert early.status == 422 and early.json()["error"] == "integrity"
    assert name not in [b["path"] for b in request(server, "GET", "/chute/blob/", token=w).json()]
    put_windows(server, w, name, stream)
    done = request(server, "POST", "/chute/blob/", index, {"Content-Type": "application/json"}, w)
    assert done.status == 201
    assert done.header("Location") == f"/chute/blob/{name}/"
    listed = request(server, "GET", f"/chute/blob/?domain={DOMAIN}&node={NODE}", token=w).json()
    assert [b["path"] for b in listed] == [name]
    again = request(server, "POST", "/chute/blob/", index, {}, w)
    assert again.status == 200  # identical: fine
    got = request(server, "GET", f"/chute/blob/{name}/0", token=w)
    assert got.status == 200 and got.body == stream
    info = request(
        server, "GET", f"/chute/blob/{name}/0", headers={"Accept": "application/json"}, token=w
    ).json()
    assert info == {"sha256": sha256(stream), "size": len(stream)}
    for m in range(4):
        h = request(server, "GET", f"/chute/blob/{name}/0/{WINDOW}/{m}/hash/sha256", token=w)
        assert h.json()["sha256"] == sha256(stream[m * WINDOW : (m + 1) * WINDOW])
    absent = request(server, "GET", f"/chute/blob/{name}/0/{WINDOW}/9/hash/sha256", token=w)
    assert absent.status == 404
    described = request(server, "GET", f"/chute/blob/{name}/", token=w).json()
    assert described["size"] == len(stream) and described["windows"] == 4


def test_curl_content_range_put_range_get_and_etag(node: Node, server: str, tmp_path: Path) -> None:
    w = node.tokens["writer"]
    ts = "20260102T000000Z"
    stream, index = make_blob(2 * WINDOW + 5, ts)
    name = blob_name(ts)
    url = f"{server}/chute/blob/{name}/0"
    auth = ["-H", f"Authorization: Bearer {w}"]
    parts = [(0, 2 * WINDOW), (2 * WINDOW, len(stream))]
    answers = []
    for start, end in parts:
        body = tmp_path / f"part{start}"
        body.write_bytes(stream[start:end])
        out = subprocess.run(
            [
                "curl",
                "-sS",
                "-X",
                "PUT",
                "--data-binary",
                f"@{body}",
                *auth,
                "-H",
                f"Content-Range: bytes {start}-{end - 1}/{len(stream)}",
                "-H",
                f"Chute-Sha256: {sha256(stream[start:end])}",
                "-H",
                f"Chute-Window: {WINDOW}",
                "-H",
                "Content-Type: application/octet-stream",
                "-w",
                "\n%{http_code}",
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        answers.append((out[-1], out[0]))
    assert answers == [("201", "false"), ("201", "true")]
    assert request(server, "POST", "/chute/blob/", index, {}, w).status == 201
    ranged = subprocess.run(
        ["curl", "-sS", *auth, "-r", "70000-140000", "-D", str(tmp_path / "h"), url],
        capture_output=True,
        check=True,
    ).stdout
    headers = (tmp_path / "h").read_text()
    assert headers.startswith("HTTP/1.1 206")
    assert f"Content-Range: bytes 70000-131076/{len(stream)}" in headers
    assert ranged == stream[70000:131077]
    index_url = f"{server}/chute/blob/{name}/index.json"
    first = subprocess.run(
        ["curl", "-sS", *auth, "-D", "-", "-o", "/dev/null", index_url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    etag = next(
        line.split(":", 1)[1].strip()
        for line in first.splitlines()
        if line.lower().startswith("etag:")
    )
    code = curl_status_if_none_match(index_url, auth, etag)
    assert code == "304"


def test_wrong_hash_stores_nothing(node: Node, server: str) -> None:
    w = node.tokens["writer"]
    name = blob_name("20260103T000000Z")
    data = os.urandom(WINDOW)
    before = files_of(node.repo)
    bad = request(
        server,
        "PUT",
        f"/chute/blob/{name}/0/{WINDOW}/0",
        data,
        {"Chute-Sha256": sha256(b"other")},
        w,
    )
    assert bad.status == 422 and bad.json()["error"] == "integrity"
    missing = request(server, "PUT", f"/chute/blob/{name}/0/{WINDOW}/0", data, {}, w)
    assert missing.status == 400
    stream = request(
        server,
        "PUT",
        f"/chute/blob/{name}/0",
        data * 3,
        {"Chute-Sha256": sha256(b"x"), "Chute-Window": str(WINDOW)},
        w,
    )
    assert stream.status == 422
    assert files_of(node.repo) == before


def test_immutable_windows_and_index(node: Node, server: str) -> None:
    w = node.tokens["writer"]
    ts = "20260104T000000Z"
    stream, index = make_blob(WINDOW, ts)
    name = blob_name(ts)
    put_windows(server, w, name, stream)
    same = request(
        server, "PUT", f"/chute/blob/{name}/0/{WINDOW}/0", stream, digest_header(stream), w
    )
    assert same.status == 200
    other = os.urandom(WINDOW)
    clash = request(
        server, "PUT", f"/chute/blob/{name}/0/{WINDOW}/0", other, digest_header(other), w
    )
    assert clash.status == 409 and clash.json()["error"] == "conflict"
    assert request(server, "POST", "/chute/blob/", index, {}, w).status == 201
    changed = json.loads(index)
    changed["parent"] = "x"
    again = request(server, "POST", "/chute/blob/", json.dumps(changed).encode(), {}, w)
    assert again.status == 409
    late = request(
        server, "PUT", f"/chute/blob/{name}/0/{WINDOW}/1", other, digest_header(other), w
    )
    assert late.status == 409


def test_bad_requests_are_4xx(node: Node, server: str) -> None:
    w = node.tokens["writer"]
    name = blob_name("20260105T000000Z")
    url = f"/chute/blob/{name}/0"
    data = os.urandom(1000)
    cases = [
        ("PUT", url, data, {"Content-Range": "bytes 5-1/10", **digest_header(data)}, 400),
        ("PUT", url, data, {"Content-Range": "bytes 0-999/*", **digest_header(data)}, 400),
        ("PUT", url, data, {"Content-Range": "bytes=0-999/1000", **digest_header(data)}, 400),
        (
            "PUT",
            url,
            data,
            {
                "Content-Range": "bytes 1-1000/2000",
                **digest_header(data),
                "Chute-Window": str(WINDOW),
            },
            400,
        ),
        ("PUT", url, data, {"Content-Digest": "sha-256=:nope:"}, 400),
        ("PUT", f"/chute/blob/{name}/0/{WINDOW}/0", os.urandom(WINDOW + 1), {}, 413),
        ("PUT", f"/chute/blob/{name}/0/100/0", data, digest_header(data), 400),
        ("POST", "/chute/blob/", b"{not json", {}, 400),
        ("POST", "/chute/blob/", b"[]", {}, 400),
        ("POST", "/chute/blob/", b'{"domain": "a"}', {}, 400),
        ("POST", "/chute/blob/", b"\xff\xfe", {}, 400),
        ("PUT", f"/chute/blob/{name}/index.json", b"{}", {}, 405),
        ("GET", f"/chute/blob/{name}/0", None, {}, 404),
        ("GET", "/chute/blob/a/b/c/20260101T000000Z/0", None, {"Range": "bytes=0-1"}, 404),
    ]
    for method, path, body, headers, status in cases:
        resp = request(server, method, path, body, headers, w)
        assert resp.status == status, (method, path, headers, resp.status, resp.body)
        assert set(resp.json()) == {"error", "status", "message"}


def test_range_not_satisfiable(node: Node, server: str) -> None:
    w = node.tokens["writer"]
    ts = "20260106T000000Z"
    stream, index = make_blob(1000, ts)
    name = blob_name(ts)
    put_windows(server, w, name, stream)
    request(server, "POST", "/chute/blob/", index, {}, w)
    resp = request(
        server, "GET", f"/chute/blob/{name}/0", headers={"Range": "bytes=5000-"}, token=w
    )
    assert resp.status == 416
    assert resp.header("Content-Range") == "bytes */1000"
    suffix = request(
        server, "GET", f"/chute/blob/{name}/0", headers={"Range": "bytes=-10"}, token=w
    )
    assert suffix.status == 206 and suffix.body == stream[-10:]


HOSTILE = [
    "/chute/blob/../../etc/passwd",
    "/chute/blob/a/../../b/c/20260101T000000Z/0",
    "/chute/blob/%2e%2e/%2e%2e/x/20260101T000000Z/0",
    "/chute/blob/%252e%252e/b/c/20260101T000000Z/0",
    "/chute/blob/a%2F..%2F..%2Fx/b/c/20260101T000000Z/0",
    "/chute/blob/a/b/c%00/20260101T000000Z/0",
    "/chute/blob/a/b/c%2500/20260101T000000Z/0",
    "/chute/blob/a/b/c%5c..%5c/20260101T000000Z/0",
    "/chute/blob/a/b/..%5c..%5c/20260101T000000Z/0",
    "/chute/blob//etc/x/y/20260101T000000Z/0",
    "/chute/blob/a//b/c/20260101T000000Z/0",
    "/chute/blob/.tmp/b/c/20260101T000000Z/0",
    "/chute/blob/keys/b/c/20260101T000000Z/0",
    "/chute/blob/a/b/c/notatime/0",
    "/chute/blob/a/b/c/20260101T000000Z/0/%2e%2e/1",
    "/chute/blob/a/b/c/20260101T000000Z/0/065536/1",
    "/chute/blob/a/b/c/20260101T000000Z/0/-1/1",
    "/chute/blob/a/b/c/20260101T000000Z/0/99999999999999999999/1",
    "/chute/blob/a/b/c/20260101T000000Z/1",
    "/chute/blob/a/b/c/20260101T000000Z/%ZZ/0",
    "/chute/blob/a/b/c/20260101T000000Z/0%0a",
    "/chute/blob/a/b/c/" + "x" * 1100 + "/20260101T000000Z/0",
]


@pytest.mark.parametrize("path", HOSTILE)
def test_hostile_paths_touch_nothing(node: Node, server: str, path: str) -> None:
    w = node.tokens["writer"]
    outside = node.home.parent
    before = files_of(outside)
    data = os.urandom(100)
    for method, body in (("PUT", data), ("GET", None), ("DELETE", None)):
        resp = request(
            server,
            method,
            path,
            body,
            {**digest_header(data), "Content-Range": "bytes 0-99/100", "Chute-Window": str(WINDOW)},
            w,
        )
        assert 400 <= resp.status < 500, (method, path, resp.status, resp.body)
        assert set(resp.json()) == {"error", "status", "message"}
    after = {f for f in files_of(outside) if "/serve-" not in f and not f.startswith("home/cache")}
    assert after == {f for f in before if "/serve-" not in f and not f.startswith("home/cache")}


def test_delete_needs_scope_and_not_append_only(node: Node, server: str) -> None:
    w, d = node.tokens["writer"], node.tokens["deleter"]
    ts = "20260107T000000Z"
    stream, index = make_blob(WINDOW + 10, ts)
    name = blob_name(ts)
    put_windows(server, w, name, stream)
    request(server, "POST", "/chute/blob/", index, {}, w)
    assert request(server, "DELETE", f"/chute/blob/{name}/", token=w).status == 403
    assert (
        request(server, "GET", f"/chute/blob/{name}/0", token=node.tokens["reader"]).status == 200
    )
    with node.serve("--blobs-only", "--append-only") as append_only:
        refused = request(append_only, "DELETE", f"/chute/blob/{name}/", token=d)
        assert refused.status == 403 and "append-only" in refused.json()["message"]
    gone = request(server, "DELETE", f"/chute/blob/{name}/", token=d)
    assert gone.status == 200 and gone.json() == {"deleted": 3}
    assert request(server, "GET", f"/chute/blob/{name}/index.json", token=w).status == 404
    assert not (node.repo / name).exists() or not any((node.repo / name).rglob("*.json"))
    assert request(server, "DELETE", f"/chute/blob/{name}/", token=d).status == 404
