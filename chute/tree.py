"""Tree listings: what a snapshot records about each directory's entries.

A listing is canonical JSON (sorted keys, ASCII) of the entries of one
directory, sorted by name. It is stored as an encrypted object whose keyed
id is the hash of those bytes, so an unchanged directory has the same id in
every snapshot and is stored once (Merkle sharing, as restic's trees).

Names and symlink targets are `str` decoded with `surrogateescape`, so
non-UTF-8 names survive the JSON round trip (as `\\udcXX` escapes) and
encode back to the original bytes.

Entry fields: `name`, `type` (file, dir, symlink, fifo, socket, chr, blk),
`mode` (full st_mode), `uid`, `gid`, `user`, `group` (names, when known),
`mtime` (ns), `ctime` (ns) and `ino` (for change detection only), and by
type: files `size`, `sha256`, `chunks` (hex ids), `sizes` (each chunk's
plaintext length, so reads can seek), `sparse`, `nlink`, `link`
(path of the first name of a hardlinked inode in this snapshot); dirs `tree`;
symlinks `target`; devices `rdev`. `xattrs` maps names to base64 values.
"""

from __future__ import annotations

import base64
import grp
import json
import json.scanner
import os
import pwd
import stat
from functools import lru_cache
from typing import Any

Entry = dict[str, Any]

KINDS = {
    stat.S_IFREG: "file",
    stat.S_IFDIR: "dir",
    stat.S_IFLNK: "symlink",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "chr",
    stat.S_IFBLK: "blk",
}


@lru_cache(maxsize=1024)
def user_name(uid: int) -> str | None:
    """Return the user name of `uid`, if the system knows it."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


@lru_cache(maxsize=1024)
def group_name(gid: int) -> str | None:
    """Return the group name of `gid`, if the system knows it."""
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return None


def base_entry(name: str, st: os.stat_result) -> Entry:
    """Return the metadata every entry has, from an lstat result."""
    entry: Entry = {
        "name": name,
        "type": KINDS.get(stat.S_IFMT(st.st_mode), "file"),
        "mode": st.st_mode,
        "uid": st.st_uid,
        "gid": st.st_gid,
        "mtime": st.st_mtime_ns,
        "ctime": st.st_ctime_ns,
        "ino": st.st_ino,
    }
    user, group = user_name(st.st_uid), group_name(st.st_gid)
    if user is not None:
        entry["user"] = user
    if group is not None:
        entry["group"] = group
    if entry["type"] in ("chr", "blk"):
        entry["rdev"] = st.st_rdev
    return entry


def read_xattrs(path: bytes) -> dict[str, str]:
    """Return an entry's extended attributes (name -> base64 value), not following links.

    The stdlib calls are used here (one per file, on the hot path: about half
    the cost of the xattr package's); restore writes them with the package.
    """
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    found: dict[str, str] = {}
    for attr in names:
        try:
            value = os.getxattr(path, attr, follow_symlinks=False)
        except OSError:
            continue  # removed while we looked: not part of this snapshot
        found[attr] = base64.b64encode(value).decode("ascii")
    return found


def encode_listing(entries: list[Entry]) -> bytes:
    """Return the canonical bytes of a directory listing."""
    ordered = sorted(entries, key=lambda e: os.fsencode(e["name"]))
    return json.dumps({"entries": ordered}, sort_keys=True, separators=(",", ":")).encode("ascii")


def decode_listing(data: bytes) -> list[Entry]:
    """Parse a listing's canonical bytes."""
    entries: list[Entry] = json.loads(data)["entries"]
    return entries


_LISTING_HEAD = '{"entries":['
_SCAN = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def decode_listing_texts(data: bytes) -> list[tuple[Entry, str]]:
    """Parse a listing; return each entry with its canonical text (what `entry_bytes` gives).

    A listing is canonical JSON, so each entry's text is its slice of the
    listing: cut out while parsing instead of serialising every entry again.
    """
    text = data.decode("ascii")
    found: list[tuple[Entry, str]] = []
    pos = len(_LISTING_HEAD)
    try:
        if not text.startswith(_LISTING_HEAD) or not text.endswith("]}"):
            raise ValueError("not in canonical form")
        while text[pos] != "]":
            entry, end = _SCAN(text, pos)  # raw_decode's own C scanner, without its layers
            found.append((entry, text[pos:end]))
            pos = end + 1 if text[end] == "," else end
    except (ValueError, IndexError, StopIteration):  # not canonical: parse, then serialise
        return [(e, entry_bytes(e)) for e in decode_listing(data)]
    return found


def entry_bytes(entry: Entry) -> str:
    """Return the canonical text of one entry (for content-addressed graph IRIs)."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"))


def same_inode(entry: Entry, old: Entry) -> bool:
    """Tell whether an entry is the same inode as before, its metadata untouched (ctime)."""
    return (
        old.get("type") == entry["type"]
        and old.get("ino") == entry["ino"]
        and old.get("ctime") == entry["ctime"]
    )


def unchanged(entry: Entry, old: Entry | None) -> bool:
    """Tell whether a file's content can be taken from its previous version unread."""
    return (
        old is not None
        and old.get("type") == "file"
        and "sha256" in old
        and "link" not in old
        and all(old.get(k) == entry[k] for k in ("size", "mtime", "ctime", "ino"))
    )


def mode_string(mode: int) -> str:
    """Return `ls -l` style permissions, e.g. `-rwsr-xr-x`."""
    return stat.filemode(mode)
