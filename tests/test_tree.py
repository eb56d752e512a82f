"""Listings: each entry's canonical text is cut out of the listing exactly as serialising gives it.

Entry versions in the graph are named by a keyed hash of that text, so the
fast path (`decode_listing_texts`) must agree with `entry_bytes` on every
entry, and fall back to it on a listing that is not in canonical form.
"""

from __future__ import annotations

import json

import pyoxigraph as ox
from hypothesis import given
from hypothesis import strategies as st

from chute.graph_lines import _text
from chute.tree import decode_listing, decode_listing_texts, encode_listing, entry_bytes

names = st.text(min_size=1, max_size=20).filter(lambda s: "/" not in s)
surrogate_names = st.binary(min_size=1, max_size=12).map(
    lambda b: b.replace(b"/", b"_").decode("utf-8", "surrogateescape")
)
entries = st.fixed_dictionaries(
    {
        "name": names | surrogate_names,
        "type": st.sampled_from(["file", "dir", "symlink"]),
        "mode": st.integers(0, 0o177777),
        "mtime": st.integers(-(10**18), 10**19),
    },
    optional={
        "user": st.text(max_size=8),
        "xattrs": st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3),
        "chunks": st.lists(st.text("0123456789abcdef", min_size=4, max_size=4), max_size=3),
        "sparse": st.booleans(),
    },
)


@given(st.lists(entries, max_size=8, unique_by=lambda e: e["name"]))
def test_each_entry_text_is_what_serialising_gives(listing: list[dict[str, object]]) -> None:
    data = encode_listing(listing)  # type: ignore[arg-type]
    found = decode_listing_texts(data)
    assert found == [(e, entry_bytes(e)) for e in decode_listing(data)]


def test_a_listing_not_in_canonical_form_falls_back_to_serialising() -> None:
    entry = {"name": "a b", "type": "file", "mode": 33188, "mtime": 1}
    loose = json.dumps({"entries": [entry, entry]}, indent=1).encode()
    assert decode_listing_texts(loose) == [(entry, entry_bytes(entry))] * 2
    spaced = json.dumps({"entries": [entry, entry]}, separators=(", ", ":")).encode()
    assert decode_listing_texts(spaced) == [(entry, entry_bytes(entry))] * 2


@given(st.text())
def test_string_literals_read_back_as_the_same_text(value: str) -> None:
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        return  # lone surrogates are never written (text_of escapes them first)
    line = f"<urn:s> <urn:p> {_text(value)} ."
    [quad] = ox.parse(line.encode(), format=ox.RdfFormat.N_TRIPLES)
    assert quad.object == ox.Literal(value)
