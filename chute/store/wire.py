"""Small pieces of the peer protocol that client and server share.

Window numbers travel as `3,5-9,12` (the `Chute-Pruned` header of an
index.json PUT names the windows the owner's prune removed).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from chute.errors import UsageError

_NUMBERS = re.compile(r"^\s*(?:\d{1,12}(?:-\d{1,12})?)(?:\s*,\s*\d{1,12}(?:-\d{1,12})?)*\s*\Z")
MAX_SPAN = 1 << 24


def parse_numbers(text: str) -> frozenset[int]:
    """Parse `3,5-9,12` (window numbers and ranges of them)."""
    if not _NUMBERS.match(text):
        raise UsageError("window numbers are a comma-separated list such as 3,5-9")
    found: set[int] = set()
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        low, high = int(first), int(last or first)
        if high < low or high - low > MAX_SPAN or len(found) > MAX_SPAN:
            raise UsageError(f"bad window range {part.strip()}")
        found.update(range(low, high + 1))
    return frozenset(found)


def format_numbers(numbers: Iterable[int]) -> str:
    """Write window numbers compactly as `3,5-9,12` (what `parse_numbers` reads)."""
    parts: list[str] = []
    run: list[int] = []
    for number in sorted(set(numbers)):
        if run and number == run[-1] + 1:
            run.append(number)
            continue
        if run:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [number]
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(parts)
