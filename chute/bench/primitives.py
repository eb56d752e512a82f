"""How fast this machine runs the primitives of chute's data path, on one core.

The ratios of a run only mean something beside the machine that made them:
on another processor kind zstd level 3 compressed text at 120-190 MB/s
instead of ~320, and SHA-256 ran at 1,100-1,400 instead of ~1,800 (and
each moved between two calls 45 minutes apart on the same shared machine);
a first backup, which spends a quarter of its CPU time in zstd, moves with
them. So the report
says what each primitive does here, measured through chute's own classes on
samples of the data set (text for the compressor, random bytes for the
rest), best of a few passes, before any tool runs.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import zstandard

from chute.chunking import Chunker
from chute.compression import ZSTD_LEVEL
from chute.crypto import SALT_SIZE, T_DATA, MasterKey
from chute.repository import pack

SAMPLE = 16 << 20  # bytes of each sample
PASSES = 3

# Each primitive's name in the report, in the order it prints them.
NAMES = {
    "sha256": "SHA-256",
    "blake3": "keyed BLAKE3 ids",
    "fastcdc": "FastCDC",
    "zstd": f"zstd-{ZSTD_LEVEL} on text",
    "chacha": "ChaCha20-Poly1305",
}


def measure(text_dirs: list[Path], random_dir: Path) -> dict[str, float]:
    """Return MB/s per primitive (one thread), on samples read from the data set."""
    text = _sample(text_dirs)
    noise = _sample([random_dir])
    key = MasterKey.generate()
    chunker = Chunker(key.chunker_seed)
    hasher = key.hasher()
    cipher = key.blob_cipher(os.urandom(SALT_SIZE))
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    noise_chunks = list(chunker.cut(noise))
    text_chunks = list(chunker.cut(text))

    def each(chunks: list[memoryview], use: Callable[[memoryview], object]) -> None:
        for chunk in chunks:
            use(chunk)

    work: dict[str, tuple[int, Callable[[], object]]] = {
        "sha256": (len(noise), lambda: hashlib.sha256(noise).digest()),
        "blake3": (len(noise), lambda: each(noise_chunks, hasher.chunk_id)),
        "fastcdc": (len(noise), lambda: list(chunker.cut(noise))),
        "zstd": (len(text), lambda: each(text_chunks, lambda c: pack(compressor, c))),
        "chacha": (
            len(noise),
            lambda: each(noise_chunks, lambda c: cipher.seal_parts(T_DATA, b"\0" * 32, c)),
        ),
    }
    return {name: round(size / _best(run) / 1e6) for name, (size, run) in work.items()}


def describe(speeds: dict[str, float]) -> str:
    """Return one report line: each primitive's MB/s on one core."""
    parts = [f"{NAMES[name]} {speeds[name]:,.0f}" for name in NAMES if name in speeds]
    return "primitives on one core, MB/s: " + ", ".join(parts)


def _best(run: Callable[[], object]) -> float:
    times = []
    for _ in range(PASSES):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return max(min(times), 1e-9)


def _sample(dirs: list[Path]) -> bytes:
    """Return up to SAMPLE bytes of the files under `dirs`, in a fixed order."""
    parts: list[bytes] = []
    left = SAMPLE
    for path in _files(dirs):
        if left <= 0:
            break
        with open(path, "rb") as handle:
            data = handle.read(left)
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


def _files(dirs: list[Path]) -> Iterator[Path]:
    for top in dirs:
        for folder, subdirs, names in os.walk(top):
            subdirs.sort()
            for name in sorted(names):
                path = Path(folder, name)
                if path.is_file() and not path.is_symlink():
                    yield path
