"""Content-defined chunking: pinned boundaries, bounds, dedup and stream cutting.

The golden chunk lengths were computed once and pasted here, so an upgrade of
pyfastcdc (or a change of its parameters) that moves boundaries fails loudly:
moved boundaries silently break deduplication against existing repositories.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chute.chunking import MAX_SIZE, MIN_SIZE, Chunker
from chute.crypto import MasterKey

MIB = 1 << 20
GOLDEN_BUFFER = random.Random(42).randbytes(8 * MIB)
GOLDEN_SEED_0 = [2887635, 1497989, 1362853, 1120302, 581459, 938370]
GOLDEN_SEED_123456789 = [
    1166518,
    596344,
    2195652,
    1118161,
    419991,
    300358,
    1203943,
    1062362,
    325279,
]


def noise(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def check_bounds(lengths: list[int], total: int) -> None:
    assert sum(lengths) == total
    assert all(MIN_SIZE <= n <= MAX_SIZE for n in lengths[:-1]), lengths
    if lengths:
        assert 0 < lengths[-1] <= MAX_SIZE


# --- golden boundaries ------------------------------------------------------


def test_boundaries_are_pinned_for_seed_0() -> None:
    assert Chunker(seed=0).boundaries(GOLDEN_BUFFER) == GOLDEN_SEED_0


def test_boundaries_are_pinned_for_a_seed() -> None:
    assert Chunker(seed=123456789).boundaries(GOLDEN_BUFFER) == GOLDEN_SEED_123456789


def test_boundaries_depend_on_the_key() -> None:
    seed = MasterKey(material=bytes(range(64))).chunker_seed
    lengths = Chunker(seed).boundaries(GOLDEN_BUFFER)
    check_bounds(lengths, len(GOLDEN_BUFFER))
    assert lengths not in (GOLDEN_SEED_0, GOLDEN_SEED_123456789)


# --- join and bounds --------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=MIN_SIZE + 4096))
def test_small_inputs_join_back(data: bytes) -> None:
    chunks = list(Chunker(seed=5).cut(data))
    assert b"".join(chunks) == data
    if 0 < len(data) <= MIN_SIZE:
        assert len(chunks) == 1
    check_bounds([len(c) for c in chunks], len(data))


@settings(max_examples=6, deadline=None)
@given(
    size=st.integers(min_value=MIN_SIZE, max_value=6 * MIB),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    data_seed=st.integers(min_value=0, max_value=1000),
)
def test_large_inputs_join_back(size: int, seed: int, data_seed: int) -> None:
    data = noise(size, data_seed)
    chunks = list(Chunker(seed).cut(data))
    assert b"".join(chunks) == data
    check_bounds([len(c) for c in chunks], size)


@pytest.mark.parametrize(
    "data",
    [bytes(10 * MIB), b"\xff" * (9 * MIB + 1), b"abc" * (3 * MIB)],
    ids=["zeros", "ones", "repeating"],
)
def test_low_entropy_input_respects_the_bounds(data: bytes) -> None:
    chunks = list(Chunker(seed=0).cut(data))
    assert b"".join(chunks) == data
    check_bounds([len(c) for c in chunks], len(data))


def test_golden_buffers_respect_the_bounds() -> None:
    check_bounds(GOLDEN_SEED_0, len(GOLDEN_BUFFER))
    check_bounds(GOLDEN_SEED_123456789, len(GOLDEN_BUFFER))


def test_empty_and_tiny_buffers() -> None:
    chunker = Chunker(seed=0)
    assert chunker.boundaries(b"") == []
    assert chunker.boundaries(b"x") == [1]
    assert chunker.boundaries(bytes(MIN_SIZE)) == [MIN_SIZE]


# --- deduplication ----------------------------------------------------------


def test_an_insertion_moves_few_boundaries() -> None:
    chunker = Chunker(seed=99)
    data = noise(16 * MIB, seed=3)
    middle = len(data) // 2
    edited = data[:middle] + noise(100, seed=4) + data[middle:]
    before = {bytes(c) for c in chunker.cut(data)}
    after = [bytes(c) for c in chunker.cut(edited)]
    shared = sum(len(c) for c in after if c in before)
    assert shared / len(edited) > 0.70
    assert len(after) - sum(1 for c in after if c in before) <= 3


# --- stream cutting ---------------------------------------------------------


def cut_in_pieces(chunker: Chunker, data: bytes, pieces: list[int]) -> list[int]:
    """Feed `data` piece by piece as a streaming caller does; return chunk lengths."""
    lengths: list[int] = []
    pending = b""
    offset = 0
    sizes = iter(pieces)
    while True:
        piece = next(sizes, len(data))
        block = data[offset : offset + piece]
        offset += len(block)
        pending += block
        final = offset >= len(data)
        cut, used = chunker.cut_stream_part(memoryview(pending), final)
        assert used == sum(len(c) for c in cut)
        assert b"".join(cut) == pending[:used]
        lengths.extend(len(c) for c in cut)
        pending = pending[used:]
        if final:
            assert pending == b""
            return lengths


@pytest.mark.parametrize("piece", [64 * 1024, MIB, 3 * MIB + 17, 9 * MIB])
def test_stream_cut_matches_whole_cut(piece: int) -> None:
    chunker = Chunker(seed=123456789)
    pieces = [piece] * (len(GOLDEN_BUFFER) // piece + 1)
    assert cut_in_pieces(chunker, GOLDEN_BUFFER, pieces) == GOLDEN_SEED_123456789


def test_stream_cut_with_random_pieces_matches_whole_cut() -> None:
    rng = random.Random(11)
    data = noise(12 * MIB, seed=12)
    chunker = Chunker(seed=0)
    for _ in range(3):
        pieces = [rng.randrange(1, 2 * MIB) for _ in range(200)]
        assert cut_in_pieces(chunker, data, pieces) == chunker.boundaries(data)


def test_stream_part_holds_back_the_last_chunk() -> None:
    chunker = Chunker(seed=0)
    whole = chunker.boundaries(GOLDEN_BUFFER)
    cut, used = chunker.cut_stream_part(memoryview(GOLDEN_BUFFER), final=False)
    assert [len(c) for c in cut] == whole[:-1]
    assert used == len(GOLDEN_BUFFER) - whole[-1]
    assert chunker.cut_stream_part(memoryview(GOLDEN_BUFFER[:MIN_SIZE]), final=False) == ([], 0)
    cut, used = chunker.cut_stream_part(memoryview(GOLDEN_BUFFER), final=True)
    assert [len(c) for c in cut] == whole
    assert used == len(GOLDEN_BUFFER)
