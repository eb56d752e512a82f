"""Real servers for the web tests: a chute node (HOME, repository, tokens) and `chute serve`.

Servers run as subprocesses on a free port (`--bind 127.0.0.1:0`): the port
is read from the start-up line, then the server is polled until it answers.
They are stopped (SIGTERM, then waited for) when the fixture ends.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from conftest import CHUTE

STARTUP = 60.0  # seconds a server may take to come up (a bound, not a measurement)


@dataclass
class Response:
    """One HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def request(
    base: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    token: str | None = None,
) -> Response:
    """Send one request with the path exactly as given (no normalisation)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
    try:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=body, headers=all_headers)
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def curl_status_if_none_match(url: str, auth: list[str], etag: str) -> str:
    """Return the HTTP status curl gets for a conditional GET with `If-None-Match: etag`."""
    return subprocess.run(
        [
            "curl",
            "-sS",
            *auth,
            "-H",
            f"If-None-Match: {etag}",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_header(data: bytes) -> dict[str, str]:
    """`Content-Digest` of a body (RFC 9530)."""
    return {
        "Content-Digest": f"sha-256=:{base64.b64encode(hashlib.sha256(data).digest()).decode()}:"
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_up(url: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll until `url` answers at all (any status)."""
    deadline = time.monotonic() + STARTUP
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            base = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"
            request(base, "GET", urlsplit(url).path or "/")
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@dataclass
class Node:
    """A chute home: environment, repository, tokens by name."""

    home: Path
    env: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [CHUTE, *args], env=self.env, capture_output=True, text=True, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"chute {' '.join(args)}: {result.returncode} {result.stderr}")
        return result

    def add_token(self, name: str, scopes: str) -> str:
        secret = self.run("token", "add", name, "--scope", scopes).stdout.strip().splitlines()[-1]
        self.tokens[name] = secret
        return secret

    @property
    def repo(self) -> Path:
        return self.home / "data" / "chute" / "repo"

    @contextmanager
    def serve(self, *args: str) -> Iterator[str]:
        """Run `chute serve` on a free port; yield its base URL."""
        log = self.home / f"serve-{time.monotonic_ns()}.log"
        with open(log, "wb") as err:
            proc = subprocess.Popen(
                [CHUTE, "serve", "--bind", "127.0.0.1:0", *args],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        try:
            base = self._read_url(log, proc)
            wait_until_up(base + "/chute/openapi.json", proc)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    @staticmethod
    def _read_url(log: Path, proc: subprocess.Popen[bytes]) -> str:
        deadline = time.monotonic() + STARTUP
        while True:
            match = re.search(r"chute serving (http://[^/ ]+)/", log.read_text(errors="replace"))
            if match:
                return match.group(1)
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chute serve did not start: {log.read_text()}")
            time.sleep(0.05)


def make_node(home: Path, node: str = "node1", init: bool = True) -> Node:
    """Make an isolated chute home (fast test KDF), with a repository if `init`."""
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHUTE_", "XDG_"))}
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_CACHE_HOME=str(home / "cache"),
        CHUTE_INSECURE_FAST_KDF="1",
        CHUTE_DOMAIN="example.com",
        CHUTE_NODE=node,
    )
    found = Node(home, env)
    if init:
        found.run("init", "--generate-key")
    return found
