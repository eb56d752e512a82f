"""Plain HTML pages for a browser: the snapshot list and a directory listing.

No templates and no scripts: every value is escaped, every link is built
with `urlencode`.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import urlencode

from chute.output import human_size

_HEAD = (
    "<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
    "<style>body{{font-family:sans-serif}}td,th{{padding:2px 8px;text-align:left}}</style>"
    "</head><body><h1>{title}</h1>"
)


def _page(title: str, body: str) -> str:
    return _HEAD.format(title=escape(title)) + body + "</body></html>\n"


def _link(route: str, text: str, **params: str) -> str:
    return f"<a href='{escape(route + '?' + urlencode(params))}'>{escape(text)}</a>"


def snapshot_list(rows: list[dict[str, Any]]) -> str:
    """Render the list of snapshots."""
    cells = []
    for row in rows:
        tree = _link("/chute/snapshots/tree", row["timestamp"], snapshot=row["name"])
        cells.append(
            f"<tr><td>{tree}</td><td>{escape(str(row['source'] or row['mount']))}</td>"
            f"<td>{row['files']}</td><td>{escape(human_size(row['size']))}</td>"
            f"<td>{escape(', '.join(row['tags']))}</td></tr>"
        )
    table = "<table><tr><th>snapshot</th><th>source</th><th>files</th><th>size</th><th>tags</th>"
    return _page("chute snapshots", table + "</tr>" + "".join(cells) + "</table>")


def tree(snapshot: str, path: str, entries: list[dict[str, Any]]) -> str:
    """Render one directory of a snapshot."""
    rows = []
    if path:
        parent = path.rpartition("/")[0]
        rows.append(
            "<tr><td>" + _link("/chute/snapshots/tree", "..", snapshot=snapshot, path=parent)
        )
    for entry in entries:
        name = entry["path"].rpartition("/")[2]
        if entry["type"] == "dir":
            cell = _link("/chute/snapshots/tree", name + "/", snapshot=snapshot, path=entry["path"])
        elif entry["type"] == "file":
            cell = _link("/chute/snapshots/file", name, snapshot=snapshot, path=entry["path"])
        else:
            cell = escape(name)
        size = human_size(entry["size"]) if "size" in entry else ""
        rows.append(
            f"<tr><td>{cell}</td><td>{escape(entry['mode'])}</td><td>{escape(size)}</td></tr>"
        )
    title = f"{snapshot} /{path}"
    return _page(title, "<table>" + "".join(rows) + "</table>")
