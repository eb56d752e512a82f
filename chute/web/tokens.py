"""API tokens: named, scoped, stored hashed.

A token is `chute_` + 32 random bytes (base64url); the tokens file
(`$XDG_CONFIG_HOME/chute/tokens.json`, mode 0600) keeps only its SHA-256,
its name, scopes and creation time. A fast hash is enough: the secret is
random, not a password. The file is written atomically and re-read when it
changes, so `chute token revoke` takes effect on a running server at once.

Scopes: `read` (the plaintext routes: SPARQL, snapshots, file download;
and blob reads), `write` (blob uploads and blob reads: what a storage peer's
client needs), `delete` (DELETE of blobs), `admin` (everything, and
`POST /chute/snapshot`). Give a storage peer `write` (plus `delete` if it
may prune), never `read`: `read` opens this node's plaintext history.

A token may be limited to some nodes' repositories (`prefixes`: `<domain>`
or `<domain>/<node>`): it then reaches only the blobs and repositories of
those nodes, and never a plaintext route. That is how peers are mutual:
A gives B a `write` token limited to `<B's domain>/<B's node>`, so B can
push its own blobs to A and touch nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chute.errors import NotFound, StorageError, UsageError

SCOPES = ("read", "write", "delete", "admin")
PREFIX = "chute_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_SEGMENT = re.compile(r"^(?!\.)[A-Za-z0-9._~%-]{1,255}\Z")


@dataclass(frozen=True)
class Token:
    """A stored token (without its secret)."""

    name: str
    scopes: frozenset[str]
    created: str
    sha256: str
    prefixes: tuple[str, ...] = ()

    def allows(self, accepted: frozenset[str]) -> bool:
        """Tell whether this token holds one of the accepted scopes (admin holds all)."""
        return "admin" in self.scopes or bool(self.scopes & accepted)

    def covers(self, domain: str, node: str) -> bool:
        """Tell whether this token may reach the repository of `<domain>/<node>`."""
        if not self.prefixes:
            return True
        return any(p in (domain, f"{domain}/{node}") for p in self.prefixes)


def parse_prefixes(values: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Check `<domain>` or `<domain>/<node>` prefixes; UsageError otherwise."""
    found = []
    for value in values:
        parts = value.strip().strip("/").split("/")
        if not 1 <= len(parts) <= 2 or not all(_SEGMENT.match(p) for p in parts):
            raise UsageError(f"a token prefix is DOMAIN or DOMAIN/NODE, not {value!r}")
        found.append("/".join(parts))
    return tuple(sorted(set(found)))


def parse_scopes(text: str) -> frozenset[str]:
    """Parse `read,write`; UsageError on an unknown scope."""
    scopes = frozenset(s.strip() for s in text.split(",") if s.strip())
    unknown = scopes - set(SCOPES)
    if not scopes or unknown:
        raise UsageError(f"scopes are a comma-separated subset of {', '.join(SCOPES)}")
    return scopes


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


class TokenStore:
    """The tokens file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._tokens: list[Token] = []

    def _load(self) -> list[Token]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._tokens = None, []
            return []
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            try:
                data = json.loads(self.path.read_text())
                self._tokens = [
                    Token(
                        t["name"],
                        frozenset(t["scopes"]),
                        t["created"],
                        t["sha256"],
                        tuple(t.get("prefixes", ())),
                    )
                    for t in data["tokens"]
                ]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise StorageError(f"cannot read the tokens file {self.path}: {exc}") from exc
            self._stamp = stamp
        return self._tokens

    def _save(self, tokens: list[Token]) -> None:
        data: dict[str, Any] = {
            "version": 1,
            "tokens": [
                {
                    "name": t.name,
                    "scopes": sorted(t.scopes),
                    "created": t.created,
                    "sha256": t.sha256,
                    **({"prefixes": list(t.prefixes)} if t.prefixes else {}),
                }
                for t in tokens
            ],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(data, indent=1) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        self._stamp = None

    def list(self) -> list[Token]:
        """Return the stored tokens."""
        with self._lock:
            return list(self._load())

    def add(self, name: str, scopes: frozenset[str], prefixes: tuple[str, ...] = ()) -> str:
        """Create a token; return its secret (shown once, never stored)."""
        if not _NAME.match(name):
            raise UsageError(f"invalid token name {name!r} (letters, digits, . _ -)")
        with self._lock:
            tokens = list(self._load())
            if any(t.name == name for t in tokens):
                raise UsageError(f"a token named {name} exists (revoke it first)")
            secret = PREFIX + secrets.token_urlsafe(32)
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            tokens.append(Token(name, scopes, created, _digest(secret), prefixes))
            self._save(tokens)
            return secret

    def revoke(self, name: str) -> None:
        """Remove a token; NotFound if there is none by that name."""
        with self._lock:
            tokens = list(self._load())
            kept = [t for t in tokens if t.name != name]
            if len(kept) == len(tokens):
                raise NotFound(f"no token named {name}")
            self._save(kept)

    def check(self, secret: str) -> Token | None:
        """Return the token whose secret this is, or None."""
        digest = _digest(secret)
        with self._lock:
            tokens = self._load()
        found = None
        for token in tokens:  # compare with all, in constant time each
            if hmac.compare_digest(token.sha256, digest):
                found = token
        return found
