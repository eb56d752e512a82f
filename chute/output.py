"""Formatting for the terminal: snapshot lists, entry lists, mtree, query results."""

from __future__ import annotations

import io
import json
import stat
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from chute.errors import UsageError
from chute.tree import Entry, mode_string

# Format names -> Oxigraph's names for them (pyoxigraph is imported only to print a
# query's result: ~10 MiB and ~30 ms that `chute get` and `chute --help` need not pay).
RESULT_FORMATS = {"json": "JSON", "xml": "XML", "csv": "CSV", "tsv": "TSV"}
GRAPH_FORMATS = {
    "turtle": "TURTLE",
    "ntriples": "N_TRIPLES",
    "xml": "RDF_XML",
    "json": "N_TRIPLES",  # CONSTRUCT --format json: N-Triples is the closest plain form
}


def human_size(size: int) -> str:
    """Return a size like `1.5 MiB`."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def table(headers: list[str], rows: Iterable[list[str]]) -> str:
    """Return a plain aligned text table."""
    body = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in body:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def snapshot_json(index: Any, base: str) -> dict[str, Any]:
    """Return the public JSON form of a snapshot (`chute ls --json`, the web app's list)."""
    stats = index.meta.get("stats", {})
    return {
        "uri": index.name.uri(base),
        "name": index.name.path,
        "domain": index.name.domain,
        "node": index.name.node,
        "mount": index.name.mount,
        "timestamp": index.name.timestamp,
        "source": index.meta.get("source"),
        "parent": index.public.get("parent"),
        "tags": index.meta.get("tags", []),
        "meta": index.meta.get("meta", {}),
        "files": stats.get("files", 0),
        "size": stats.get("bytes_total", 0),
        "stored": index.public.get("size", 0),
    }


def entry_json(path: str, e: Entry) -> dict[str, Any]:
    """Return the public JSON form of a tree entry."""
    out: dict[str, Any] = {
        "path": path,
        "type": e["type"],
        "mode": mode_string(e["mode"]),
        "uid": e["uid"],
        "gid": e["gid"],
        "mtime_ns": e["mtime"],
    }
    for key in ("user", "group", "size", "sha256", "target", "link"):
        if key in e:
            out[key] = e[key]
    return out


def entry_line(path: str, e: Entry) -> str:
    """Return one `ls -l` style line."""
    when = datetime.fromtimestamp(e["mtime"] / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")
    size = str(e.get("size", "")).rjust(12)
    owner = f"{e.get('user', e['uid'])}/{e.get('group', e['gid'])}"
    tail = f" -> {e['target']}" if "target" in e else ""
    return f"{mode_string(e['mode'])} {owner:<16} {size} {when} {_printable(path)}{tail}"


def _printable(text: str) -> str:
    return (
        text.encode("utf-8", "surrogateescape")
        .decode("utf-8", "backslashreplace")
        .replace("\n", "\\n")
    )


def _vis(path: str) -> str:
    """Encode a path as mtree does: octal escapes for unsafe bytes."""
    raw = path.encode("utf-8", "surrogateescape")
    out = []
    for byte in raw:
        char = chr(byte)
        if 0x21 <= byte <= 0x7E and char not in "\\#":
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return "".join(out)


_MTREE_TYPES = {
    "file": "file",
    "dir": "dir",
    "symlink": "link",
    "fifo": "fifo",
    "socket": "socket",
    "chr": "char",
    "blk": "block",
}


def mtree(entries: Iterable[tuple[str, Entry]]) -> str:
    """Return a BSD mtree specification (full-path form) of the entries."""
    lines = ["#mtree"]
    for path, e in entries:
        seconds, nanos = divmod(e["mtime"], 1_000_000_000)
        fields = [
            f"./{_vis(path)}",
            f"type={_MTREE_TYPES.get(e['type'], 'file')}",
            f"mode={stat.S_IMODE(e['mode']):04o}",
            f"uid={e['uid']}",
            f"gid={e['gid']}",
            f"time={seconds}.{nanos:09d}",
        ]
        if "user" in e:
            fields.append(f"uname={_vis(e['user'])}")
        if "group" in e:
            fields.append(f"gname={_vis(e['group'])}")
        if e["type"] == "file":
            fields.append(f"size={e['size']}")
            if e.get("nlink", 1) > 1:
                fields.append(f"nlink={e['nlink']}")
            if "sha256" in e:
                fields.append(f"sha256digest={e['sha256']}")
        if e["type"] == "symlink":
            fields.append(f"link={_vis(e['target'])}")
        lines.append(" ".join(fields))
    return "\n".join(lines) + "\n"


def query_result(result: Any, fmt: str) -> str:
    """Serialise a native Oxigraph query result in the requested format."""
    import pyoxigraph as ox

    if isinstance(result, ox.QueryBoolean):
        if fmt == "table":
            return "true" if bool(result) else "false"
        if fmt not in RESULT_FORMATS:
            raise UsageError(f"format {fmt} does not fit an ASK query")
        return _serialize(result, getattr(ox.QueryResultsFormat, RESULT_FORMATS[fmt]))
    if isinstance(result, ox.QueryTriples):
        fmt = "turtle" if fmt == "table" else fmt
        if fmt not in GRAPH_FORMATS:
            raise UsageError(f"format {fmt} does not fit a CONSTRUCT or DESCRIBE query")
        return _serialize(result, getattr(ox.RdfFormat, GRAPH_FORMATS[fmt]))
    if fmt == "table":
        names = [v.value for v in result.variables]
        rows = [[_term(s[n]) for n in names] for s in result]
        return table(names, rows) + f"\n({len(rows)} row{'s' if len(rows) != 1 else ''})"
    if fmt not in RESULT_FORMATS:
        raise UsageError(f"format {fmt} does not fit a SELECT query")
    return _serialize(result, getattr(ox.QueryResultsFormat, RESULT_FORMATS[fmt]))


def _serialize(result: Any, fmt: Any) -> str:
    buffer = io.BytesIO()
    result.serialize(buffer, fmt)
    return buffer.getvalue().decode("utf-8")


def _term(term: Any) -> str:
    import pyoxigraph as ox

    if term is None:
        return ""
    if isinstance(term, ox.Literal):
        return term.value.replace("\n", "\\n")
    if isinstance(term, ox.NamedNode):
        return term.value
    return str(term)


def dumps(data: Any) -> str:
    """Return pretty JSON."""
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)
