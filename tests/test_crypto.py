"""The key derivation, keyed ids, envelope format and key wrapping of chute.crypto.

The golden vectors were computed once from the code and pasted here: a change
to the envelope or the derivations must break these tests, because it would
make existing repositories unreadable.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chute.crypto import (
    F_ZSTD,
    FAST_KDF_ENV,
    HEADER_SIZE,
    INDEX_STREAM,
    OVERHEAD,
    T_DATA,
    T_INDEX,
    T_TREE,
    BlobCipher,
    MasterKey,
    Secret,
    passphrase_kdf,
    unwrap_key,
    wrap_key,
)
from chute.errors import IntegrityError, UsageError, WrongKey

MASTER = MasterKey(material=bytes(range(64)))
SALT = bytes(range(100, 124))
OTHER_SALT = bytes(range(1, 25))
OID = bytes(range(200, 232))
BLOB_NAME = b"example.com/node1/opt/data/20261126T051500Z"

GOLDEN_ENVELOPE = bytes.fromhex(
    "43485554"  # magic "CHUT"
    "01"  # version
    "01"  # type: T_DATA
    "00"  # flags
    "000000000000000000000000"  # nonce: the first counter value
    "d613f75029424de3ffc9cca2b1b8bb77"  # ciphertext of b"golden plaintext"
    "84f6c12d2cf72232160644126a7debc9"  # tag
)
GOLDEN_INDEX_ENVELOPE = bytes.fromhex(
    "43485554010300"
    "010000000000000000000000"  # the index nonce, outside the counter range
    "62c1eb32c46d43e56473e5ee"  # ciphertext of b"golden index"
    "ea19a9edeaf4f0fa91904de5e7c58f72"
)
KEY_FILE_BYTES = b"chute golden key file, 32 bytes"
GOLDEN_KEYFILE_WRAP = {
    "data": "T/DX39Sifnw+EdLhugzVXd47bDkwDU8GDUmdZ6flJr8WEEEcDgYqVpx7/dWIN5zmXZnHXyTPIEuDd0vA"
    "+As89n2IVKHG2T0uptMYUyIhLOM=",
    "kdf": {"name": "hkdf-sha256"},
    "nonce": "oFlgYGRB36ufkAiY",
    "salt": "pleRdKC9MieGw5ts+jeEURegkuJ/SVny61U2Jkk8rDQ=",
    "version": 1,
}
PASSPHRASE = "correct horse battery staple"
GOLDEN_PASSPHRASE_WRAP = {
    "data": "jtqozdvf8aM4x/2NP7N1O04zxqKB2JXwD/VQIj7tQ6zV3UWFzjbVehZ7ygdpxrEKOGrc2SYm6yGPBlRV"
    "tTtTOp5R5hWZxOblU7F+2VPLQzc=",
    "kdf": {"iterations": 1, "lanes": 1, "memory_kib": 8, "name": "argon2id"},
    "nonce": "3mrDPl+ATYy529H+",
    "salt": "m0gqaMl544MPV87ZSPihe0oiUIQVAnjFAnEJdY3SFn8=",
    "version": 1,
}
FAST_PARAMS = {"name": "argon2id", "memory_kib": 8, "iterations": 1, "lanes": 1}


def cipher(salt: bytes = SALT) -> BlobCipher:
    return MASTER.blob_cipher(salt)


def sealed(plaintext: bytes = b"golden plaintext") -> bytes:
    return cipher().seal(T_DATA, OID, plaintext)


# --- golden vectors -------------------------------------------------------


def test_subkeys_are_pinned() -> None:
    assert MASTER.enc_key.hex() == (
        "e265e58e43d5b3f92b10261c1b5a45c51260d1342e7bf605fc841ea1ff6c0f01"
    )
    assert MASTER.id_key.hex() == (
        "da60dab035fa248e347aa775ccd2c404baa2df54b1663c73cb78374dad28a76b"
    )
    assert MASTER.chunker_seed == 1116667969
    assert MASTER.key_id == "437ead4b7fe04715"


def test_keyed_ids_are_pinned() -> None:
    hasher = MASTER.hasher()
    assert hasher.chunk_id(b"hello").hex == (
        "d2cb46e5837b53bde41ff085b82778c880714a7b9a23753fe437687ea925649e"
    )
    assert hasher.tree_id(b"{}").hex == (
        "4319ad83f919c35d3439555dfb04ebd7f84a8424736d8cac70ded4394c351350"
    )
    assert hasher.name_id("a", "b") == (
        "88fd635dd3454f8753bf206b953d56e5b883ce255eb4bb58da8306761ab5f903"
    )


def test_ids_are_keyed_and_domain_separated() -> None:
    other = MasterKey(material=bytes(64)).hasher()
    hasher = MASTER.hasher()
    assert hasher.chunk_id(b"hello") != other.chunk_id(b"hello")
    assert hasher.chunk_id(b"{}") != hasher.tree_id(b"{}")


def test_envelope_is_pinned_and_opens() -> None:
    envelope = sealed()
    assert envelope == GOLDEN_ENVELOPE
    assert len(envelope) == len(b"golden plaintext") + OVERHEAD
    assert cipher().open(GOLDEN_ENVELOPE, T_DATA, OID) == (b"golden plaintext", 0)


def test_index_envelope_is_pinned_and_opens() -> None:
    assert cipher().seal_index(b"golden index", BLOB_NAME) == GOLDEN_INDEX_ENVELOPE
    assert cipher().open(GOLDEN_INDEX_ENVELOPE, T_INDEX, BLOB_NAME) == (b"golden index", 0)


def test_wrapped_keys_are_pinned() -> None:
    by_file = unwrap_key(
        json.dumps(GOLDEN_KEYFILE_WRAP).encode(), Secret("keyfile", KEY_FILE_BYTES)
    )
    by_phrase = unwrap_key(
        json.dumps(GOLDEN_PASSPHRASE_WRAP).encode(), Secret.passphrase(PASSPHRASE)
    )
    assert by_file.material == MASTER.material
    assert by_phrase.material == MASTER.material


# --- tampering ------------------------------------------------------------


def test_every_bit_flip_fails() -> None:
    envelope = sealed()
    box = cipher()
    for pos in range(len(envelope)):
        for bit in range(8):
            damaged = bytearray(envelope)
            damaged[pos] ^= 1 << bit
            with pytest.raises(IntegrityError):
                box.open(bytes(damaged), T_DATA, OID)


def test_every_bit_flip_of_an_index_fails() -> None:
    box = cipher()
    for pos in range(len(GOLDEN_INDEX_ENVELOPE)):
        for bit in (0, 7):
            damaged = bytearray(GOLDEN_INDEX_ENVELOPE)
            damaged[pos] ^= 1 << bit
            with pytest.raises(IntegrityError):
                box.open(bytes(damaged), T_INDEX, BLOB_NAME)


def test_every_truncation_and_an_extension_fail() -> None:
    envelope = sealed()
    box = cipher()
    for length in range(len(envelope)):
        with pytest.raises(IntegrityError):
            box.open(envelope[:length], T_DATA, OID)
    with pytest.raises(IntegrityError):
        box.open(envelope + b"\0", T_DATA, OID)


def test_wrong_type_fails() -> None:
    with pytest.raises(IntegrityError):
        cipher().open(sealed(), T_TREE, OID)
    with pytest.raises(IntegrityError):
        cipher().open(sealed(), T_INDEX, OID)


def test_wrong_id_fails() -> None:
    with pytest.raises(IntegrityError):
        cipher().open(sealed(), T_DATA, bytes(32))
    with pytest.raises(IntegrityError):
        cipher().open(sealed(), T_DATA, OID[:-1])


def test_swapped_chunks_fail() -> None:
    box = cipher()
    hasher = MASTER.hasher()
    id_a, id_b = hasher.chunk_id(b"chunk A").raw, hasher.chunk_id(b"chunk B").raw
    env_a = box.seal(T_DATA, id_a, b"chunk A")
    env_b = box.seal(T_DATA, id_b, b"chunk B")
    assert box.open(env_a, T_DATA, id_a)[0] == b"chunk A"
    assert box.open(env_b, T_DATA, id_b)[0] == b"chunk B"
    with pytest.raises(IntegrityError):
        box.open(env_a, T_DATA, id_b)
    with pytest.raises(IntegrityError):
        box.open(env_b, T_DATA, id_a)
    # B's header (its nonce) on A's body: fails too.
    with pytest.raises(IntegrityError):
        box.open(env_b[:HEADER_SIZE] + env_a[HEADER_SIZE:], T_DATA, id_a)


def test_envelope_from_another_blob_fails() -> None:
    envelope = cipher(OTHER_SALT).seal(T_DATA, OID, b"golden plaintext")
    assert envelope[:HEADER_SIZE] == GOLDEN_ENVELOPE[:HEADER_SIZE]  # same counter nonce
    with pytest.raises(IntegrityError):
        cipher().open(envelope, T_DATA, OID)
    other_master = MasterKey(material=bytes(64)).blob_cipher(SALT)
    with pytest.raises(IntegrityError):
        other_master.open(GOLDEN_ENVELOPE, T_DATA, OID)


def test_index_is_bound_to_the_blob_name() -> None:
    box = cipher()
    envelope = box.seal_index(b"index body", BLOB_NAME)
    assert box.open(envelope, T_INDEX, BLOB_NAME)[0] == b"index body"
    for name in (BLOB_NAME.replace(b"20261126", b"20261127"), BLOB_NAME + b"/", b""):
        with pytest.raises(IntegrityError):
            box.open(envelope, T_INDEX, name)
    with pytest.raises(IntegrityError):
        cipher(OTHER_SALT).open(envelope, T_INDEX, BLOB_NAME)


def test_salt_of_the_wrong_size_is_refused() -> None:
    for size in (0, 16, 23, 25, 32):
        with pytest.raises(IntegrityError):
            MASTER.blob_cipher(bytes(size))


def test_plaintext_does_not_appear_in_the_envelope() -> None:
    plaintext = b"secret " * 16
    envelope = cipher().seal(T_DATA, OID, plaintext)
    assert b"secret" not in envelope


# --- nonces ---------------------------------------------------------------


def test_nonces_never_repeat_within_a_blob() -> None:
    box = cipher()
    envelopes = [box.seal(T_DATA, OID, b"same plaintext") for _ in range(1000)]
    nonces = {envelope[7:19] for envelope in envelopes}
    assert len(nonces) == 1000
    assert len({envelope[HEADER_SIZE:] for envelope in envelopes}) == 1000
    index_nonce = box.seal_index(b"index", BLOB_NAME)[7:19]
    assert index_nonce not in nonces


def test_streams_of_one_blob_never_share_a_nonce() -> None:
    key = MasterKey(bytes(range(64)))
    salt = bytes(24)
    boxes = [key.blob_cipher(salt, stream) for stream in (0, 1, 2, INDEX_STREAM - 1)]
    nonces = [box.seal(T_DATA, OID, b"x")[7:19] for box in boxes for _ in range(100)]
    assert len(set(nonces)) == len(nonces)
    assert boxes[0].INDEX_NONCE not in nonces
    # Any cipher of the blob opens what another stream sealed: the nonce is in the header.
    assert boxes[0].open(boxes[2].seal(T_DATA, OID, b"mine"), T_DATA, OID) == (b"mine", 0)
    for stream in (-1, INDEX_STREAM):
        with pytest.raises(ValueError):
            key.blob_cipher(salt, stream)


# --- round trips ------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    plaintext=st.binary(max_size=4096),
    oid=st.binary(min_size=32, max_size=32),
    otype=st.sampled_from([T_DATA, T_TREE]),
    flags=st.sampled_from([0, F_ZSTD]),
)
def test_open_inverts_seal(plaintext: bytes, oid: bytes, otype: int, flags: int) -> None:
    box = cipher()
    envelope = box.seal(otype, oid, plaintext, flags)
    assert len(envelope) == len(plaintext) + OVERHEAD
    assert envelope[6] == flags
    assert box.open(envelope, otype, oid) == (plaintext, flags)
    assert box.open(memoryview(envelope), otype, oid) == (plaintext, flags)


# --- key wrapping -----------------------------------------------------------


def test_passphrase_round_trip_with_fast_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAST_KDF_ENV, "1")
    master = MasterKey.generate()
    wrapped = wrap_key(master, Secret.passphrase("hunter2 hunter2"))
    assert json.loads(wrapped)["kdf"] == FAST_PARAMS
    assert master.material not in wrapped
    assert unwrap_key(wrapped, Secret.passphrase("hunter2 hunter2")).material == master.material
    with pytest.raises(WrongKey):
        unwrap_key(wrapped, Secret.passphrase("hunter3 hunter3"))


def test_key_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_bytes(bytes(range(32)))
    master = MasterKey.generate()
    wrapped = wrap_key(master, Secret.key_file(path))
    assert json.loads(wrapped)["kdf"] == {"name": "hkdf-sha256"}
    assert unwrap_key(wrapped, Secret.key_file(path)).material == master.material
    path.write_bytes(bytes(range(1, 33)))
    with pytest.raises(WrongKey):
        unwrap_key(wrapped, Secret.key_file(path))


def test_wrapping_is_randomised() -> None:
    secret = Secret("keyfile", KEY_FILE_BYTES)
    assert wrap_key(MASTER, secret) != wrap_key(MASTER, secret)


def test_secret_of_the_other_kind_is_a_wrong_key() -> None:
    by_phrase = json.dumps(GOLDEN_PASSPHRASE_WRAP).encode()
    by_file = json.dumps(GOLDEN_KEYFILE_WRAP).encode()
    with pytest.raises(WrongKey):
        unwrap_key(by_phrase, Secret("keyfile", PASSPHRASE.encode()))
    with pytest.raises(WrongKey):
        unwrap_key(by_file, Secret.passphrase(KEY_FILE_BYTES.decode()))


def test_kdf_parameters_are_authenticated() -> None:
    weaker = dict(GOLDEN_PASSPHRASE_WRAP, kdf={**FAST_PARAMS, "iterations": 2})
    with pytest.raises(WrongKey):
        unwrap_key(json.dumps(weaker).encode(), Secret.passphrase(PASSPHRASE))


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b"{}",
        json.dumps({k: v for k, v in GOLDEN_KEYFILE_WRAP.items() if k != "salt"}).encode(),
        json.dumps(dict(GOLDEN_KEYFILE_WRAP, kdf="hkdf-sha256")).encode(),
        json.dumps(dict(GOLDEN_KEYFILE_WRAP, kdf=None)).encode(),
        json.dumps(dict(GOLDEN_KEYFILE_WRAP, salt=5)).encode(),
        json.dumps(dict(GOLDEN_KEYFILE_WRAP, salt="not base64!")).encode(),
        json.dumps(dict(GOLDEN_KEYFILE_WRAP, nonce="AAAA")).encode(),
        json.dumps(dict(GOLDEN_KEYFILE_WRAP, kdf={"name": "rot13"})).encode(),
    ],
)
def test_malformed_key_object_is_an_integrity_error(blob: bytes) -> None:
    with pytest.raises(IntegrityError):
        unwrap_key(blob, Secret("keyfile", KEY_FILE_BYTES))


@pytest.mark.parametrize(
    "kdf",
    [
        {"name": "argon2id"},
        {**FAST_PARAMS, "memory_kib": "lots"},
        {**FAST_PARAMS, "memory_kib": 1},
    ],
)
def test_malformed_kdf_parameters_are_an_integrity_error(kdf: dict[str, object]) -> None:
    blob = json.dumps(dict(GOLDEN_PASSPHRASE_WRAP, kdf=kdf)).encode()
    with pytest.raises(IntegrityError):
        unwrap_key(blob, Secret.passphrase(PASSPHRASE))


def test_short_or_missing_key_file_is_a_usage_error(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_bytes(bytes(15))
    with pytest.raises(UsageError):
        Secret.key_file(short)
    with pytest.raises(UsageError):
        Secret.key_file(tmp_path / "absent")
    exact = tmp_path / "exact"
    exact.write_bytes(bytes(16))
    assert Secret.key_file(exact).data == bytes(16)


def test_empty_passphrase_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        Secret.passphrase("")


def test_default_kdf_is_argon2id_64mib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FAST_KDF_ENV, raising=False)
    strong = {"name": "argon2id", "memory_kib": 65536, "iterations": 3, "lanes": 2}
    assert passphrase_kdf() == strong
    monkeypatch.setenv(FAST_KDF_ENV, "0")
    assert passphrase_kdf() == strong
    monkeypatch.setenv(FAST_KDF_ENV, "1")
    assert passphrase_kdf() == FAST_PARAMS
