"""Tombstones: the sealed `<blob>/forgotten` marker that `chute forget` writes.

Forgetting a snapshot cannot delete its blob: later snapshots reference the
chunks it stored first, through the chunk index built from its object
table. So forget adds one small object next to the blob and removes
nothing; the snapshot leaves the list of snapshots (and the graph) at once,
while its table keeps serving the chunks others use until prune has moved
or dropped every one of them. Prune then deletes the windows and the
index.json but keeps the tombstone, so every node that holds the key learns
that the snapshot was forgotten (its graph drops it), and the name is never
handed out again.

The marker is an AEAD envelope under a fresh random salt (so a fresh
subkey: its fixed nonce can never repeat), bound to its own object name.
A storage peer can neither forge one (to hide a snapshot from its owner, or
make prune treat it as garbage) nor move one to another blob. What the peer
learns is that the snapshot was forgotten and when, which it would learn
anyway once prune deletes the data.
"""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any

from chute.crypto import SALT_SIZE, T_INDEX, MasterKey
from chute.errors import BlobConflict, IntegrityError, NotFound
from chute.layout import TOMBSTONE
from chute.store.base import BlobStore


def tombstone_name(blob: str) -> str:
    return f"{blob}/{TOMBSTONE}"


def seal_tombstone(key: MasterKey, blob: str, reason: str) -> bytes:
    """Return the bytes of a tombstone for `blob`."""
    salt = os.urandom(SALT_SIZE)
    body = json.dumps({"blob": blob, "forgotten": time.time(), "reason": reason}).encode()
    sealed = key.blob_cipher(salt).seal_index(body, tombstone_name(blob).encode())
    doc = {
        "version": 1,
        "salt": base64.b64encode(salt).decode(),
        "sealed": base64.b64encode(sealed).decode(),
    }
    return json.dumps(doc).encode() + b"\n"


def write_tombstone(store: BlobStore, key: MasterKey, blob: str, reason: str) -> bool:
    """Mark a blob forgotten; False if it already was (another forget got there first)."""
    name = tombstone_name(blob)
    if store.exists(name):
        return False
    try:
        store.put(name, seal_tombstone(key, blob, reason))
    except BlobConflict:
        return False
    return True


def read_tombstone(store: BlobStore, key: MasterKey, blob: str) -> dict[str, Any]:
    """Open a blob's tombstone; IntegrityError if it is not one this key made for this blob."""
    name = tombstone_name(blob)
    data = store.get(name)
    try:
        doc = json.loads(data)
        salt = base64.b64decode(doc["salt"])
        sealed = base64.b64decode(doc["sealed"])
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"tombstone of {blob} is malformed") from exc
    plain, _ = key.blob_cipher(salt).open(sealed, T_INDEX, name.encode())
    body: dict[str, Any] = json.loads(plain)
    if body.get("blob") != blob:
        raise IntegrityError(f"tombstone of {blob} names another blob")
    return body


def is_forgotten(store: BlobStore, key: MasterKey, blob: str) -> bool:
    """Tell whether a blob carries a tombstone that this key made (a forged one does not count)."""
    try:
        read_tombstone(store, key, blob)
    except (NotFound, IntegrityError):
        return False
    return True
