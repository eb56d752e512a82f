"""Settings: options over environment over vars file over config.toml over defaults."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Run

from chute.config import load_settings
from chute.errors import UsageError


def test_defaults_follow_xdg(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHUTE_DOMAIN")
    monkeypatch.delenv("CHUTE_NODE")
    s = load_settings({})
    assert s.repo == str(isolated_home / "data" / "chute" / "repo")
    assert s.graph_path("abc") == isolated_home / "data" / "chute" / "graph" / "abc"
    assert s.cache_root() == isolated_home / "cache" / "chute"
    assert s.default_key_file == isolated_home / "config" / "chute" / "key"
    assert s.domain and s.node and s.base_url == f"https://{s.domain}"


def test_precedence(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = isolated_home / "config" / "chute"
    cfg.mkdir(parents=True)
    (cfg / "config.toml").write_text('repo = "/from/toml"\nnode = "tomlnode"\ndomain = "t.org"\n')
    monkeypatch.delenv("CHUTE_NODE")
    s = load_settings({}, {"CHUTE_REPO": "/from/vars"})
    assert (s.repo, s.node, s.domain) == ("/from/vars", "tomlnode", "example.com")
    monkeypatch.setenv("CHUTE_REPO", "/from/env")
    assert load_settings({}, {"CHUTE_REPO": "/from/vars"}).repo == "/from/env"
    assert load_settings({"repo": "/from/option"}).repo == "/from/option"


def test_compression_is_a_setting(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings({}).compression == 3  # auto
    cfg = isolated_home / "config" / "chute"
    cfg.mkdir(parents=True)
    (cfg / "config.toml").write_text("compression = 'fast'\n")
    assert load_settings({}).compression == 1
    (cfg / "config.toml").write_text("compression = 9\n")
    assert load_settings({}).compression == 9
    (cfg / "config.toml").write_text("compression = 0\n")  # not "unset": off is a word
    with pytest.raises(UsageError, match="not 0"):
        load_settings({})
    (cfg / "config.toml").write_text("compression = 9\n")
    monkeypatch.setenv("CHUTE_COMPRESSION", "off")
    assert load_settings({}).compression == 0
    monkeypatch.setenv("CHUTE_COMPRESSION", "MAX")
    assert load_settings({}).compression == 12
    monkeypatch.setenv("CHUTE_COMPRESSION", "zstd")
    wanted = r"must be off\|fast\|auto\|max or a zstd level 1-19, not 'zstd'"
    with pytest.raises(UsageError, match=wanted):
        load_settings({})


def test_bad_config_is_a_usage_error(isolated_home: Path) -> None:
    cfg = isolated_home / "config" / "chute"
    cfg.mkdir(parents=True)
    (cfg / "config.toml").write_text("colour = 'blue'\n")
    with pytest.raises(UsageError, match="unknown setting"):
        load_settings({})
    (cfg / "config.toml").write_text("repo = [\n")
    with pytest.raises(UsageError, match="cannot read config"):
        load_settings({})


def test_bad_node_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHUTE_NODE", "a/b")
    with pytest.raises(UsageError, match="invalid node"):
        load_settings({})


def test_vars_file_configures_a_put(
    tmp_path: Path, chute: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHUTE_NODE")
    key = tmp_path / "k"
    key.write_bytes(b"k" * 64)
    vars_file = tmp_path / "blimp-vars.sh"
    vars_file.write_text(
        f'export CHUTE_REPO="{tmp_path}/repo with space"\n'
        f"CHUTE_KEY_FILE={key}\n"
        'CHUTE_NODE="$(echo blimp)"\n'
    )
    chute("--vars-file", str(vars_file), "init")
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    out = json.loads(chute("put", "--vars-file", str(vars_file), "--json", str(src)).out)
    assert out["snapshot"].startswith("example.com/blimp/")
    assert (tmp_path / "repo with space" / "config").exists()
