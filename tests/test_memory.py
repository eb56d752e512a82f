"""Giving memory back (chute.memory): big blocks are unmapped when freed, once asked."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chute import memory

# In a fresh interpreter: free one big block (glibc's threshold rises to its size),
# then make and free 64 blocks of 1 MiB below a small live one; print RssAnon (MiB)
# before and after.
PROGRAM = """
import sys
from chute import memory
def anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) >> 10
if sys.argv[1] == "fixed":
    memory.map_big_blocks()
big = bytearray(16 << 20)
del big
before = anon()
blocks = [bytearray(1 << 20) for _ in range(64)]
keep = bytearray(1000)
for block in blocks:
    block[::4096] = b"y" * len(block[::4096])
del blocks
print(before, anon())
"""


def _anon_before_and_after(mode: str) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[0]), int(out[1])


@pytest.mark.skipif(memory._libc() is None, reason="not glibc: nothing to tune")
def test_big_blocks_go_back_to_the_system_once_mapped_on_their_own() -> None:
    before, after = _anon_before_and_after("dynamic")
    assert after - before >= 48  # glibc's own rule kept the 64 MiB in the heap
    before, after = _anon_before_and_after("fixed")
    assert after - before <= 8
