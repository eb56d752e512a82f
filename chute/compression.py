"""How hard a put compresses: zstd levels by name or number.

Like restic's `--compression auto|off|max` and borg's `--compression zstd,N`.
`auto` (zstd 3) is the default: about what restic's default does. `fast`
(zstd 1): a cold first backup of `mixed` took 0.98x the time (0.96x the
CPU; 0.89-0.94x on an earlier machine) and stored 1.8% more (its
compressed text grew 6.6%; a v2 put added 2.3% more). `max`
(zstd 12) is for archives written once: on one core it compressed text at
13 MB/s against 122 for `auto`, into 9% fewer bytes (zstd 19: 2 MB/s, 18%
fewer). `off` stores chunks as they are.

Each object records whether it is compressed, so a repository may hold
objects written at any level, and a restore reads them all. A chunk the
repository already holds is not stored again at another level. Nothing here
imports zstandard: every command resolves its settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chute.errors import UsageError

if TYPE_CHECKING:
    import zstandard

ZSTD_LEVEL = 3  # `auto`
MAX_LEVEL = 19  # zstd's levels above this need far more memory to write
OFF = 0
NAMES = {"off": OFF, "fast": 1, "auto": ZSTD_LEVEL, "max": 12}


def parse(value: str | int) -> int:
    """Return the zstd level a setting names (0: off); UsageError for anything else."""
    text = str(value).strip().lower()
    if text in NAMES:
        return NAMES[text]
    if text.isdigit() and 1 <= int(text) <= MAX_LEVEL:
        return int(text)
    names = "|".join(NAMES)
    raise UsageError(f"compression must be {names} or a zstd level 1-{MAX_LEVEL}, not {value!r}")


def compressor(level: int) -> zstandard.ZstdCompressor | None:
    """Return a compressor for `level` (one per thread: they are not shared), None if off."""
    if level == OFF:
        return None
    import zstandard  # only the commands that write pay for it

    return zstandard.ZstdCompressor(level=level)
