"""The settings of `chute serve`, declared as data with their help text.

Each field's `metadata["help"]` is its documentation: `chute serve --help`,
`chute serve --settings` and the README's table are made from it, and a
test fails when a setting is undocumented. Precedence, highest first:
command-line options, environment variables `CHUTE_SERVE_<NAME>` (upper
case), the `[serve]` table of `config.toml`, then the defaults below.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from chute.errors import UsageError


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class ServeSettings:
    """Limits and switches of one server."""

    bind: str = _setting("127.0.0.1:2002", "Address to listen on, HOST:PORT ([::1]:PORT for IPv6).")
    threads: int = _setting(8, "Worker threads of waitress (requests served at once).")
    connection_limit: int = _setting(100, "Open connections waitress accepts at once.")
    channel_timeout: int = _setting(120, "Seconds an idle or stalled connection is kept.")
    max_body: int = _setting(
        1 << 30, "Largest request body in bytes (a whole-stream PUT); waitress's hard cap."
    )
    max_window: int = _setting(64 << 20, "Largest window (`0/<n>/<m>`) in bytes.")
    max_index: int = _setting(256 << 20, "Largest index.json in bytes.")
    append_only: bool = _setting(False, "Refuse every DELETE (blobs are immutable anyway).")
    no_auth: bool = _setting(False, "Serve without tokens; accepted only on a loopback address.")
    blobs_only: bool = _setting(
        False, "Serve only the blob API (no key is opened: a pure storage peer)."
    )
    held_dir: str = _setting(
        "",
        "Directory of the repositories held for other nodes, one per domain/node "
        "(empty: $XDG_DATA_HOME/chute/held).",
    )
    max_object: int = _setting(
        256 << 20, "Largest other object (config, keys, tombstones, locks) in bytes."
    )
    query_time_limit: float = _setting(
        10.0, "Seconds a SPARQL query may run before it is stopped (its worker is killed)."
    )
    query_row_limit: int = _setting(100_000, "Most rows (or triples) a SPARQL answer may hold.")
    graph_idle: float = _setting(
        2.0, "Seconds the graph stays open after the last query, then its lock is released."
    )

    def __post_init__(self) -> None:
        host = split_bind(self.bind)[0]
        if self.no_auth and not is_loopback(host):
            raise UsageError(f"--no-auth is accepted only on a loopback address, not {host}")
        positive = ("threads", "connection_limit", "channel_timeout", "max_body", "max_window")
        for name in (*positive, "max_object"):
            if getattr(self, name) <= 0:
                raise UsageError(f"setting {name} must be positive")
        if self.query_time_limit <= 0 or self.query_row_limit <= 0 or self.graph_idle < 0:
            raise UsageError("query limits must be positive")

    @property
    def host(self) -> str:
        return split_bind(self.bind)[0]

    @property
    def port(self) -> int:
        return split_bind(self.bind)[1]


SETTINGS = {f.name: f for f in fields(ServeSettings)}


def help_text(name: str) -> str:
    """Return a setting's documentation."""
    return str(SETTINGS[name].metadata["help"])


def split_bind(bind: str) -> tuple[str, int]:
    """Split `HOST:PORT` (or `[v6]:PORT`)."""
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536 or not host:
        raise UsageError(f"--bind wants HOST:PORT, got {bind!r}")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    """Tell whether a host name or address is the loopback interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _convert(name: str, value: Any) -> Any:
    kind: type = type(SETTINGS[name].default)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    text = str(value).strip()
    try:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(text)
        return kind(text)
    except ValueError:
        raise UsageError(f"setting {name}: {value!r} is not a {kind.__name__}") from None


def load_serve_settings(
    file: Mapping[str, Any], env: Mapping[str, str], overrides: Mapping[str, Any]
) -> ServeSettings:
    """Resolve settings from config.toml's [serve] table, the environment and options."""
    unknown = set(file) - set(SETTINGS)
    if unknown:
        raise UsageError(f"unknown [serve] setting(s): {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for name in SETTINGS:
        env_value = env.get(f"CHUTE_SERVE_{name.upper()}")
        if overrides.get(name) is not None:
            values[name] = _convert(name, overrides[name])
        elif env_value not in (None, ""):
            values[name] = _convert(name, env_value)
        elif name in file:
            values[name] = _convert(name, file[name])
    return ServeSettings(**values)
