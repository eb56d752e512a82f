"""The RDF terms of the history graph: namespaces, predicates and IRI rules.

The IRI scheme is documented in `ontology/chute.ttl`; this module is the one
place that builds those IRIs. Everything here is pyoxigraph terms, so the
hot write path never touches rdflib.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyoxigraph as ox

from chute.ids import SnapshotName

CHUTE = "https://w3id.org/chute/ns#"
NFO = "http://www.semanticdesktop.org/ontologies/2007/03/22/nfo#"
NIE = "http://www.semanticdesktop.org/ontologies/2007/01/19/nie#"
PROV = "http://www.w3.org/ns/prov#"
DCTERMS = "http://purl.org/dc/terms/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
XSD = "http://www.w3.org/2001/XMLSchema#"

PREFIXES: dict[str, str] = {
    "chute": CHUTE,
    "nfo": NFO,
    "nie": NIE,
    "prov": PROV,
    "dcterms": DCTERMS,
    "rdf": RDF,
    "rdfs": RDFS,
    "xsd": XSD,
}


def n(iri: str) -> ox.NamedNode:
    """Return a named node."""
    return ox.NamedNode(iri)


def c(term: str) -> ox.NamedNode:
    """Return the named node of a `chute:` term."""
    return ox.NamedNode(CHUTE + term)


A = n(RDF + "type")
XSD_DATETIME = n(XSD + "dateTime")
XSD_BASE64 = n(XSD + "base64Binary")

SNAPSHOT = c("Snapshot")
MOUNT = c("Mount")
DIRECTORY = c("Directory")
ROOT = c("root")
CONTAINS = c("contains")
PATH = c("path")
SNAPSHOT_OF = c("snapshotOf")
PREVIOUS = c("previous")
SPAN = c("Span")
VERSION = c("version")
SINCE = c("since")
UNTIL = c("until")
XATTR = c("xattr")
META = c("meta")
HAS_HASH = n(NFO + "hasHash")
ATTRIBUTES = c("attributes")


def value(term: object) -> str:
    """Return the lexical value of a term (an IRI, a blank node or a literal)."""
    if isinstance(term, ox.NamedNode | ox.BlankNode | ox.Literal):
        return term.value
    raise TypeError(f"not a plain RDF term: {term!r}")


def dt(seconds: float) -> ox.Literal:
    """Return an xsd:dateTime literal (UTC) for a Unix time."""
    text = datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
    return ox.Literal(text, datatype=XSD_DATETIME)


class Iris:
    """The IRIs minted under one node's public base URL."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.dir_prefix = f"{self.base}/chute/dir/"
        self.file_prefix = f"{self.base}/chute/file/"

    def snapshot(self, name: SnapshotName) -> str:
        """`<base>/chute/blob/<domain>/<node>/<mount>/<timestamp>/`."""
        return name.uri(self.base)

    def mount(self, name: SnapshotName) -> str:
        """`<base>/chute/blob/<domain>/<node>/<mount>/`: the series of snapshots of one mount."""
        return f"{self.base}/chute/blob/{name.domain}/{name.node}/{name.mount}/"

    def mount_of(self, snapshot_iri: str) -> str:
        """Return the mount IRI of a snapshot IRI (drop its `<timestamp>/`)."""
        head = snapshot_iri.split("#", 1)[0].rstrip("/")
        return head[: head.rfind("/") + 1]

    def entry(self, kind: str, digest: str) -> str:
        """`<base>/chute/dir/<hex>` or `<base>/chute/file/<hex>`."""
        return f"{self.base}/chute/{kind}/{digest}"

    def sha256(self, digest: str) -> str:
        """`<base>/chute/sha256/<hex>`."""
        return f"{self.base}/chute/sha256/{digest}"

    def attributes(self, digest: str) -> str:
        """`<base>/chute/attributes/<hex>`: one owner-and-mode node, shared by versions."""
        return f"{self.base}/chute/attributes/{digest}"

    def is_dir(self, iri: str) -> bool:
        """Tell whether an entry IRI names a directory version."""
        return iri.startswith(self.dir_prefix)

    def name_of(self, snapshot_iri: str) -> SnapshotName:
        """Parse a snapshot IRI back into its blob name."""
        return SnapshotName.parse(snapshot_iri)
