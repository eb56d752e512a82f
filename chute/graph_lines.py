"""The N-Triples text of one entry version, made directly (no RDF term objects).

A put writes hundreds of thousands of these lines, so they are f-strings
over predicates spelled out once here; string literals get JSON's escapes,
which are all valid N-Triples escapes. `chute.graph_write` uses them.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from functools import lru_cache

from chute.graph_terms import CHUTE, NFO, RDF, XSD, Iris
from chute.tree import Entry, mode_string

_KIND_CLASS = {"dir": "Directory", "file": "File", "symlink": "Symlink"}


def text_of(value: str) -> tuple[str, bytes | None]:
    """Return a printable form of a surrogate-escaped name, and its raw bytes if not UTF-8."""
    if value.isascii():  # no surrogate escapes: the usual case, answered without encoding
        return value, None
    try:
        value.encode("utf-8")
        return value, None
    except UnicodeEncodeError:
        raw = value.encode("utf-8", "surrogateescape")
        return raw.decode("utf-8", "backslashreplace"), raw


_RDF_TYPE = f"<{RDF}type>"
_INT = f"^^<{XSD}integer>"
_BOOL = f"^^<{XSD}boolean>"
_B64 = f"^^<{XSD}base64Binary>"


def _c(term: str) -> str:
    return f"<{CHUTE}{term}>"


def _nfo(term: str) -> str:
    return f"<{NFO}{term}>"


# Predicates and classes of the entry path, as N-Triples text.
_P_PATH, _P_NAME, _P_RAW = _c("path"), _nfo("fileName"), _c("rawName")
_P_MODE, _P_PERMS, _P_UID, _P_GID = _c("mode"), _nfo("permissions"), _c("uid"), _c("gid")
_P_OWNER, _P_GROUP, _P_MODIFIED = _c("owner"), _c("group"), _nfo("fileLastModified")
_P_ATTRIBUTES, _ATTRIBUTES_CLASS = _c("attributes"), _c("Attributes")
_P_XATTR = _c("xattr")
_P_XNAME, _P_XVALUE = _c("xattrName"), _c("xattrValue")
_P_TARGET, _P_RAW_TARGET, _P_RDEV = _c("target"), _c("rawTarget"), _c("rdev")
_P_SIZE, _P_HASH = _nfo("fileSize"), _nfo("hasHash")
_P_HASHV = _nfo("hashValue")
_P_CHUNKS, _P_SPARSE = _c("chunks"), _c("sparse")
_P_LINK, _P_NLINK, _P_CONTAINS = _c("hardlinkTo"), _c("nlink"), _c("contains")
_X_CLASS = _c("ExtendedAttribute")
_KIND_TYPE = {k: _c(v) for k, v in _KIND_CLASS.items()}
_SPECIAL = _c("Special")


_ESCAPED = re.compile(r'[\x00-\x1f"\\]')


def _text(value: str) -> str:
    """Return an N-Triples string literal (JSON's escapes are all valid N-Triples escapes)."""
    if _ESCAPED.search(value) is None:  # the usual name: nothing to escape
        return f'"{value}"'
    return json.dumps(value, ensure_ascii=False)


def _datetime(ns: int) -> str:
    """Return an exact xsd:dateTime literal (UTC, down to the nanosecond) for a Unix time in ns."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    stamp = _second(seconds)
    if fraction:
        stamp += f".{fraction:09d}".rstrip("0")
    return f'"{stamp}Z"^^<{XSD}dateTime>'


@lru_cache(maxsize=4096)
def _second(seconds: int) -> str:
    """Files written together share their second: format each one once."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


class Attributes:
    """The attribute nodes of one write: mode, uid, gid, owner and group, shared.

    Versions with the same five values link to one node (`chute:attributes`)
    instead of carrying five triples each: a tree has a handful of such sets,
    so a 50,000-file snapshot loads 250,000 triples fewer (a quarter fewer
    CPU seconds to load it, counting the merges RocksDB does afterwards; the
    put itself took 0.95x the time). A node's lines are
    written with the first version of this write that links to it (again by
    the next write: the same triples, a set). Its IRI is a keyed hash of the
    five values, like every other IRI of the graph.
    """

    def __init__(self, iris: Iris, name_id: Callable[..., str]) -> None:
        self._iris = iris
        self._name_id = name_id
        self._known: dict[tuple[int, int, int, str | None, str | None], str] = {}

    def link(self, lines: list[str], e: Entry) -> str:
        """Return the `<IRI>` of `e`'s attribute node; append its lines if new here."""
        key = (e["mode"], e["uid"], e["gid"], e.get("user"), e.get("group"))
        node = self._known.get(key)
        if node is None:
            digest = self._name_id("attributes", json.dumps(key))
            node = self._known[key] = f"<{self._iris.attributes(digest)}>"
            mode, uid, gid, user, group = key
            lines += (
                f"{node} {_RDF_TYPE} {_ATTRIBUTES_CLASS} .",
                f'{node} {_P_MODE} "{mode}"{_INT} .',
                f'{node} {_P_UID} "{uid}"{_INT} .',
                f'{node} {_P_GID} "{gid}"{_INT} .',
            )
            if user is not None:
                lines.append(f"{node} {_P_OWNER} {_text(user)} .")
            if group is not None:
                lines.append(f"{node} {_P_GROUP} {_text(group)} .")
        return node


def version_lines(
    lines: list[str], iris: Iris, attributes: Attributes, iri: str, path: str, e: Entry
) -> None:
    """Append the lines of one new entry version; a directory's type is left to the caller.

    (A directory version's `rdf:type` marks its whole subtree as written, so
    it goes into the snapshot's transaction: see `chute.graph_write`.)
    """
    s = f"<{iri}>"
    kind = e["type"]
    if kind != "dir":
        lines.append(f"{s} {_RDF_TYPE} {_KIND_TYPE.get(kind, _SPECIAL)} .")
    name, raw = text_of(e["name"])
    node = attributes.link(lines, e)
    lines += (
        f"{s} {_P_PATH} {_text(text_of(path)[0])} .",
        f"{s} {_P_NAME} {_text(name)} .",
        f"{s} {_P_ATTRIBUTES} {node} .",
        f'{s} {_P_PERMS} "{mode_string(e["mode"])}" .',
        f"{s} {_P_MODIFIED} {_datetime(e['mtime'])} .",
    )
    if raw is not None:
        lines.append(f'{s} {_P_RAW} "{base64.b64encode(raw).decode()}"{_B64} .')
    for i, (xname, value) in enumerate(sorted(e.get("xattrs", {}).items())):
        x = f"<{iri}#xattr-{i}>"
        lines += (
            f"{s} {_P_XATTR} {x} .",
            f"{x} {_RDF_TYPE} {_X_CLASS} .",
            f"{x} {_P_XNAME} {_text(xname)} .",
            f'{x} {_P_XVALUE} "{value}"{_B64} .',
        )
    if kind == "file":
        _file_lines(lines, iris, s, e)
    elif kind == "symlink":
        target, raw_target = text_of(e["target"])
        lines.append(f"{s} {_P_TARGET} {_text(target)} .")
        if raw_target is not None:
            encoded = base64.b64encode(raw_target).decode()
            lines.append(f'{s} {_P_RAW_TARGET} "{encoded}"{_B64} .')
    elif "rdev" in e:
        lines.append(f'{s} {_P_RDEV} "{e["rdev"]}"{_INT} .')


def _file_lines(lines: list[str], iris: Iris, s: str, e: Entry) -> None:
    digest = e.get("sha256", "")
    h = f"<{iris.sha256(digest)}>"
    chunks = e.get("chunks", [])
    lines += (
        f'{s} {_P_SIZE} "{e["size"]}"{_INT} .',
        f"{s} {_P_HASH} {h} .",
        f'{h} {_P_HASHV} "{digest}" .',
        f'{s} {_P_CHUNKS} "{" ".join(chunks)}" .',
    )
    if e.get("sparse"):
        lines.append(f'{s} {_P_SPARSE} "true"{_BOOL} .')
    if "link" in e:
        lines.append(f"{s} {_P_LINK} {_text(text_of(e['link'])[0])} .")
    if "nlink" in e:
        lines.append(f'{s} {_P_NLINK} "{e["nlink"]}"{_INT} .')


def contains_head(parent_iri: str) -> str:
    """Return the start of a `chute:contains` line; the child's IRI and `> .` complete it."""
    return f"<{parent_iri}> {_P_CONTAINS} <"


def directory_type(iri: str) -> str:
    """Return the `rdf:type` line of a directory version."""
    return f"<{iri}> {_RDF_TYPE} {_KIND_TYPE['dir']} ."


def root_lines(iri: str) -> list[str]:
    """Return the lines of a snapshot's virtual root but its type: empty path and name."""
    return [f'<{iri}> {_P_PATH} "" .', f'<{iri}> {_P_NAME} "" .']
