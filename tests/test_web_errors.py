"""One JSON error shape for every 4xx and 5xx the app answers (datasette's test_error_shape).

A body over `max_body` is refused by waitress itself, before the app runs
(plain-text 413); behind nginx, `client_max_body_size` and the example's
`error_page` answer it in the JSON shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import falcon.testing
import pytest
from webutil import Node, make_node, request

from chute.store.local import LocalStore
from chute.web.app import create_app
from chute.web.settings import ServeSettings

SHAPE = {"error", "status", "message"}
BLOB = "/chute/blob/a.org/n/m/20260101T000000Z"

REQUESTS = [
    ("GET", "/nowhere", None, {}),
    ("GET", "/chute/", None, {}),
    ("PATCH", "/chute/blob/", None, {}),
    ("DELETE", "/chute/openapi.json", None, {}),
    ("POST", "/chute/blob/", b"{", {}),
    ("PUT", f"{BLOB}/0/4096/0", b"x" * 5000, {"Chute-Sha256": "0" * 64}),
    ("GET", f"{BLOB}/index.json", None, {}),
    ("POST", f"{BLOB}/0", b"", {}),
    ("PUT", f"{BLOB}/0", b"abc", {"Content-Range": "bytes x"}),
    ("PUT", f"{BLOB}/0", b"abc", {"Chute-Sha256": "zz"}),
    ("PUT", f"{BLOB}/0/4096/0", b"abc", {"Chute-Sha256": "0" * 64}),
    ("GET", f"{BLOB}/0/4096/0/hash/sha256", None, {}),
    ("GET", f"{BLOB}/0/4096/0/hash/md5", None, {}),
    ("DELETE", f"{BLOB}/", None, {}),
    ("GET", "/chute/sparql", None, {}),
    ("GET", "/chute/sparql?query=ASK%20%7B", None, {}),
    ("POST", "/chute/sparql", b"q", {"Content-Type": "image/png"}),
    ("GET", "/chute/snapshots/tree", None, {}),
    ("GET", "/chute/snapshots/tree?snapshot=19990101", None, {}),
    ("GET", "/chute/snapshots/file?snapshot=latest&path=%00", None, {}),
    ("GET", "/chute/snapshots/versions", None, {}),
    ("POST", "/chute/snapshot", b"{}", {}),
    ("PUT", "/chute/snapshot", b"{}", {}),
]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Node:
    home = tmp_path_factory.mktemp("errors") / "home"
    found = make_node(home)
    (home / "t").mkdir()
    (home / "t" / "x").write_text("x")
    found.run("put", str(home / "t"))
    found.add_token("admin", "admin")
    return found


@pytest.fixture(scope="module")
def server(node: Node) -> Iterator[str]:
    with node.serve() as base:
        yield base


@pytest.mark.parametrize(("method", "path", "body", "headers"), REQUESTS)
def test_every_error_has_the_one_shape(
    node: Node, server: str, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> None:
    for token in (None, node.tokens["admin"]):
        resp = request(server, method, path, body, headers, token)
        assert resp.status >= 400, (method, path, resp.status)
        assert resp.header("Content-Type") == "application/json"
        doc = resp.json()
        assert set(doc) == SHAPE
        assert doc["status"] == resp.status
        assert doc["error"] and doc["error"] == doc["error"].lower() and " " not in doc["error"]
        assert "\n" not in doc["message"] and "Traceback" not in doc["message"]


class BrokenStore(LocalStore):
    """A store with a bug: the one way to reach the 500 path on purpose."""

    def list(self, prefix: str = "") -> Iterator[str]:
        raise RuntimeError("a bug with a secret detail")


def test_a_bug_is_a_500_in_the_same_shape(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(BrokenStore(tmp_path / "r"), ServeSettings(), None)
    result = falcon.testing.TestClient(app).simulate_get("/chute/blob/")
    assert result.status_code == 500
    assert result.json == {
        "error": "internal",
        "status": 500,
        "message": "internal server error (logged on the server)",
    }
    assert "secret detail" in caplog.text  # logged with its traceback, not sent
