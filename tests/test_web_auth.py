"""Tokens: `chute token ...`, hashed storage, scopes, revocation on a running server, --no-auth."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Run
from webutil import make_node, request

from chute.web.settings import SETTINGS, ServeSettings, load_serve_settings


def test_token_cli(chute: Callable[..., Run], isolated_home: Path) -> None:
    added = chute("token", "add", "peer-b", "--scope", "write,delete")
    secret = added.out.strip().splitlines()[-1]
    assert secret.startswith("chute_") and len(secret) > 40
    stored = (isolated_home / "config" / "chute" / "tokens.json").read_text()
    assert secret not in stored and "peer-b" in stored
    assert (isolated_home / "config" / "chute" / "tokens.json").stat().st_mode & 0o077 == 0
    listed = json.loads(chute("token", "list", "--json").out)
    assert listed[0]["name"] == "peer-b" and listed[0]["scopes"] == ["delete", "write"]
    assert secret not in chute("token", "list").out
    assert chute("token", "add", "peer-b", ok=False).code == 2
    assert chute("token", "add", "x", "--scope", "root", ok=False).code == 2
    assert chute("token", "add", "../x", ok=False).code == 2
    chute("token", "revoke", "peer-b")
    assert chute("token", "revoke", "peer-b", ok=False).code == 14


def test_missing_revoked_and_underscoped_tokens(tmp_path: Path) -> None:
    node = make_node(tmp_path / "home")
    writer = node.add_token("writer", "write")
    reader = node.add_token("reader", "read")
    with node.serve("--blobs-only") as base:
        assert request(base, "GET", "/chute/blob/", token=writer).status == 200
        assert request(base, "GET", "/chute/blob/", token=reader).status == 200
        missing = request(base, "GET", "/chute/blob/")
        assert (
            missing.status == 401 and missing.header("WWW-Authenticate") == 'Bearer realm="chute"'
        )
        assert (
            request(base, "GET", "/chute/blob/", headers={"Authorization": "Basic eDp5"}).status
            == 401
        )
        assert (
            request(
                base, "PUT", "/chute/blob/a/b/c/20260101T000000Z/0/4096/0", b"x", token=reader
            ).status
            == 403
        )
        assert (
            request(base, "DELETE", "/chute/blob/a/b/c/20260101T000000Z/", token=writer).status
            == 403
        )
        node.run("token", "revoke", "writer")
        revoked = request(base, "GET", "/chute/blob/", token=writer)
        assert revoked.status == 401 and revoked.json()["error"] == "unauthorized"
        assert request(base, "GET", "/chute/openapi.json").status == 200  # public


def test_no_auth_only_on_loopback(tmp_path: Path) -> None:
    node = make_node(tmp_path / "home", init=False)
    refused = node.run("serve", "--no-auth", "--blobs-only", "--bind", "0.0.0.0:0", check=False)
    assert refused.returncode == 2 and "loopback" in refused.stderr
    with node.serve("--no-auth", "--blobs-only") as base:
        assert request(base, "GET", "/chute/blob/").status == 200


def test_settings_precedence_and_validation() -> None:
    file = {"threads": 3, "append_only": True}
    env = {"CHUTE_SERVE_THREADS": "5", "CHUTE_SERVE_QUERY_TIME_LIMIT": "2.5"}
    got = load_serve_settings(file, env, {"threads": 7})
    assert (got.threads, got.append_only, got.query_time_limit) == (7, True, 2.5)
    assert load_serve_settings(file, env, {}).threads == 5
    assert load_serve_settings({}, {}, {}) == ServeSettings()
    for bad in ({"nope": 1}, {"threads": "many"}, {"bind": "nowhere"}, {"threads": 0}):
        with pytest.raises(Exception, match=r"setting|bind|must"):
            load_serve_settings(bad, {}, {})


def test_every_setting_is_documented(chute: Callable[..., Run]) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    listed = chute("serve", "--list-settings").out
    for name, field in SETTINGS.items():
        assert field.metadata["help"], name
        assert f"`{name}`" in readme, f"README lacks the setting {name}"
        assert name in listed
