"""Gitignore-style exclusion of paths from a backup.

Patterns follow gitignore(5), matched case-sensitively against paths relative
to the backup root (`/`-separated, no leading slash):

* A pattern with a `/` at its start or in its middle is anchored to the root
  and matched against the whole relative path; any other pattern matches the
  last path component at any depth. One leading `/` is dropped after deciding.
* A trailing `/` limits the pattern to directories (it does not anchor it).
* `*`, `?` and `[...]` never match `/`. Brackets take ranges, `!` or `^` for
  negation and POSIX classes such as `[:digit:]`; a reversed range, an
  unknown class or an unterminated `[` is rejected rather than silently
  matching nothing as git does.
* `**` is special only as a whole path segment: a leading `**/` matches any
  number of leading directories (zero included), a trailing `/**` everything
  below, and `/**/` zero or more directories. Elsewhere it means `*`.
* `!pattern` re-includes; the last pattern that matches decides.
* A backslash makes the next character literal (`\\#`, `\\!`, `\\*`, `\\ `).

Exclude files are read line by line: blank lines and lines starting with `#`
are skipped, a trailing CR and a leading UTF-8 BOM are dropped, and trailing
spaces are trimmed unless escaped with a backslash. `from_patterns` applies
the same rules to each string, so a pattern means the same wherever it came
from. Files are decoded like `os.fsdecode` (UTF-8, surrogateescape) so
patterns compare equal to walker paths decoded the same way.

Each pattern is compiled once to one regular expression; a check is at most
one `fullmatch` per pattern, newest first, with no filesystem access.
Unanchored patterns cannot match a `/` (a bare `**` matches anything either
way), so they are matched against the basename alone.

As in git, an excluded directory is not descended into: the walker never asks
about its children, so `!` cannot re-include a file below an excluded
directory, and `excluded("a/b", ...)` answers for that path alone, without
looking at its parents. Pass `is_dir=False` for a symlink to a directory, as
git does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from chute.errors import UsageError

_CLASSES: dict[str, str] = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "blank": " \\t",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": " \\t\\n\\r\\f\\v",
    "upper": "A-Z",
    "xdigit": "0-9A-Fa-f",
}


class _BadPattern(Exception):
    """A pattern cannot be compiled; the argument says why."""


@dataclass(frozen=True, slots=True)
class _Rule:
    """One compiled pattern."""

    match: Callable[[str], re.Match[str] | None]
    anchored: bool
    dir_only: bool
    negated: bool


def _trim_trailing_spaces(line: str) -> str:
    """Drop trailing spaces that are not escaped by a backslash."""
    end = 0
    i = 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line):
            i += 2
            end = i
            continue
        if line[i] != " ":
            end = i + 1
        i += 1
    return line[:end]


def _translate_bracket(body: str, start: int) -> tuple[str, int]:
    """Translate the `[...]` starting at `body[start]`; return (regex, index after `]`)."""
    i = start + 1
    n = len(body)
    negated = i < n and body[i] in "!^"
    if negated:
        i += 1
    items: list[str] = []
    first = True
    while True:
        if i >= n:
            raise _BadPattern("unterminated [")
        c = body[i]
        if c == "]" and not first:
            i += 1
            break
        first = False
        if c == "[" and body.startswith(":", i + 1):
            close = body.find("]", i + 2)
            if close < 0:
                raise _BadPattern("unterminated [")
            if close > i + 3 and body[close - 1] == ":":
                name = body[i + 2 : close - 1]
                if name not in _CLASSES:
                    raise _BadPattern(f"unknown character class [:{name}:]")
                items.append(_CLASSES[name])
                i = close + 1
                continue
        if c == "\\":
            i += 1
            if i >= n:
                raise _BadPattern("unterminated [")
            c = body[i]
        i += 1
        if body.startswith("-", i) and i + 1 < n and body[i + 1] != "]":
            high = body[i + 1]
            i += 2
            if high == "\\":
                if i >= n:
                    raise _BadPattern("unterminated [")
                high = body[i]
                i += 1
            if high < c:
                raise _BadPattern(f"reversed range {c}-{high}")
            items.append(f"{re.escape(c)}-{re.escape(high)}")
        else:
            items.append(re.escape(c))
    inner = "".join(items)
    return (f"[^/{inner}]" if negated else f"(?!/)[{inner}]"), i


def _translate(body: str) -> str:
    """Translate a pattern body (no `!`, no leading or trailing `/`) to a regex."""
    out: list[str] = []
    i = 0
    n = len(body)
    while i < n:
        c = body[i]
        if c == "*":
            j = i
            while j < n and body[j] == "*":
                j += 1
            whole_segment = (i == 0 or body[i - 1] == "/") and (j == n or body[j] == "/")
            if j - i >= 2 and whole_segment:
                if j == n:
                    out.append(".*")
                else:
                    out.append("(?:.*/)?")
                    j += 1
            else:
                out.append("[^/]*")
            i = j
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            regex, i = _translate_bracket(body, i)
            out.append(regex)
        elif c == "\\":
            if i + 1 >= n:
                raise _BadPattern("trailing backslash")
            out.append(re.escape(body[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def _compile(line: str) -> _Rule | None:
    """Compile one exclude line; return None for blank lines and comments."""
    if not line or line.startswith("#"):
        return None
    pattern = _trim_trailing_spaces(line)
    if not pattern:
        return None
    negated = pattern.startswith("!")
    if negated:
        pattern = pattern[1:]
    dir_only = pattern.endswith("/")
    if dir_only:
        pattern = pattern[:-1]
    anchored = "/" in pattern
    if pattern.startswith("/"):
        pattern = pattern[1:]
    if not pattern:
        raise _BadPattern("empty pattern")
    try:
        regex = re.compile(_translate(pattern), re.DOTALL)
    except re.error as exc:  # not expected: every literal is escaped
        raise _BadPattern(str(exc)) from None
    return _Rule(regex.fullmatch, anchored, dir_only, negated)


class ExcludeMatcher:
    """Decide whether paths below a backup root are excluded."""

    __slots__ = ("_patterns", "_rules")

    def __init__(self, patterns: Iterable[str] = (), source: str | None = None) -> None:
        """Compile `patterns`; `source` (a file name) prefixes error messages."""
        kept: list[str] = []
        rules: list[_Rule] = []
        for number, line in enumerate(patterns, start=1):
            try:
                rule = _compile(line)
            except _BadPattern as exc:
                where = f"{source}:{number}: " if source is not None else ""
                raise UsageError(f"{where}invalid exclude pattern {line!r}: {exc}") from None
            if rule is not None:
                kept.append(line)
                rules.append(rule)
        self._patterns = tuple(kept)
        self._rules = tuple(reversed(rules))

    @classmethod
    def from_patterns(cls, patterns: Iterable[str]) -> ExcludeMatcher:
        """Build a matcher from pattern lines, in order (later lines win)."""
        return cls(patterns)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> ExcludeMatcher:
        """Build a matcher from an exclude file."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read exclude file {path!s}: {exc.strerror}") from None
        text = data.decode("utf-8", "surrogateescape").removeprefix("\ufeff")
        lines = [line.removesuffix("\r") for line in text.split("\n")]
        return cls(lines, source=os.fspath(path))

    @property
    def patterns(self) -> tuple[str, ...]:
        """Return the pattern lines in effect (blank lines and comments dropped)."""
        return self._patterns

    def excluded(self, relpath: str, is_dir: bool) -> bool:
        """Return True if `relpath` (relative to the root, `/`-separated) is excluded."""
        name = relpath[relpath.rfind("/") + 1 :]
        for rule in self._rules:
            if rule.dir_only and not is_dir:
                continue
            if rule.match(relpath if rule.anchored else name) is not None:
                return not rule.negated
        return False
