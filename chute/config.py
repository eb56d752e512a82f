"""Settings: where things are and who this node is.

Precedence, highest first: command-line options, environment variables
(`CHUTE_REPO`, `CHUTE_KEY_FILE`, `CHUTE_PASSWORD`, `CHUTE_PASSWORD_FILE`,
`CHUTE_DOMAIN`, `CHUTE_NODE`, `CHUTE_BASE_URL`, `CHUTE_COMPRESSION`, and for
a graph on a SPARQL server `CHUTE_GRAPH`, `CHUTE_GRAPH_UPDATE`,
`CHUTE_GRAPH_USER`, `CHUTE_GRAPH_PASSWORD`, `CHUTE_GRAPH_NAME`), a
`--vars-file` (a shell file sourced by bash; its variables count as
environment variables), the TOML file `$XDG_CONFIG_HOME/chute/config.toml`
(keys `repo`, `key_file`, `password_file`, `domain`, `node`, `base_url`,
`compression`; the tables `[mounts]`, name = path of a tree
`POST /chute/snapshot` may back up, and `[serve]`, settings of `chute
serve`, see `chute.web.settings`), then defaults:

* repository: `$XDG_DATA_HOME/chute/repo`
* key file made by `chute init --generate-key`: `$XDG_CONFIG_HOME/chute/key`
* graph: `$XDG_DATA_HOME/chute/graph/<repository id>`
* caches: `$XDG_CACHE_HOME/chute/<repository id>`
* node and domain: from the host name (`node.example.com` -> node `node`,
  domain `example.com`; a bare host name gets the domain `local`)
* public base URL for IRIs: `https://<domain>`
* API tokens of `chute serve` (hashed): `$XDG_CONFIG_HOME/chute/tokens.json`

The graph and caches are never inside the repository: the repository is
what storage peers hold.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chute.compression import ZSTD_LEVEL
from chute.compression import parse as parse_compression
from chute.crypto import Secret
from chute.errors import UsageError, WrongKey

ENV_KEYS = {
    "repo": "CHUTE_REPO",
    "key_file": "CHUTE_KEY_FILE",
    "password": "CHUTE_PASSWORD",
    "password_file": "CHUTE_PASSWORD_FILE",
    "domain": "CHUTE_DOMAIN",
    "node": "CHUTE_NODE",
    "base_url": "CHUTE_BASE_URL",
    "compression": "CHUTE_COMPRESSION",
    "graph": "CHUTE_GRAPH",
    "graph_update": "CHUTE_GRAPH_UPDATE",
    "graph_user": "CHUTE_GRAPH_USER",
    "graph_password": "CHUTE_GRAPH_PASSWORD",
    "graph_name": "CHUTE_GRAPH_NAME",
}
FILE_KEYS = (
    "repo",
    "key_file",
    "password_file",
    "domain",
    "node",
    "base_url",
    "compression",
    "mounts",
    "serve",
)
GRAPH_FILE_KEYS = ("graph", "graph_update", "graph_user", "graph_name")  # chute.graph_remote


def xdg(kind: str) -> Path:
    """Return an XDG base directory: `data`, `config` or `cache`."""
    env = {"data": "XDG_DATA_HOME", "config": "XDG_CONFIG_HOME", "cache": "XDG_CACHE_HOME"}[kind]
    default = {"data": ".local/share", "config": ".config", "cache": ".cache"}[kind]
    value = os.environ.get(env)
    return Path(value) if value else Path.home() / default


def _clean_segment(text: str, fallback: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._~-]", "-", text).strip(".")
    return cleaned or fallback


def host_identity() -> tuple[str, str]:
    """Return (domain, node) derived from this machine's host name."""
    fqdn = socket.getfqdn() or socket.gethostname()
    node, _, domain = fqdn.partition(".")
    if not domain or domain in ("localdomain", "local"):
        domain = "local"
    return _clean_segment(domain.lower(), "local"), _clean_segment(node, "node")


@dataclass(frozen=True)
class Settings:
    """Resolved settings for one command."""

    repo: str
    domain: str
    node: str
    base_url: str
    key_file: Path | None
    password: str | None
    password_file: Path | None
    mounts: dict[str, str] = field(default_factory=dict)  # name -> path, for POST /chute/snapshot
    serve: dict[str, Any] = field(default_factory=dict)  # config.toml [serve], see chute.web
    graph: str | None = None  # SPARQL query endpoint of a remote graph (chute.graph_remote)
    graph_update: str | None = None  # its update endpoint (default: the query endpoint)
    graph_user: str | None = None
    graph_password: str | None = None
    graph_name: str | None = None  # the named graph (default: from the repository id)
    compression: int = ZSTD_LEVEL  # zstd's level for what puts write (0: off)

    @property
    def default_key_file(self) -> Path:
        return xdg("config") / "chute" / "key"

    @property
    def tokens_file(self) -> Path:
        return xdg("config") / "chute" / "tokens.json"

    def graph_path(self, repo_id: str) -> Path:
        return xdg("data") / "chute" / "graph" / repo_id

    def cache_root(self) -> Path:
        return xdg("cache") / "chute"

    def secret(self, prompt: bool = True) -> Secret:
        """Return the secret that opens the repository, asking on a terminal if needed."""
        if self.key_file is not None:
            return Secret.key_file(self.key_file)
        if self.password_file is not None:
            return Secret.passphrase(_first_line(self.password_file))
        if self.password is not None:
            return Secret.passphrase(self.password)
        if self.default_key_file.exists():
            return Secret.key_file(self.default_key_file)
        if prompt and sys.stdin.isatty():
            return Secret.passphrase(getpass.getpass("chute passphrase: "))
        raise WrongKey(
            "no key given: use --key-file, CHUTE_KEY_FILE, CHUTE_PASSWORD or CHUTE_PASSWORD_FILE"
        )


def _first_line(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").splitlines()[0]
    except (OSError, IndexError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read a passphrase from {path}") from exc


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read config {path}: {exc}") from exc
    unknown = set(data) - set(FILE_KEYS) - set(GRAPH_FILE_KEYS)
    if unknown:
        raise UsageError(f"unknown setting(s) in {path}: {', '.join(sorted(unknown))}")
    return data


def load_settings(options: dict[str, Any], extra_env: dict[str, str] | None = None) -> Settings:
    """Resolve settings from options, environment, vars file and config file."""
    env = dict(extra_env or {})
    env.update({k: v for k, v in os.environ.items() if k.startswith("CHUTE_")})
    file = _read_toml(xdg("config") / "chute" / "config.toml")

    def pick(key: str) -> Any:
        if options.get(key) not in (None, ""):
            return options[key]
        if key in ENV_KEYS and env.get(ENV_KEYS[key]):
            return env[ENV_KEYS[key]]
        return file.get(key)

    domain_default, node_default = host_identity()
    domain = str(pick("domain") or domain_default)
    node = str(pick("node") or node_default)
    for label, value in (("domain", domain), ("node", node)):
        if not re.fullmatch(r"[A-Za-z0-9._~-]{1,255}", value) or value in (".", ".."):
            raise UsageError(f"invalid {label}: {value!r}")
    key_file, password_file = pick("key_file"), pick("password_file")
    return Settings(
        repo=str(pick("repo") or xdg("data") / "chute" / "repo"),
        domain=domain,
        node=node,
        base_url=str(pick("base_url") or f"https://{domain}").rstrip("/"),
        key_file=Path(key_file).expanduser() if key_file else None,
        password=pick("password"),
        password_file=Path(password_file).expanduser() if password_file else None,
        mounts=_table(file, "mounts"),
        serve=_table(file, "serve"),
        graph=pick("graph") or None,
        graph_update=pick("graph_update") or None,
        graph_user=pick("graph_user") or None,
        graph_password=pick("graph_password") or None,
        graph_name=pick("graph_name") or None,
        compression=parse_compression(_given(pick("compression"), "auto")),
    )


def _given(value: Any, default: str) -> Any:
    """Return a setting as given, or `default` if it is unset (a TOML 0 stays 0)."""
    return default if value is None or value == "" else value


def _table(file: dict[str, Any], key: str) -> dict[str, Any]:
    value = file.get(key, {})
    if not isinstance(value, dict):
        raise UsageError(f"config.toml: `{key}` must be a table")
    return dict(value)
