"""Point SPARQL updates written for a store's default graph at one named graph.

History writes into the default graph of its store. On a SPARQL server the
graph of one repository is a named graph instead (`<G>`): a server may hold
several repositories, and some servers (Virtuoso) have no default graph to
write into at all. Queries get `<G>` through the protocol's
`default-graph-uri` parameter; updates have no such parameter for what
they write, so `target` rewrites their text:

* `INSERT DATA { ... }`, `DELETE DATA { ... }` -> `... DATA { GRAPH <G> { ... } ... }`,
  the statements split into blocks of at most `BLOCK` (Virtuoso's parser
  runs out of stack on one block of about 5,000 triples; several blocks in
  one operation are fine, and one operation is one transaction everywhere);
* `DELETE/INSERT ... WHERE` -> `WITH <G> DELETE/INSERT ... WHERE`;
  `DELETE WHERE { P }` -> `WITH <G> DELETE { P } WHERE { P }`;
* `CLEAR`/`DROP` `DEFAULT` or `ALL` -> `CLEAR GRAPH <G>` (never the whole server);
* operations that already name graphs (`GRAPH`, `WITH`, `LOAD`, `CREATE`,
  `ADD`/`MOVE`/`COPY`) pass unchanged.

The scanner knows SPARQL's strings (short and long, both quotes), IRIs and
comments, so braces, dots or keywords inside them never count.
"""

from __future__ import annotations

import re
from typing import NamedTuple

BLOCK = 2000

_SCAN = re.compile(
    r'''(?:"""(?:[^"\\]|\\.|"(?!""))*"""|\'\'\'(?:[^'\\]|\\.|'(?!''))*\'\'\''''
    r"""|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|<[^<>"{}|^`\\\s]*>|\#[^\n]*"""
    r"""|[?$]\w+|@[A-Za-z][A-Za-z0-9-]*|(?:[A-Za-z_](?:[\w-]|\.(?=[\w-]))*)?:(?:[\w%-]|\.(?=[\w%-]))*)"""
    r"""|(?P<word>[A-Za-z_]\w*)|(?P<punct>[{};.])""",
    re.DOTALL,
)


class _Token(NamedTuple):
    kind: str  # "word" or "punct"; strings, IRIs, comments, variables and names are skipped
    text: str
    start: int
    end: int


def _tokens(text: str) -> list[_Token]:
    """The words and punctuation of `text` (what is skipped is matched, never kept)."""
    return [
        _Token(m.lastgroup, m.group(0), m.start(), m.end())
        for m in _SCAN.finditer(text)
        if m.lastgroup is not None
    ]


def _operations(text: str, tokens: list[_Token]) -> list[tuple[int, int, list[_Token]]]:
    """Split an update at top-level `;` into (start, end, tokens) per operation."""
    ops: list[tuple[int, int, list[_Token]]] = []
    depth, start = 0, 0
    current: list[_Token] = []
    for token in tokens:
        if token.kind == "punct" and token.text == "{":
            depth += 1
        elif token.kind == "punct" and token.text == "}":
            depth -= 1
        elif depth == 0 and token.kind == "punct" and token.text == ";":
            ops.append((start, token.start, current))
            start, current = token.end, []
            continue
        current.append(token)
    ops.append((start, len(text), current))
    return ops


def _keywords(tokens: list[_Token]) -> list[_Token]:
    """The top-level keywords of an operation after its prologue (PREFIX and BASE lines)."""
    words, depth = [], 0
    for token in tokens:
        if token.kind == "punct" and token.text in "{}":
            depth += 1 if token.text == "{" else -1
        elif depth == 0 and token.kind == "word":
            words.append(token)
    while words and words[0].text.upper() in ("PREFIX", "BASE"):
        words = words[1:]  # their names and IRIs are not words
    return words


def _braces(tokens: list[_Token]) -> list[tuple[_Token, _Token, list[_Token]]]:
    """The top-level `{ ... }` groups of an operation: (open, close, inner tokens)."""
    groups: list[tuple[_Token, _Token, list[_Token]]] = []
    depth, opener = 0, None
    inner: list[_Token] = []
    for token in tokens:
        if token.kind == "punct" and token.text == "{":
            depth += 1
            if depth == 1:
                opener, inner = token, []
                continue
        elif token.kind == "punct" and token.text == "}":
            depth -= 1
            if depth == 0 and opener is not None:
                groups.append((opener, token, inner))
                continue
        if depth >= 1:
            inner.append(token)
    return groups


def _statements(text: str, start: int, end: int, inner: list[_Token]) -> list[str]:
    """Split a block of triples at its top-level `.` (one statement each)."""
    parts, depth, at = [], 0, start
    for token in inner:
        if token.kind == "punct" and token.text in "{}":
            depth += 1 if token.text == "{" else -1
        elif depth == 0 and token.kind == "punct" and token.text == ".":
            following = text[token.end : token.end + 1]
            if following == "" or following.isspace() or token.end >= end:
                parts.append(text[at : token.end].strip())
                at = token.end
    rest = text[at:end].strip()
    if rest:
        parts.append(rest + " .")
    return [p for p in parts if p not in ("", ".")]


def data(verb: str, iri: str, statements: list[str]) -> str:
    """Return `INSERT DATA` or `DELETE DATA` of N-Triples statements in graph `iri`, in blocks.

    The statements are known to be N-Triples lines, so no scanning is
    needed (what `target` does to any update's text costs time and memory
    in proportion to its size).
    """
    return f"{verb} DATA {{\n{_graph_blocks(iri, statements)}\n}}"


def _graph_blocks(iri: str, statements: list[str]) -> str:
    blocks = []
    for i in range(0, len(statements), BLOCK):
        blocks.append(f"GRAPH <{iri}> {{\n" + "\n".join(statements[i : i + BLOCK]) + "\n}")
    return "\n".join(blocks)


def _next(tokens: list[_Token], token: _Token) -> _Token:
    """The token after `token` (itself if it is the last)."""
    at = tokens.index(token)
    return tokens[at + 1] if at + 1 < len(tokens) else token


def _names_graphs(tokens: list[_Token]) -> bool:
    return any(t.kind == "word" and t.text.upper() in ("GRAPH", "WITH") for t in tokens)


def _target_one(text: str, start: int, end: int, tokens: list[_Token], iri: str) -> str:
    original = text[start:end]
    keywords = _keywords(tokens)
    if not keywords or _names_graphs(tokens):
        return original
    words = [k.text.upper() for k in keywords]
    prologue, body = text[start : keywords[0].start], text[keywords[0].start : end]
    kind = words[0]
    if kind in ("INSERT", "DELETE") and words[1:2] == ["DATA"]:
        opener, closer, inner = _braces(tokens)[0]
        statements = _statements(text, opener.end, closer.start, inner)
        return f"{prologue}{kind} DATA {{\n{_graph_blocks(iri, statements)}\n}}"
    if kind == "DELETE" and _next(tokens, keywords[0]).text.upper() == "WHERE":
        opener, closer, _ = _braces(tokens)[0]
        pattern = text[opener.start : closer.end]
        return f"{prologue}WITH <{iri}> DELETE {pattern} WHERE {pattern}"
    if kind in ("INSERT", "DELETE"):
        return f"{prologue}WITH <{iri}> {body}"
    if kind in ("CLEAR", "DROP") and words[-1] in ("DEFAULT", "ALL"):
        silent = " SILENT" if "SILENT" in words else ""
        return f"{prologue}CLEAR{silent} GRAPH <{iri}>"
    return original


def target(update: str, iri: str) -> str:
    """Rewrite `update` so that what it reads and writes by default is the graph `iri`."""
    tokens = _tokens(update)
    parts = [_target_one(update, s, e, toks, iri) for s, e, toks in _operations(update, tokens)]
    return " ;\n".join(p.strip() for p in parts if p.strip())
