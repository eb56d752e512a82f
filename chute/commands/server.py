"""`chute serve` (the app on waitress) and `chute token ...` (API tokens)."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from typing import Any

import click

from chute.cli import EPILOG, Ctx, cli, common
from chute.errors import UsageError


def _settings_help() -> str:
    from chute.web.settings import SETTINGS, help_text

    lines = [f"{name}: {help_text(name)} (default {f.default})" for name, f in SETTINGS.items()]
    return (
        "Settings (--setting NAME VALUE, env CHUTE_SERVE_<NAME>, [serve] in config.toml):\n\n"
        + ("\n\n".join(lines))
    )


@cli.command(epilog=EPILOG)
@click.option("--bind", help="HOST:PORT to listen on (default 127.0.0.1:2002; port 0: any free).")
@click.option("--append-only", is_flag=True, default=None, help="Refuse every DELETE.")
@click.option("--threads", type=int, help="Worker threads (default 8).")
@click.option("--no-auth", is_flag=True, default=None, help="No tokens (loopback only).")
@click.option("--blobs-only", is_flag=True, default=None, help="Only the blob API; no key.")
@click.option(
    "--setting",
    "pairs",
    multiple=True,
    nargs=2,
    metavar="NAME VALUE",
    help="Any other setting (see --list-settings).",
)
@click.option("--list-settings", is_flag=True, help="Print every setting with its help and exit.")
@common
def serve(
    c: Ctx,
    bind: str | None,
    append_only: bool | None,
    threads: int | None,
    no_auth: bool | None,
    blobs_only: bool | None,
    pairs: tuple[tuple[str, str], ...],
    list_settings: bool,
) -> None:
    """Serve the blob API, SPARQL and browsing over HTTP (waitress)."""
    from chute.web.settings import SETTINGS, load_serve_settings

    if list_settings:
        click.echo(_settings_help())
        return
    overrides: dict[str, Any] = {}
    for name, value in pairs:
        if name.replace("-", "_") not in SETTINGS:
            raise UsageError(f"unknown setting {name} (see --list-settings)")
        overrides[name.replace("-", "_")] = value
    given = {
        "bind": bind,
        "append_only": append_only,
        "threads": threads,
        "no_auth": no_auth,
        "blobs_only": blobs_only,
    }
    overrides.update({k: v for k, v in given.items() if v is not None})
    settings = c.settings
    serve_settings = load_serve_settings(settings.serve, os.environ, overrides)
    run_waitress(settings, serve_settings)


def run_waitress(settings: Any, serve: Any) -> None:
    """Build the app and run it on waitress until SIGTERM or Ctrl-C."""
    import waitress

    from chute.web.app import build

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app, plaintext = build(settings, serve)
    server: Any = waitress.create_server(
        app,
        host=serve.host,
        port=serve.port,
        threads=serve.threads,
        connection_limit=serve.connection_limit,
        channel_timeout=serve.channel_timeout,
        max_request_body_size=serve.max_body,
        clear_untrusted_proxy_headers=True,
        ident="chute",
        # waitress reads 8 KiB per recv() by default; pushes of MiB-sized windows spend
        # much of their time there. 256 KiB made loopback pushes ~25% faster.
        recv_bytes=1 << 18,
    )

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    host = f"[{serve.host}]" if ":" in serve.host else serve.host
    mode = "blobs only" if plaintext is None else "blobs, SPARQL, snapshots"
    auth = "no auth (loopback)" if serve.no_auth else "tokens"
    click.echo(
        f"chute serving http://{host}:{server.effective_port}/ ({mode}; {auth}"
        f"{'; append-only' if serve.append_only else ''})",
        err=True,
    )
    sys.stderr.flush()
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        if plaintext is not None:
            plaintext.close()


@cli.group()
def token() -> None:
    """Manage the API tokens of `chute serve` (stored hashed)."""


def _tokens(c: Ctx) -> Any:
    from chute.web.tokens import TokenStore

    return TokenStore(c.settings.tokens_file)


@token.command("add")
@click.argument("name")
@click.option("--scope", default="read", show_default=True, help="read,write,delete,admin")
@click.option(
    "--prefix",
    "prefixes",
    multiple=True,
    metavar="DOMAIN[/NODE]",
    help="Reach only these nodes' repositories (repeatable; no plaintext routes).",
)
@common
def token_add(c: Ctx, name: str, scope: str, prefixes: tuple[str, ...]) -> None:
    """Create a token; its secret is printed once, on the last line."""
    from chute.web.tokens import parse_prefixes, parse_scopes

    scopes = parse_scopes(scope)
    secret = _tokens(c).add(name, scopes, parse_prefixes(prefixes))
    click.echo(f"token {name} ({','.join(sorted(scopes))}); it is shown once, keep it:", err=True)
    click.echo(secret)


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@common
def token_list(c: Ctx, as_json: bool) -> None:
    """List tokens (names, scopes, creation times; never secrets)."""
    rows = [
        {"name": t.name, "scopes": sorted(t.scopes), "created": t.created, "prefixes": t.prefixes}
        for t in _tokens(c).list()
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        only = ",".join(row["prefixes"]) or "*"
        click.echo(f"{row['name']}\t{','.join(row['scopes'])}\t{row['created']}\t{only}")


@token.command("revoke")
@click.argument("name")
@common
def token_revoke(c: Ctx, name: str) -> None:
    """Revoke a token (a running server refuses it at once)."""
    _tokens(c).revoke(name)
    click.echo(f"revoked {name}")
