"""Keys, key derivation, keyed ids and the AEAD envelope.

Master key: 64 random bytes, never stored in the clear. It is wrapped
(ChaCha20-Poly1305) by a key-encryption key derived from either

* a passphrase: Argon2id (64 MiB, 3 passes, 2 lanes: ~0.17 s here), or
* a key file or key device such as a LUKS key file: HKDF-SHA256 over its
  bytes (a key file is already high-entropy, so no slow KDF is needed).

The KDF and its parameters are stored beside the wrapped key and bound as
associated data, so a test key (made with `CHUTE_INSECURE_FAST_KDF=1`,
which only lowers the cost of *new* keys) is visibly weak.

From the master key, HKDF derives independent subkeys: `enc` (the AEAD
root), `id` (keyed BLAKE3 for chunk and tree ids: a storage peer cannot
confirm that it holds a known plaintext) and the FastCDC gear seed (so chunk
boundaries, too, depend on the key and cannot fingerprint known files).

Envelope (every encrypted object):

    magic "CHUT" | version 1 | type | flags | nonce (12) | ciphertext | tag (16)

Nonces never repeat under one key: each blob gets a subkey
`HKDF(enc, salt=<random 192-bit salt>)` (the extended-nonce construction)
and each object in the blob a counter nonce: a 32-bit stream number, then a
64-bit counter. Each process that seals objects of one blob has a stream of
its own (the put's process 0, its forked readers 1, 2, ...), so no two ever
count through the same nonces; the blob's sealed index has the fixed nonce
of stream 0x01000000, which no counter reaches. The header and the object's
id are the associated data, so a flipped header bit, a swapped chunk or an
object presented under another id fails to open.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import struct
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from chute.errors import IntegrityError, UsageError, WrongKey
from chute.ids import ChunkId

MAGIC = b"CHUT"
VERSION = 1
HEADER = struct.Struct(">4sBBB12s")
HEADER_SIZE = HEADER.size  # 19
TAG_SIZE = 16
OVERHEAD = HEADER_SIZE + TAG_SIZE

# Object types, bound into every envelope.
T_DATA = 1
T_TREE = 2
T_INDEX = 3

F_ZSTD = 1

SALT_SIZE = 24
MASTER_SIZE = 64
KEYFILE_MAX = 8 << 20
FAST_KDF_ENV = "CHUTE_INSECURE_FAST_KDF"


def _hkdf(material: bytes, info: bytes, salt: bytes | None = None, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(material)


@dataclass(frozen=True)
class MasterKey:
    """The repository's master key and the subkeys derived from it."""

    material: bytes

    @classmethod
    def generate(cls) -> MasterKey:
        """Make a new random master key."""
        return cls(os.urandom(MASTER_SIZE))

    @cached_property
    def enc_key(self) -> bytes:
        return _hkdf(self.material, b"chute v1 enc")

    @cached_property
    def id_key(self) -> bytes:
        return _hkdf(self.material, b"chute v1 id")

    @cached_property
    def chunker_seed(self) -> int:
        return int.from_bytes(_hkdf(self.material, b"chute v1 cdc", length=4), "big")

    @cached_property
    def key_id(self) -> str:
        """A public id for this key (safe to show: derived one-way)."""
        return _hkdf(self.material, b"chute v1 key-id", length=8).hex()

    def hasher(self) -> IdHasher:
        """Return the keyed id function for this key."""
        return IdHasher(self.id_key)

    def blob_cipher(self, salt: bytes, stream: int = 0) -> BlobCipher:
        """Return the cipher of the blob whose public salt is `salt`, sealing in `stream`."""
        return BlobCipher(self.enc_key, salt, stream)


class IdHasher:
    """Keyed BLAKE3: chunk ids and tree ids (domain-separated)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def chunk_id(self, data: bytes | memoryview) -> ChunkId:
        """Return the keyed id of a data chunk."""
        return ChunkId(blake3.blake3(data, key=self._key).digest())

    def tree_id(self, data: bytes) -> ChunkId:
        """Return the keyed id of a tree object."""
        hasher = blake3.blake3(b"chute-tree\0", key=self._key)
        hasher.update(data)
        return ChunkId(hasher.digest())

    def name_id(self, *parts: str) -> str:
        """Return a keyed hex id for graph IRIs made of `parts` (each ends with a NUL)."""
        text = "\0".join(parts).encode("utf-8", "surrogateescape")
        return blake3.blake3(b"chute-iri\0" + text + b"\0", key=self._key).hexdigest()


NONCE = struct.Struct(">IQ")  # stream, counter
INDEX_STREAM = 0x01000000  # above every sealing stream


class BlobCipher:
    """Seal and open the objects of one blob under its own subkey.

    Objects are sealed with the counter nonces of one `stream`: two ciphers
    of the same blob sealing at once (in two processes) must have different
    streams, and every stream is below `INDEX_STREAM`.
    """

    INDEX_NONCE = NONCE.pack(INDEX_STREAM, 0)

    def __init__(self, enc_key: bytes, salt: bytes, stream: int = 0) -> None:
        if len(salt) != SALT_SIZE:
            raise IntegrityError("blob salt has the wrong size")
        if not 0 <= stream < INDEX_STREAM:
            raise ValueError(f"nonce stream {stream} is out of range")
        self.salt = salt
        self._aead = ChaCha20Poly1305(_hkdf(enc_key, b"chute v1 blob", salt=salt))
        self._stream = stream
        self._counter = itertools.count()

    def seal(self, otype: int, oid: bytes, plaintext: bytes | memoryview, flags: int = 0) -> bytes:
        """Encrypt one object; each call takes the next counter nonce."""
        return b"".join(self.seal_parts(otype, oid, plaintext, flags))

    def seal_parts(
        self, otype: int, oid: bytes, plaintext: bytes | memoryview, flags: int = 0
    ) -> tuple[bytes, bytes]:
        """Encrypt one object; return its header and ciphertext without joining them."""
        nonce = NONCE.pack(self._stream, next(self._counter))
        header = HEADER.pack(MAGIC, VERSION, otype, flags, nonce)
        return header, self._aead.encrypt(nonce, plaintext, header + oid)

    def seal_index(self, plaintext: bytes, name: bytes) -> bytes:
        """Encrypt the blob's sealed index part, bound to the blob's name."""
        return self._seal(T_INDEX, name, plaintext, 0, self.INDEX_NONCE)

    def _seal(
        self, otype: int, oid: bytes, data: bytes | memoryview, flags: int, nonce: bytes
    ) -> bytes:
        header = HEADER.pack(MAGIC, VERSION, otype, flags, nonce)
        return header + self._aead.encrypt(nonce, data, header + oid)

    def open(self, envelope: bytes | memoryview, otype: int, oid: bytes) -> tuple[bytes, int]:
        """Decrypt and authenticate an object; return (plaintext, flags)."""
        if len(envelope) < OVERHEAD:
            raise IntegrityError("object is truncated")
        envelope = memoryview(envelope)  # slices without copying the ciphertext
        header = bytes(envelope[:HEADER_SIZE])
        magic, version, got_type, flags, nonce = HEADER.unpack(header)
        if magic != MAGIC:
            raise IntegrityError("object has no chute magic")
        if version != VERSION:
            raise IntegrityError(f"unsupported object format version {version}")
        if got_type != otype:
            raise IntegrityError("object has the wrong type")
        try:
            plain = self._aead.decrypt(nonce, envelope[HEADER_SIZE:], header + oid)
        except InvalidTag as exc:
            raise IntegrityError("object failed authentication") from exc
        return plain, flags


# --- key wrapping ---------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise TypeError("not a base64 string")
    return base64.b64decode(text.encode("ascii"), validate=True)


def passphrase_kdf() -> dict[str, Any]:
    """Return the Argon2id parameters for a new passphrase-wrapped key."""
    if os.environ.get(FAST_KDF_ENV) == "1":
        return {"name": "argon2id", "memory_kib": 8, "iterations": 1, "lanes": 1}
    return {"name": "argon2id", "memory_kib": 65536, "iterations": 3, "lanes": 2}


def _derive_kek(kdf: dict[str, Any], salt: bytes, secret: bytes) -> bytes:
    name = kdf.get("name")
    if name == "argon2id":
        try:
            argon = Argon2id(
                salt=salt,
                length=32,
                iterations=int(kdf["iterations"]),
                lanes=int(kdf["lanes"]),
                memory_cost=int(kdf["memory_kib"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError("a key object has invalid KDF parameters") from exc
        return argon.derive(secret)
    if name == "hkdf-sha256":
        return _hkdf(secret, b"chute v1 keyfile", salt=salt)
    raise IntegrityError(f"unknown key derivation {name!r}")


@dataclass(frozen=True)
class Secret:
    """What the user gave to open the repository: a passphrase or key file bytes."""

    kind: str  # "passphrase" or "keyfile"
    data: bytes

    @classmethod
    def passphrase(cls, text: str) -> Secret:
        if not text:
            raise UsageError("the passphrase is empty")
        return cls("passphrase", text.encode("utf-8"))

    @classmethod
    def key_file(cls, path: Path) -> Secret:
        """Read a key file or key device (at most 8 MiB of it)."""
        try:
            with open(path, "rb") as handle:
                data = handle.read(KEYFILE_MAX)
        except OSError as exc:
            raise UsageError(f"cannot read key file {path}: {exc.strerror}") from exc
        if len(data) < 16:
            raise UsageError(f"key file {path} holds fewer than 16 bytes")
        return cls("keyfile", data)


def wrap_key(master: MasterKey, secret: Secret) -> bytes:
    """Wrap the master key for storage under `keys/<id>`."""
    kdf = passphrase_kdf() if secret.kind == "passphrase" else {"name": "hkdf-sha256"}
    salt = os.urandom(32)
    nonce = os.urandom(12)
    ad = json.dumps(kdf, sort_keys=True).encode()
    data = ChaCha20Poly1305(_derive_kek(kdf, salt, secret.data)).encrypt(nonce, master.material, ad)
    doc = {
        "version": VERSION,
        "kdf": kdf,
        "salt": _b64(salt),
        "nonce": _b64(nonce),
        "data": _b64(data),
    }
    return json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n"


def unwrap_key(blob: bytes, secret: Secret) -> MasterKey:
    """Open one wrapped key; raise WrongKey if the secret does not fit."""
    try:
        doc = json.loads(blob)
        kdf = doc["kdf"]
        salt, nonce, data = (_unb64(doc[k]) for k in ("salt", "nonce", "data"))
        if not isinstance(kdf, dict) or len(nonce) != 12:
            raise ValueError("bad kdf or nonce")
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError("a key object is malformed") from exc
    wants_passphrase = kdf.get("name") == "argon2id"
    if wants_passphrase != (secret.kind == "passphrase"):
        raise WrongKey("key kind does not match")
    ad = json.dumps(kdf, sort_keys=True).encode()
    try:
        material = ChaCha20Poly1305(_derive_kek(kdf, salt, secret.data)).decrypt(nonce, data, ad)
    except InvalidTag as exc:
        raise WrongKey("wrong key") from exc
    return MasterKey(material)
