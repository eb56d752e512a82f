"""The chute ontology, its SHACL shapes and the hand-written sample graph.

Checks that ontology/chute.ttl declares (with label, comment and
rdfs:isDefinedBy) every ``chute:`` term the shapes and the sample use, that
it only links to the reused vocabularies without redefining them, that the
sample conforms to ontology/shapes.ttl, and that typical mistakes in a
snapshot graph are caught by the shapes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import owlrl
import pyshacl
import pytest
from owlrl.Namespaces import ERRNS
from rdflib import RDF, RDFS, BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, OWL, PROV, SH

ROOT = Path(__file__).parent.parent
ONTOLOGY_DIR = ROOT / "ontology"
SAMPLE = Path(__file__).parent / "data" / "snapshot_sample.ttl"

CHUTE = Namespace("https://w3id.org/chute/ns#")
ONTOLOGY_IRI = URIRef("https://w3id.org/chute/ns")
XSD = Namespace("http://www.w3.org/2001/XMLSchema#")
NFO = Namespace("http://www.semanticdesktop.org/ontologies/2007/03/22/nfo#")
NIE = Namespace("http://www.semanticdesktop.org/ontologies/2007/01/19/nie#")

# Nodes of the sample graph.
BASE = "https://example.com/chute/"
SNAP1 = URIRef(BASE + "blob/example.com/node1/opt/data/20261126T051500Z/")
SNAP2 = URIRef(BASE + "blob/example.com/node1/opt/data/20261127T051500Z/")
ROOT1 = URIRef(BASE + "dir/85c5bcabdf51ce3a8370b9360e5f8ffa7e01f328dae1954a28702a1038cfc852")
ROOT2 = URIRef(BASE + "dir/3800af8712b9b2a7085c3d05a65cb66bca7a1361eec173839952d44696eb1e5a")
DOCS = URIRef(BASE + "dir/e7c1e0a5267132bb5645d0d15563400cc489f62766786fb0c79b33f9a0ce8af9")
NOTES1 = URIRef(BASE + "file/3a8d25236ddb8235f7224102b95d346abb4968bd50e5892411cd61e40f4c06d8")
README = URIRef(BASE + "file/fa04a60f79bbdcc12e578ab27f4c632a31367cf5fc10d51149eecf0abc7ff292")
README_HASH = URIRef(
    BASE + "sha256/49ff8a159c339268d607076eae916603d1b587221696305542879da0561b60ad"
)
DISK = URIRef(BASE + "file/82642fd747e7fbc76baf0b1c8f8f2d536f422b5b3cbaab1c71e247850b825be3")
CAFE = URIRef(BASE + "file/2fb6d98b6dd54ce303c039734fb49c2549eaa3e3268ff1301b368b9501606000")
HARDLINK = URIRef(BASE + "file/1b198c1b88f939e3a1bf4e1a3fb4185ab5f74ce14b3c4d7afa4a347093316baa")
# the mode and owners of alice's regular files (rw-r--r--)
ALICE_FILE = URIRef(
    BASE + "attributes/d93f7dcbba515016d9eb37b9ba19941e1aaa2f937b16c1ed1bed2c0b01a20ff1"
)

REUSED_NAMESPACES = (str(NFO), str(NIE), str(PROV), str(DCTERMS), str(RDF), str(RDFS), str(XSD))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def ontology() -> Graph:
    return Graph().parse(ONTOLOGY_DIR / "chute.ttl", format="turtle")


@pytest.fixture(scope="module")
def shapes() -> Graph:
    return Graph().parse(ONTOLOGY_DIR / "shapes.ttl", format="turtle")


@pytest.fixture(scope="module")
def sample() -> Graph:
    return Graph().parse(SAMPLE, format="turtle")


def validate(data: Graph, shapes: Graph, ontology: Graph) -> tuple[bool, Graph, str]:
    conforms, report, text = pyshacl.validate(
        data, shacl_graph=shapes, ont_graph=ontology, inference="rdfs"
    )
    return conforms, report, text


def results(report: Graph) -> set[tuple[object, object, object]]:
    """(focus node, result path, constraint component) of every result."""
    return {
        (
            report.value(r, SH.focusNode),
            report.value(r, SH.resultPath),
            report.value(r, SH.sourceConstraintComponent),
        )
        for r in report.subjects(RDF.type, SH.ValidationResult)
    }


def chute_terms(graph: Graph) -> set[URIRef]:
    """Every chute: IRI in the graph, also inside SPARQL query texts."""
    terms = {
        node
        for triple in graph
        for node in triple
        if isinstance(node, URIRef) and str(node).startswith(str(CHUTE))
    }
    for text in graph.objects(None, SH.select):
        terms |= {CHUTE[name] for name in re.findall(r"\bchute:(\w+)", str(text))}
    return terms


def declared_terms(ontology: Graph) -> set[URIRef]:
    return {
        s
        for s in ontology.subjects(RDF.type, None)
        if isinstance(s, URIRef) and str(s).startswith(str(CHUTE))
    }


# --------------------------------------------------------------------------- ontology


def test_ontology_header(ontology: Graph) -> None:
    assert (ONTOLOGY_IRI, RDF.type, OWL.Ontology) in ontology
    assert ontology.value(ONTOLOGY_IRI, OWL.versionIRI) == URIRef("https://w3id.org/chute/ns/0.1")
    assert ontology.value(ONTOLOGY_IRI, OWL.versionInfo) == Literal("0.1")
    for prop in (DCTERMS.title, DCTERMS.description, DCTERMS.created):
        assert ontology.value(ONTOLOGY_IRI, prop) is not None, prop
    assert ontology.namespace_manager.store.namespace("chute") == URIRef(str(CHUTE))


def test_every_term_is_documented(ontology: Graph) -> None:
    kinds = {OWL.Class, OWL.ObjectProperty, OWL.DatatypeProperty}
    terms = declared_terms(ontology)
    assert len(terms) > 40
    for term in terms:
        assert set(ontology.objects(term, RDF.type)) & kinds, f"{term}: no OWL kind"
        assert ontology.value(term, RDFS.label) is not None, f"{term}: no rdfs:label"
        assert ontology.value(term, RDFS.comment) is not None, f"{term}: no rdfs:comment"
        assert ontology.value(term, RDFS.isDefinedBy) == ONTOLOGY_IRI, term


def test_domains_and_ranges(ontology: Graph) -> None:
    classes = set(ontology.subjects(RDF.type, OWL.Class))
    for prop in ontology.subjects(RDF.type, OWL.DatatypeProperty):
        assert ontology.value(prop, RDFS.domain) is not None, prop
        assert str(ontology.value(prop, RDFS.range)).startswith(str(XSD)), prop
    for prop in ontology.subjects(RDF.type, OWL.ObjectProperty):
        assert ontology.value(prop, RDFS.domain) is not None, prop
        assert ontology.value(prop, RDFS.range) in classes, prop
    for prop in set(ontology.subjects(RDF.type, OWL.DatatypeProperty)) & set(
        ontology.subjects(RDF.type, OWL.ObjectProperty)
    ):
        pytest.fail(f"{prop} is both a datatype and an object property")


def test_reused_vocabularies_are_linked_not_redefined(ontology: Graph) -> None:
    for s in ontology.subjects():
        if isinstance(s, URIRef) and s != ONTOLOGY_IRI:
            assert str(s).startswith(str(CHUTE)), f"{s} is described by chute.ttl"
    links = {
        (CHUTE.Snapshot, RDFS.subClassOf, PROV.Entity),
        (CHUTE.Directory, RDFS.subClassOf, NFO.Folder),
        (CHUTE.Directory, RDFS.subClassOf, CHUTE.Entry),
        (CHUTE.File, RDFS.subClassOf, NFO.FileDataObject),
        (CHUTE.File, RDFS.subClassOf, CHUTE.Entry),
        (CHUTE.Symlink, RDFS.subClassOf, NFO.FileDataObject),
        (CHUTE.Symlink, RDFS.subClassOf, CHUTE.Entry),
        (CHUTE.Special, RDFS.subClassOf, CHUTE.Entry),
        (CHUTE.contains, OWL.inverseOf, NFO.belongsToContainer),
    }
    assert links <= set(ontology)


def test_terms_used_by_shapes_and_sample_are_declared(
    ontology: Graph, shapes: Graph, sample: Graph
) -> None:
    declared = declared_terms(ontology)
    assert chute_terms(shapes) - declared == set()
    assert chute_terms(sample) - declared == set()


def test_sample_is_owl_rl_consistent(ontology: Graph, sample: Graph) -> None:
    graph = Graph()
    graph += ontology
    graph += sample
    owlrl.DeductiveClosure(
        owlrl.OWLRL_Semantics, axiomatic_triples=False, datatype_axioms=False
    ).expand(graph)
    assert [str(m) for m in graph.objects(None, ERRNS.error)] == []


# --------------------------------------------------------------------------- sample


def test_sample_shares_unchanged_subtree(sample: Graph) -> None:
    assert sample.value(SNAP1, CHUTE.root) == ROOT1
    assert sample.value(SNAP2, CHUTE.root) == ROOT2
    assert (ROOT1, CHUTE.contains, DOCS) in sample
    assert (ROOT2, CHUTE.contains, DOCS) in sample
    assert (SNAP2, PROV.wasRevisionOf, SNAP1) in sample
    assert sample.value(CAFE, CHUTE.rawName) is not None
    assert sample.value(HARDLINK, CHUTE.hardlinkTo) == Literal("data.bin")
    assert sample.value(README, CHUTE.xattr) is not None
    assert set(sample.subjects(RDF.type, CHUTE.Symlink))
    assert set(sample.objects(SNAP1, CHUTE.tag)) and set(sample.objects(SNAP1, CHUTE.meta))


def test_sample_conforms(ontology: Graph, shapes: Graph, sample: Graph) -> None:
    conforms, _, text = validate(sample, shapes, ontology)
    assert conforms, text


# --------------------------------------------------------------------------- mutations

Mutation = Callable[[Graph], None]


def _drop(s: URIRef, p: URIRef) -> Mutation:
    return lambda g: g.remove((s, p, None))


def _set(s: URIRef, p: URIRef, o: Literal | URIRef) -> Mutation:
    return lambda g: g.set((s, p, o))


def _add(s: URIRef, p: URIRef, o: Literal | URIRef) -> Mutation:
    return lambda g: g.add((s, p, o))


# The mutations the contract names: each alone must make the sample fail.
MUTATIONS: dict[str, tuple[Mutation, URIRef, URIRef | None, URIRef]] = {
    # name: (mutation, expected focus node, expected result path, component)
    "file without nfo:fileSize": (
        _drop(NOTES1, NFO.fileSize),
        NOTES1,
        NFO.fileSize,
        SH.MinCountConstraintComponent,
    ),
    "bad sha256": (
        _set(README_HASH, NFO.hashValue, Literal("49FF8A15" + "0" * 56)),
        README_HASH,
        NFO.hashValue,
        SH.PatternConstraintComponent,
    ),
    "bad timestamp": (
        _set(SNAP1, CHUTE.timestamp, Literal("2026-11-26T05:15:00Z")),
        SNAP1,
        CHUTE.timestamp,
        SH.PatternConstraintComponent,
    ),
    "snapshot without chute:root": (
        _drop(SNAP2, CHUTE.root),
        SNAP2,
        CHUTE.root,
        SH.MinCountConstraintComponent,
    ),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_mutated_sample_does_not_conform(
    name: str, ontology: Graph, shapes: Graph, sample: Graph
) -> None:
    mutate, focus, path, component = MUTATIONS[name]
    data = Graph()
    data += sample
    mutate(data)
    conforms, report, text = validate(data, shapes, ontology)
    assert not conforms
    assert (focus, path, component) in results(report), text


# More defects, on distinct nodes so that each is reported on its own; they
# share one validation run to keep the suite fast.
GRAPH_FOCUS = URIRef("https://w3id.org/chute/shapes#graph")


def _rename_run(g: Graph) -> None:
    old, new = URIRef(f"{SNAP2}#run"), URIRef("https://example.com/runs/1")
    for p, o in list(g.predicate_objects(old)):
        g.remove((old, p, o))
        g.add((new, p, o))
    g.set((SNAP2, PROV.wasGeneratedBy, new))


MORE_DEFECTS: list[tuple[Mutation, tuple[URIRef, URIRef | None, URIRef]]] = [
    # a regular file without its hash node
    (_drop(DISK, NFO.hasHash), (DISK, NFO.hasHash, SH.MinCountConstraintComponent)),
    # a permission string one character short
    (
        _set(README, NFO.permissions, Literal("-rw-r--r-")),
        (README, NFO.permissions, SH.PatternConstraintComponent),
    ),
    # a directory other than the virtual root without its attributes (mode and owners)
    (_drop(DOCS, CHUTE.attributes), (DOCS, None, SH.OrConstraintComponent)),
    # an attributes node without its uid
    (_drop(ALICE_FILE, CHUTE.uid), (ALICE_FILE, CHUTE.uid, SH.MinCountConstraintComponent)),
    # a blank-node child (entries have content-addressed IRIs)
    (
        _add(DOCS, CHUTE.contains, BNode()),
        (DOCS, CHUTE.contains, SH.NodeKindConstraintComponent),
    ),
    # nfo:fileName that is not the last component of chute:path
    (
        _set(CAFE, NFO.fileName, Literal("cafe.txt")),
        (GRAPH_FOCUS, NFO.fileName, SH.SPARQLConstraintComponent),
    ),
    # an xsd:dateTime without time zone
    (
        _set(HARDLINK, NFO.fileLastModified, Literal("2026-11-21T08:30:00", datatype=XSD.dateTime)),
        (HARDLINK, NFO.fileLastModified, SH.PatternConstraintComponent),
    ),
    # a run IRI that is not <snapshot IRI>#run
    (_rename_run, (GRAPH_FOCUS, PROV.wasGeneratedBy, SH.SPARQLConstraintComponent)),
]


def test_more_defects_are_each_reported(ontology: Graph, shapes: Graph, sample: Graph) -> None:
    data = Graph()
    data += sample
    for mutate, _ in MORE_DEFECTS:
        mutate(data)
    conforms, report, text = validate(data, shapes, ontology)
    assert not conforms
    found = results(report)
    for _, expected in MORE_DEFECTS:
        assert expected in found, (expected, text)
