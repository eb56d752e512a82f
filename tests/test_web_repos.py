"""The repository routes (`/chute/repo/<domain>/<node>/...`) in process: checks, scopes, spaces."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import falcon.testing
import pyoxigraph as ox
import pytest

from chute.store.local import LocalStore
from chute.store.wire import format_numbers, parse_numbers
from chute.web.app import create_app
from chute.web.held import apply_held, held_quads
from chute.web.settings import ServeSettings
from chute.web.tokens import TokenStore, parse_prefixes

N = 4096
SPACE = "/chute/repo/example.org/alpha"
BLOB = "example.org/alpha/srv/20260101T000000Z"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob(size: int, seed: int = 1) -> tuple[bytes, bytes]:
    stream = bytes((seed + i * 7) % 251 for i in range(size))
    windows = [stream[i : i + N] for i in range(0, size, N)]
    index = {
        "version": 1,
        "domain": "example.org",
        "node": "alpha",
        "mount": "srv",
        "timestamp": "20260101T000000Z",
        "size": size,
        "checksum": sha(stream),
        "window": N,
        "windows": [sha(w) for w in windows],
    }
    return stream, json.dumps(index).encode()


class Env:
    def __init__(self, tmp_path: Path, append_only: bool = False) -> None:
        self.tokens = TokenStore(tmp_path / "tokens.json")
        self.secrets = {
            "w": self.tokens.add("w", frozenset({"write"})),
            "wd": self.tokens.add("wd", frozenset({"write", "delete"})),
            "r": self.tokens.add("r", frozenset({"read"})),
            "beta": self.tokens.add(
                "beta", frozenset({"write"}), parse_prefixes(["example.org/beta"])
            ),
        }
        serve = ServeSettings(held_dir=str(tmp_path / "held"), append_only=append_only)
        self.own = LocalStore(tmp_path / "own")
        app = create_app(self.own, serve, self.tokens, None, ("example.org", "me"))
        self.client = falcon.testing.TestClient(app)
        self.held = tmp_path / "held"

    def call(
        self,
        method: str,
        path: str,
        token: str = "wd",
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> falcon.testing.Result:
        return self.client.simulate_request(
            method,
            path,
            body=body,
            params=params,
            headers={"Authorization": f"Bearer {self.secrets[token]}", **(headers or {})},
        )


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def test_windows_in_one_body_then_the_index(env: Env) -> None:
    stream, index = blob(3 * N + 100)
    windows = [stream[i : i + N] for i in range(0, len(stream), N)]
    hashes = ",".join(sha(w) for w in windows)
    early = env.call("PUT", f"{SPACE}/{BLOB}/index.json", body=index)
    assert early.status_code == 422
    bad_length = env.call(
        "PUT", f"{SPACE}/{BLOB}/0/{N}/0", body=stream[:-200], headers={"Chute-Windows": hashes}
    )
    assert bad_length.status_code == 400
    wrong = ",".join([sha(windows[0]), sha(b"x"), *hashes.split(",")[2:]])
    broken = env.call(
        "PUT", f"{SPACE}/{BLOB}/0/{N}/0", body=stream, headers={"Chute-Windows": wrong}
    )
    assert broken.status_code == 422
    assert (env.held / "example.org/alpha" / BLOB / "0" / str(N) / "0").exists()  # kept: verified
    assert not (env.held / "example.org/alpha" / BLOB / "0" / str(N) / "1").exists()
    rest = env.call(
        "PUT",
        f"{SPACE}/{BLOB}/0/{N}/1",
        body=stream[N:],
        headers={"Chute-Windows": ",".join(hashes.split(",")[1:])},
    )
    assert rest.status_code == 201 and rest.json == {"windows": 3, "new": 3}
    done = env.call("PUT", f"{SPACE}/{BLOB}/index.json", body=index)
    assert done.status_code == 201
    assert env.call("PUT", f"{SPACE}/{BLOB}/index.json", body=index).status_code == 200
    several = env.call("GET", f"{SPACE}/{BLOB}/0/{N}/1", params={"count": "9"})
    assert several.content == stream[N:]
    assert several.headers["Chute-Window-Sizes"] == f"{N},{N},100"
    digest = env.call("GET", f"{SPACE}/{BLOB}/0/{N}/3", params={"digest": "sha256"})
    assert digest.json == {"sha256": sha(windows[3]), "size": 100}
    ranged = env.call("GET", f"{SPACE}/{BLOB}/0/{N}/0", headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206 and ranged.content == stream[10:20]
    listed = env.call("GET", f"{SPACE}/", params={"prefix": BLOB}).json
    assert listed == [f"{BLOB}/0/{N}/{m}" for m in range(4)] + [f"{BLOB}/index.json"]
    # The same blob through the blob routes: one repository, two ways in.
    assert env.call("GET", f"/chute/blob/{BLOB}/0", token="r").content == stream
    assert [b["path"] for b in env.call("GET", "/chute/blob/", token="r").json] == [BLOB]


def test_pruned_windows_may_be_absent(env: Env) -> None:
    stream, index = blob(3 * N)
    for m in (0, 2):
        part = stream[m * N : (m + 1) * N]
        env.call("PUT", f"{SPACE}/{BLOB}/0/{N}/{m}", body=part, headers={"Chute-Sha256": sha(part)})
    assert env.call("PUT", f"{SPACE}/{BLOB}/index.json", body=index).status_code == 422
    wrong = env.call("PUT", f"{SPACE}/{BLOB}/index.json", body=index, headers={"Chute-Pruned": "0"})
    assert wrong.status_code == 422  # window 1 is missing and not said to be pruned
    ok = env.call("PUT", f"{SPACE}/{BLOB}/index.json", body=index, headers={"Chute-Pruned": "1"})
    assert ok.status_code == 201


def test_a_pack_index_names_no_blob(env: Env) -> None:
    data = b"p" * 5000
    pack = "packs/20260101T000000Z-abcd"
    windows = [data[:N], data[N:]]
    for m, part in enumerate(windows):
        env.call("PUT", f"{SPACE}/{pack}/0/{N}/{m}", body=part, headers={"Chute-Sha256": sha(part)})
    index = {
        "kind": "pack",
        "timestamp": "20260101T000000Z",
        "size": len(data),
        "checksum": sha(data),
        "window": N,
        "windows": [sha(w) for w in windows],
    }
    body = json.dumps(index).encode()
    assert env.call("PUT", f"{SPACE}/{pack}/index.json", body=body).status_code == 201
    misplaced = env.call("PUT", f"{SPACE}/other/index.json", body=blob(10)[1])
    assert misplaced.status_code == 400  # a snapshot's index under another name


def test_objects_replace_delete_and_scopes(env: Env) -> None:
    assert env.call("PUT", f"{SPACE}/config", token="w", body=b"{}").status_code == 201
    assert env.call("PUT", f"{SPACE}/config", token="w", body=b"{}").status_code == 200
    assert env.call("PUT", f"{SPACE}/config", token="w", body=b"[]").status_code == 409
    refused = env.call("PUT", f"{SPACE}/config", token="w", body=b"[]", params={"replace": "1"})
    assert refused.status_code == 403
    replaced = env.call("PUT", f"{SPACE}/config", body=b"[]", params={"replace": "1"})
    assert replaced.status_code == 200
    assert env.call("DELETE", f"{SPACE}/config", token="w").status_code == 403
    assert env.call("PUT", f"{SPACE}/locks/a", token="w", body=b"1").status_code == 201
    lock = env.call("PUT", f"{SPACE}/locks/a", token="w", body=b"2", params={"replace": "1"})
    assert lock.status_code == 200
    assert env.call("DELETE", f"{SPACE}/locks/a", token="w").json == {"deleted": True}
    assert env.call("PUT", f"{SPACE}/x", token="r", body=b"1").status_code == 403
    bad = env.call("PUT", f"{SPACE}/y", body=b"1", headers={"Chute-Sha256": sha(b"2")})
    assert bad.status_code == 422
    window = env.call("PUT", f"{SPACE}/{BLOB}/0/{N}/0", body=b"1", params={"replace": "1"})
    assert window.status_code == 400
    for path in (f"{SPACE}/../x", f"{SPACE}/a//b", "/chute/repo/keys/alpha/x", f"{SPACE}/.tmp/x"):
        assert 400 <= env.call("PUT", path, body=b"1").status_code < 500, path


def test_append_only_keeps_everything_but_locks(tmp_path: Path) -> None:
    env = Env(tmp_path, append_only=True)
    env.call("PUT", f"{SPACE}/keys/k", body=b"k")
    assert env.call("DELETE", f"{SPACE}/keys/k").status_code == 403
    assert env.call("PUT", f"{SPACE}/keys/k", body=b"j", params={"replace": "1"}).status_code == 403
    env.call("PUT", f"{SPACE}/locks/l", body=b"1")
    assert env.call("DELETE", f"{SPACE}/locks/l").status_code == 200


def test_tokens_limited_to_a_node(env: Env) -> None:
    beta = "/chute/repo/example.org/beta"
    assert env.call("PUT", f"{beta}/config", token="beta", body=b"{}").status_code == 201
    assert env.call("GET", f"{SPACE}/", token="beta").status_code == 403
    assert env.call("PUT", f"{SPACE}/config", token="beta", body=b"{}").status_code == 403
    assert env.call("GET", "/chute/repo/example.org/me/", token="beta").status_code == 403
    assert env.call("GET", "/chute/blob/", token="beta").json == []
    assert env.call("GET", "/chute/openapi.json", token="beta").status_code == 200


def test_own_identity_reaches_the_own_repository(env: Env) -> None:
    env.call("PUT", "/chute/repo/example.org/me/config", body=b"{}")
    assert env.own.get("config") == b"{}"
    assert not (env.held / "example.org" / "me").exists()


def test_held_triples_describe_what_is_held(env: Env) -> None:
    stream, index = blob(N + 1)
    env.call(
        "PUT", f"{SPACE}/{BLOB}/0/{N}/0", body=stream[:N], headers={"Chute-Sha256": sha(stream[:N])}
    )
    env.call(
        "PUT", f"{SPACE}/{BLOB}/0/{N}/1", body=stream[N:], headers={"Chute-Sha256": sha(stream[N:])}
    )
    env.call("PUT", f"{SPACE}/{BLOB}/index.json", body=index)
    env.call("PUT", f"{SPACE}/{BLOB}/forgotten", body=b"sealed")
    store = ox.Store()
    apply_held(store, held_quads(env.held, "https://peer.example"))
    apply_held(store, held_quads(env.held, "https://peer.example"))  # replaced, not doubled
    rows = list(
        store.query(
            "PREFIX chute: <https://w3id.org/chute/ns#> SELECT ?b ?size ?n ?gone WHERE "
            "{ ?b a chute:HeldBlob ; chute:streamSize ?size ; chute:windowCount ?n ; "
            "chute:forgotten ?gone ; chute:heldIn/chute:ownerNode ?node }"
        )
    )
    assert len(rows) == 1
    assert rows[0]["b"].value == f"https://peer.example/chute/repo/example.org/alpha/{BLOB}/"
    assert int(rows[0]["size"].value) == N + 1 and int(rows[0]["n"].value) == 2


def test_window_numbers_round_trip() -> None:
    assert format_numbers([5, 3, 6, 7, 12, 9, 8]) == "3,5-9,12"
    assert parse_numbers("3, 5-9,12") == frozenset({3, 5, 6, 7, 8, 9, 12})
    assert format_numbers([]) == ""
    for bad in ("", "x", "3-1", "1,,2", "-1", "0-99999999999"):
        with pytest.raises(Exception, match="window"):
            parse_numbers(bad)
