"""What a server holds for other nodes, as triples in its own graph.

A storage peer learns blob names, public index fields, sizes and times, and
nothing else (see the README's "What a storage peer can learn"); its graph
records exactly that, so the peer's SPARQL endpoint answers "what do I
hold for whom, how much, since when":

    <base>/chute/repo/<domain>/<node>/   a chute:HeldRepository ;
        chute:ownerDomain "<domain>" ; chute:ownerNode "<node>" .
    <base>/chute/repo/<domain>/<node>/<blob>/   a chute:HeldBlob ;
        chute:heldIn <the repository> ; chute:blobPath "<blob>" ;
        chute:streamSize <stream bytes> ; chute:windowSize <n> ;
        chute:windowCount <windows held> ; dcterms:created <when it was received> ;
        [chute:forgotten true] .

(terms in `ontology/chute.ttl`, "Held repositories").

The triples are derived from the held directories alone (a scan, no key),
and replaced as a whole: the query worker re-applies them whenever it opens
the graph (another process may have rebuilt it) and whenever the server
says something was committed or deleted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyoxigraph as ox

from chute.graph_terms import CHUTE, DCTERMS, XSD, A, c, dt, n
from chute.layout import INDEX, BlobFiles, scan
from chute.store.local import LocalStore
from chute.web.spaces import held_spaces

HELD_REPOSITORY = c("HeldRepository")
HELD_BLOB = c("HeldBlob")
_INT = n(XSD + "integer")
_BOOL = n(XSD + "boolean")

CLEAR = f"""
DELETE {{ ?s ?p ?o }} WHERE {{
  ?s a ?class ; ?p ?o .
  VALUES ?class {{ <{CHUTE}HeldRepository> <{CHUTE}HeldBlob> }}
}}
"""


def _int(number: int) -> ox.Literal:
    return ox.Literal(str(number), datatype=_INT)


def held_quads(held_dir: Path, base: str) -> list[ox.Quad]:
    """Describe every repository under `held_dir` and the complete blobs in it."""
    quads: list[ox.Quad] = []
    base = base.rstrip("/")
    for domain, node in held_spaces(held_dir):
        root = held_dir / domain / node
        repo = n(f"{base}/chute/repo/{domain}/{node}/")
        quads += [
            ox.Quad(repo, A, HELD_REPOSITORY),
            ox.Quad(repo, c("ownerDomain"), ox.Literal(domain)),
            ox.Quad(repo, c("ownerNode"), ox.Literal(node)),
        ]
        layout = scan(LocalStore(root).list())
        for blob in layout.blobs.values():
            if blob.index:
                quads += _blob_quads(root, repo, f"{base}/chute/repo/{domain}/{node}", blob)
    return quads


def _blob_quads(root: Path, repo: ox.NamedNode, prefix: str, blob: BlobFiles) -> list[ox.Quad]:
    path = blob.path
    index = root / path / INDEX
    try:
        public = json.loads(index.read_bytes())
        received = index.stat().st_mtime
        size, window = int(public["size"]), int(public["window"])
    except (OSError, ValueError, KeyError, TypeError):
        return []
    iri = n(f"{prefix}/{path}/")
    quads = [
        ox.Quad(iri, A, HELD_BLOB),
        ox.Quad(iri, c("heldIn"), repo),
        ox.Quad(iri, c("blobPath"), ox.Literal(path)),
        ox.Quad(iri, c("streamSize"), _int(size)),
        ox.Quad(iri, c("windowSize"), _int(window)),
        ox.Quad(iri, c("windowCount"), _int(len(blob.windows))),
        ox.Quad(iri, n(DCTERMS + "created"), dt(received)),
    ]
    if blob.tombstone:
        quads.append(ox.Quad(iri, c("forgotten"), ox.Literal("true", datatype=_BOOL)))
    return quads


def apply_held(store: ox.Store, quads: list[ox.Quad]) -> None:
    """Replace the held-repository triples of a graph store with `quads`."""
    store.update(CLEAR)
    store.extend(quads)
    store.flush()
