"""Deterministic file contents: incompressible bytes and compressible text.

Everything is derived from a seed string, so the same seed gives the same
bytes on every machine and every run; nothing is fetched from the network.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

BLOCK = 4 << 20

TEXT_KINDS = ("log", "csv", "md")

# fmt: off
_SYLLABLES = (
    "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ex", "pra", "dun", "shi", "tor", "bel",
    "qua", "zen", "ost", "rim", "fal", "gor", "um", "ix", "el", "an", "per", "dom", "cre", "vis",
)
# fmt: on
_HOSTS = ("alpha", "bravo", "carbon", "delta", "ember", "fjord")
_SERVICES = ("sshd", "cron", "nginx", "postgres", "kernel", "backup", "mailer")
_LEVELS = ("INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR")


def rng_for(*parts: object) -> random.Random:
    """Return a random generator seeded by the joined `parts`."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest, "big"))


def log_uniform(rng: random.Random, low: int, high: int) -> int:
    """Draw an integer in [low, high] whose logarithm is uniform."""
    if high <= low:
        return low
    return min(high, int(math.exp(rng.uniform(math.log(low), math.log(high)))))


def random_blocks(size: int, *seed: object) -> Iterator[bytes]:
    """Yield `size` incompressible bytes (a ChaCha20 key stream) in blocks."""
    key = hashlib.sha256(":".join(map(str, seed)).encode()).digest()
    stream = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()
    zeros = bytes(min(size, BLOCK))
    left = size
    while left > 0:
        take = min(left, BLOCK)
        yield stream.update(zeros[:take])
        left -= take


def random_bytes(size: int, *seed: object) -> bytes:
    """Return `size` incompressible bytes."""
    return b"".join(random_blocks(size, *seed))


class TextMaker:
    """Make text that compresses like real logs, tables and prose (about 3-4x)."""

    def __init__(self, seed: str, words: int = 6000) -> None:
        rng = rng_for(seed, "vocabulary")
        vocab: list[str] = []
        while len(vocab) < words:
            vocab.append("".join(rng.choices(_SYLLABLES, k=rng.randint(1, 4))))
        self.vocab = vocab
        # Zipf-like weights: a few words are common, most are rare.
        self.cum: list[float] = []
        total = 0.0
        for rank in range(1, words + 1):
            total += 1.0 / rank
            self.cum.append(total)

    def text(self, rng: random.Random, size: int, kind: str) -> bytes:
        """Return `size` bytes of text of `kind` (one of TEXT_KINDS)."""
        parts: list[bytes] = []
        made = 0
        while made < size:
            words = self._words(rng, min(200_000, size // 5 + 32))
            chunk = self._format(rng, kind, words).encode()
            parts.append(chunk)
            made += len(chunk)
        return b"".join(parts)[:size]

    def _words(self, rng: random.Random, count: int) -> list[str]:
        return rng.choices(self.vocab, cum_weights=self.cum, k=count)

    def _format(self, rng: random.Random, kind: str, words: list[str]) -> str:
        lines: list[str] = []
        at = 0
        second = rng.randrange(86_400 * 365)
        while at < len(words):
            n = rng.randint(4, 16)
            phrase = " ".join(words[at : at + n])
            at += n
            if kind == "log":
                second += rng.randint(0, 5)
                day, rest = divmod(second, 86_400)
                lines.append(
                    f"2026-{1 + day // 31 % 12:02d}-{1 + day % 28:02d}T{rest // 3600:02d}:"
                    f"{rest // 60 % 60:02d}:{rest % 60:02d}Z {rng.choice(_HOSTS)} "
                    f"{rng.choice(_SERVICES)}[{rng.randint(100, 9999)}]: "
                    f"{rng.choice(_LEVELS)} {phrase}"
                )
            elif kind == "csv":
                lines.append(
                    f"{rng.randint(1, 10**6)},{words[at - n]},{rng.random() * 1000:.3f},"
                    f'{rng.randint(0, 99)},"{phrase}"'
                )
            else:
                lines.append(phrase.capitalize() + "." + ("\n" if rng.random() < 0.15 else ""))
        return "\n".join(lines) + "\n"
