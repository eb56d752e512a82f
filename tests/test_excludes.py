"""Tests for gitignore-style exclusion."""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chute.errors import UsageError
from chute.excludes import ExcludeMatcher

F, D = False, True  # is_dir

# (patterns, relpath, is_dir, excluded)
CASES: list[tuple[list[str], str, bool, bool]] = [
    # no patterns
    ([], "a", F, False),
    # a plain name matches at any depth, files and directories alike
    (["foo"], "foo", F, True),
    (["foo"], "foo", D, True),
    (["foo"], "a/foo", F, True),
    (["foo"], "a/b/foo", D, True),
    (["foo"], "foo.txt", F, False),
    (["foo"], "xfoo", F, False),
    (["foo"], "foo/bar", F, False),  # children are never asked about
    # globs do not cross "/"
    (["*.o"], "main.o", F, True),
    (["*.o"], "src/lib/main.o", F, True),
    (["*.o"], "main.c", F, False),
    (["*.o"], "main.o.bak", F, False),
    (["*"], "anything/at/all", F, True),
    (["a*b"], "a/b", F, False),
    (["a*b"], "axxb", F, True),
    (["a*b"], "ab", F, True),
    (["a?c"], "abc", F, True),
    (["a?c"], "ac", F, False),
    (["a?c"], "abbc", F, False),
    (["doc/a?c"], "doc/a/c", F, False),
    (["doc/*.txt"], "doc/x.txt", F, True),
    (["doc/*.txt"], "doc/sub/x.txt", F, False),
    (["doc/*"], "doc/sub", D, True),
    # dots are literal, not regex wildcards
    (["a.c"], "abc", F, False),
    (["a.c"], "a.c", F, True),
    (["(x)+"], "(x)+", F, True),
    (["(x)+"], "xx", F, False),
    # a slash at the start or in the middle anchors the pattern to the root
    (["/foo"], "foo", F, True),
    (["/foo"], "a/foo", F, False),
    (["a/b"], "a/b", F, True),
    (["a/b"], "x/a/b", F, False),
    (["/a/b"], "a/b", D, True),
    (["/*.c"], "cat-file.c", F, True),
    (["/*.c"], "mozilla-sha1/sha1.c", F, False),
    # a trailing slash means directories only, and does not anchor
    (["build/"], "build", D, True),
    (["build/"], "build", F, False),
    (["build/"], "src/build", D, True),
    (["build/"], "src/build", F, False),
    (["doc/frotz/"], "doc/frotz", D, True),
    (["doc/frotz/"], "a/doc/frotz", D, False),
    (["doc/frotz/"], "doc/frotz", F, False),
    (["/build/"], "build", D, True),
    (["/build/"], "a/build", D, False),
    # leading **/
    (["**/foo"], "foo", F, True),
    (["**/foo"], "a/foo", F, True),
    (["**/foo"], "a/b/c/foo", D, True),
    (["**/foo"], "foox", F, False),
    (["**/foo/bar"], "foo/bar", F, True),
    (["**/foo/bar"], "x/y/foo/bar", F, True),
    (["**/foo/bar"], "foo/x/bar", F, False),
    (["**/cache/"], "a/cache", D, True),
    (["**/cache/"], "a/cache", F, False),
    # trailing /**
    (["abc/**"], "abc/x", F, True),
    (["abc/**"], "abc/x/y/z", D, True),
    (["abc/**"], "abc", D, False),
    (["abc/**"], "x/abc/y", F, False),
    (["abc/**/"], "abc/x/y", D, True),
    (["abc/**/"], "abc/x/y", F, False),
    # /**/ in the middle: zero or more directories
    (["a/**/b"], "a/b", F, True),
    (["a/**/b"], "a/x/b", F, True),
    (["a/**/b"], "a/x/y/b", F, True),
    (["a/**/b"], "a/xb", F, False),
    (["a/**/b"], "x/a/b", F, False),
    (["a/**/b/**/c"], "a/1/b/2/3/c", F, True),
    (["a/**/b/**/c"], "a/b/c", F, True),
    # a bare ** matches everything
    (["**"], "a", F, True),
    (["**"], "a/b/c", D, True),
    # ** that is not a whole segment is an ordinary *
    (["a**b"], "axxb", F, True),
    (["a**b"], "ax/xb", F, False),
    (["x/a**/y"], "x/a1/y", F, True),
    (["x/a**/y"], "x/a1/z/y", F, False),
    (["**foo"], "a/xfoo", F, True),
    (["x/**foo"], "x/a/bfoo", F, False),
    # brackets
    (["[abc].txt"], "b.txt", F, True),
    (["[abc].txt"], "d.txt", F, False),
    (["[a-c]x"], "bx", F, True),
    (["[a-c]x"], "dx", F, False),
    (["[!a-c]x"], "dx", F, True),
    (["[!a-c]x"], "ax", F, False),
    (["[^a-c]x"], "dx", F, True),
    (["[]]x"], "]x", F, True),
    (["[!]]x"], "]x", F, False),
    (["[!]]x"], "ax", F, True),
    (["[a-]x"], "-x", F, True),
    (["[\\]]x"], "]x", F, True),
    (["[[:digit:]]*.log"], "7.log", F, True),
    (["[[:digit:]]*.log"], "a.log", F, False),
    (["[[:upper:][:digit:]]"], "Q", F, True),
    (["[[:upper:][:digit:]]"], "q", F, False),
    (["[[x]"], "[", F, True),
    (["[[x]"], "x", F, True),
    # brackets never match "/", even when they list it or a range spans it
    (["a[/]b"], "a/b", F, False),
    (["a[+-0]b"], "a/b", F, False),
    (["a[+-0]b"], "a.b", F, True),
    (["a[!x]b"], "a/b", F, False),
    (["x/a[!x]b"], "x/a/b", F, False),
    # negation: the last matching pattern wins
    (["*.log", "!keep.log"], "keep.log", F, False),
    (["*.log", "!keep.log"], "drop.log", F, True),
    (["!keep.log", "*.log"], "keep.log", F, True),
    (["*.log", "!keep.log", "keep.log"], "keep.log", F, True),
    (["*", "!*/"], "dir", D, False),
    (["*", "!*/"], "dir", F, True),
    (["*", "!*/", "!*.py"], "a/b.py", F, False),
    (["tmp/", "!tmp"], "tmp", D, False),
    (["!foo"], "foo", F, False),
    (["/*", "!/keep"], "keep", D, False),
    (["/*", "!/keep"], "other", D, True),
    # escapes
    (["\\#notes"], "#notes", F, True),
    (["\\!important"], "!important", F, True),
    (["\\!important"], "important", F, False),
    (["*x", "!\\!x"], "!x", F, False),
    (["*x", "!\\!x"], "x", F, True),
    (["\\*"], "*", F, True),
    (["\\*"], "x", F, False),
    (["a\\?"], "a?", F, True),
    (["a\\?"], "ab", F, False),
    (["\\[x]"], "[x]", F, True),
    (["\\a"], "a", F, True),
    # trailing spaces are trimmed unless escaped
    (["foo  "], "foo", F, True),
    (["foo\\ "], "foo ", F, True),
    (["foo\\ "], "foo", F, False),
    (["foo\\  "], "foo ", F, True),
    (["foo\\\\ "], "foo\\", F, True),
    (["foo\t"], "foo\t", F, True),
    ([" foo"], " foo", F, True),
    ([" foo"], "foo", F, False),
    # blank lines and comments are skipped
    (["", "   ", "# foo"], "# foo", F, False),
    (["#foo"], "#foo", F, False),
    # case-sensitive
    (["Foo"], "foo", F, False),
    # odd characters in names
    (["a*b"], "a\nb", F, True),
    (["dir/**"], "dir/x\ny", F, True),
    (["é*"], "éclair", F, True),
]


@pytest.mark.parametrize(("patterns", "relpath", "is_dir", "expected"), CASES)
def test_excluded(patterns: list[str], relpath: str, is_dir: bool, expected: bool) -> None:
    assert ExcludeMatcher.from_patterns(patterns).excluded(relpath, is_dir) is expected


INVALID = [
    "[abc",
    "a[",
    "[!",
    "[^]x",
    "[]",
    "[z-a]",
    "[[:nope:]]",
    "foo\\",
    "[a\\",
    "!",
    "/",
    "!/",
]


@pytest.mark.parametrize("pattern", INVALID)
def test_invalid_pattern(pattern: str) -> None:
    with pytest.raises(UsageError) as info:
        ExcludeMatcher.from_patterns(["ok", pattern])
    message = str(info.value)
    assert repr(pattern) in message
    assert "\n" not in message


def test_invalid_pattern_in_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "excludes"
    path.write_text("# comment\n*.o\n\nbad[\n")
    with pytest.raises(UsageError, match=r"excludes:4: invalid exclude pattern 'bad\['"):
        ExcludeMatcher.from_file(path)


def test_from_file(tmp_path: Path) -> None:
    path = tmp_path / "excludes"
    path.write_bytes(
        b"\xef\xbb\xbf*.tmp\n"  # BOM before the first pattern
        b"# a comment\n"
        b"\n"
        b"   \n"
        b"\\#literal\n"
        b"\\!bang\n"
        b"cache/   \n"
        b"space\\ \n"
        b"crlf\r\n"
        b"!keep.tmp\n"
        b"/root-only"  # no final newline
    )
    matcher = ExcludeMatcher.from_file(path)
    assert matcher.patterns == (
        "*.tmp",
        "\\#literal",
        "\\!bang",
        "cache/   ",
        "space\\ ",
        "crlf",
        "!keep.tmp",
        "/root-only",
    )
    table = [
        ("a.tmp", F, True),
        ("x/keep.tmp", F, False),
        ("# a comment", F, False),
        ("#literal", F, True),
        ("!bang", F, True),
        ("cache", D, True),
        ("cache", F, False),
        ("space ", F, True),
        ("crlf", F, True),
        ("root-only", F, True),
        ("x/root-only", F, False),
    ]
    for relpath, is_dir, expected in table:
        assert matcher.excluded(relpath, is_dir) is expected, relpath


def test_from_file_non_utf8_names(tmp_path: Path) -> None:
    path = tmp_path / "excludes"
    path.write_bytes(b"caf\xe9*\n")
    matcher = ExcludeMatcher.from_file(path)
    name = b"caf\xe9.txt".decode("utf-8", "surrogateescape")  # as os.fsdecode gives it
    assert matcher.excluded("x/" + name, F)
    assert not matcher.excluded("café.txt", F)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope"
    with pytest.raises(UsageError, match=r"cannot read exclude file .*nope"):
        ExcludeMatcher.from_file(path)


def test_empty_matcher_excludes_nothing() -> None:
    matcher = ExcludeMatcher.from_patterns([])
    assert matcher.patterns == ()
    assert not matcher.excluded("a", D)


def test_from_patterns_accepts_any_iterable() -> None:
    matcher = ExcludeMatcher.from_patterns(p for p in ["*.o", "!x.o"])
    assert matcher.excluded("y.o", F)
    assert not matcher.excluded("x.o", F)


_names = st.text(alphabet="ab.*?", min_size=1, max_size=6)
_segments = st.lists(st.text(alphabet="ab.", min_size=1, max_size=5), min_size=1, max_size=4)


@given(pattern=_names.filter(lambda p: p != "**"), segments=_segments, is_dir=st.booleans())
def test_unanchored_glob_matches_basename_like_fnmatch(
    pattern: str, segments: list[str], is_dir: bool
) -> None:
    matcher = ExcludeMatcher.from_patterns([pattern])
    expected = fnmatchcase(segments[-1], pattern)
    assert matcher.excluded("/".join(segments), is_dir) is expected


@given(segments=_segments, depth=st.integers(min_value=0, max_value=4))
def test_anchored_literal_matches_exact_path_only(segments: list[str], depth: int) -> None:
    pattern = "/".join(segments)
    matcher = ExcludeMatcher.from_patterns([pattern if "/" in pattern else "/" + pattern])
    assert matcher.excluded(pattern, False)
    assert not matcher.excluded("/".join(["x"] * (depth + 1) + segments), False)
