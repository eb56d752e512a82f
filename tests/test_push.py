"""Peers: push, pull, restore and rebuild from a peer, mutual peers, zero knowledge.

Every test runs real nodes (their own HOME each) and real `chute serve`
processes on free ports, and drives them with the installed `chute`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from peerutil import (
    KIB,
    add_peer,
    files_bytes,
    held,
    random_tree,
    resent,
    server_logs,
    small_window_node,
    transfer,
)
from treeutil import assert_trees_equal, make_every_kind_tree
from webutil import make_node, request

DOMAIN = "example.com"


@pytest.mark.slow
def test_push_then_restore_on_a_fresh_machine(tmp_path: Path) -> None:
    a = small_window_node(tmp_path / "a", "nodea", window=64 * KIB)
    b = make_node(tmp_path / "b", "nodeb", init=False)
    token = b.add_token("peer-a", "write")
    tree = tmp_path / "tree"
    make_every_kind_tree(tree)
    random_tree(tree / "data", seed=1, files=10, size=300 * KIB)
    a.run("put", str(tree))
    with b.serve("--blobs-only") as base:
        add_peer(a, "b", base, token)
        first = transfer(a, "push", "b")
        assert first["windows_sent"] > 10 and first["blobs_sent"] == 1
        assert first["bytes"] == first["bytes_planned"] > 0 and first["throughput"] > 0
        again = transfer(a, "push", "b")
        assert again["windows_sent"] == 0 and again["blobs_skipped"] == 1
        assert again["windows_skipped"] == first["windows_sent"]
        # A fresh machine: only the key and the peer entry are left.
        shutil.rmtree(a.home / "data")
        shutil.rmtree(a.home / "cache")
        rebuilt = a.run("graph", "rebuild", "--from", "b").stdout
        assert "1 snapshots" in rebuilt
        a.run("get", "latest", "--from", "b", "--target", str(tmp_path / "restored"))
        assert_trees_equal(tree, tmp_path / "restored" / tree.name)
        pulled = transfer(a, "pull", "b")
        assert pulled["windows_sent"] == first["windows_sent"] and pulled["blobs_sent"] == 1
        assert len(json.loads(a.run("ls", "--json").stdout)) == 1
        a.run("check", "--read-data")
        files = json.loads(
            a.run(
                "query", "SELECT (COUNT(?f) AS ?n) WHERE { ?f a chute:File }", "--format", "json"
            ).stdout
        )
        assert int(files["results"]["bindings"][0]["n"]["value"]) > 10
    report = a.run("check", "--repo", str(held(b, DOMAIN, "nodea")), "--read-data").stdout
    assert "no damage found" in report
    assert resent(b) == []


@pytest.mark.slow
def test_a_restore_from_a_peer_locks_its_repository_unless_told_not_to(tmp_path: Path) -> None:
    a = small_window_node(tmp_path / "a", "nodea")
    b = make_node(tmp_path / "b", "nodeb", init=False)
    writer = b.add_token("peer-a", "write")
    reader = b.add_token("reader", "read")  # may read blobs, not write a lock
    tree = tmp_path / "tree"
    random_tree(tree, seed=4, files=4)
    a.run("put", str(tree))
    with b.serve("--blobs-only") as base:
        add_peer(a, "b", base, writer)
        transfer(a, "push", "b")
        a.run("get", "latest", "--from", "b", "--target", str(tmp_path / "r1"))
        assert_trees_equal(tree, tmp_path / "r1" / tree.name)
        assert not list(held(b, DOMAIN, "nodea").glob("locks/*"))  # taken, then let go
        add_peer(a, "ro", base, reader)
        target = tmp_path / "r2"
        refused = a.run("get", "latest", "--from", "ro", "--target", str(target), check=False)
        assert refused.returncode == 12 and len(refused.stderr.strip().splitlines()) == 1
        assert "cannot take a shared lock for get" in refused.stderr
        assert "--no-lock" in refused.stderr and not target.exists()
        a.run("get", "latest", "--from", "ro", "--no-lock", "--target", str(target))
        assert_trees_equal(tree, target / tree.name)


@pytest.mark.slow
def test_forgotten_pruned_and_packed_data_travels(tmp_path: Path) -> None:
    a = small_window_node(tmp_path / "a", "nodea")
    b = make_node(tmp_path / "b", "nodeb", init=False)
    token = b.add_token("peer-a", "write")
    tree = tmp_path / "tree"
    random_tree(tree, seed=2, files=16)
    a.run("put", str(tree), "--label", "t")
    with b.serve("--blobs-only") as base:
        add_peer(a, "b", base, token)
        transfer(a, "push", "b")
        for path in sorted(tree.rglob("*.bin"))[::2]:
            path.unlink()
        random_tree(tree / "new", seed=3, files=4)
        a.run("put", str(tree), "--label", "t")
        a.run("forget", "--keep-last", "1")
        a.run("prune", "--max-unused", "0%")
        local = a.repo
        assert any(local.glob("packs/*/index.json")), "prune made no pack"
        summary = transfer(a, "push", "b")
        assert summary["blobs_sent"] >= 2  # the pack and the new snapshot
        a.run("get", "latest", "--from", "b", "--target", str(tmp_path / "r"))
        assert_trees_equal(tree, tmp_path / "r" / tree.name)
    space = held(b, DOMAIN, "nodea")
    assert list(space.glob("example.com/nodea/t/*/forgotten"))
    report = a.run("check", "--repo", str(space), "--read-data").stdout
    assert "no damage found" in report
    # A fresh clone from the peer is a whole repository again.
    (tmp_path / "c").mkdir()
    a.env["CHUTE_REPO"] = str(tmp_path / "c" / "repo")
    with b.serve("--blobs-only") as base:
        a.run("peer", "add", "b", base, "--token", token, "--replace")
        transfer(a, "pull", "b")
    assert "no damage found" in a.run("check", "--read-data").stdout
    assert len(json.loads(a.run("ls", "--json").stdout)) == 1


@pytest.mark.slow
def test_push_of_chosen_snapshots_sends_what_they_need(tmp_path: Path) -> None:
    a = small_window_node(tmp_path / "a", "nodea")
    b = make_node(tmp_path / "b", "nodeb", init=False)
    token = b.add_token("peer-a", "write")
    one, two = tmp_path / "one", tmp_path / "two"
    random_tree(one, seed=4, files=6)
    random_tree(two, seed=5, files=6)
    a.run("put", str(one), "--label", "one")
    a.run("put", str(two), "--label", "two")
    with b.serve("--blobs-only") as base:
        add_peer(a, "b", base, token)
        summary = transfer(a, "push", "b", "latest:one")
        assert summary["blobs_sent"] == 1
        listed = request(base, "GET", "/chute/blob/", token=token).json()
        assert [blob["mount"] for blob in listed] == ["one"]
        a.run("get", "latest:one", "--from", "b", "--target", str(tmp_path / "r"))
        assert_trees_equal(one, tmp_path / "r" / "one")
        missing = a.run(
            "get", "latest:two", "--from", "b", "--target", str(tmp_path / "x"), check=False
        )
        assert missing.returncode == 14


@pytest.mark.slow
def test_mutual_peers_with_limited_tokens(tmp_path: Path) -> None:
    a = make_node(tmp_path / "a", "nodea")
    b = make_node(tmp_path / "b", "nodeb")
    for node, seed in ((a, 6), (b, 7)):
        random_tree(tmp_path / node.env["CHUTE_NODE"], seed=seed, files=4)
        node.run("put", str(tmp_path / node.env["CHUTE_NODE"]), "--label", "home")
    for_b = a.run("token", "add", "peer-b", "--scope", "write", "--prefix", f"{DOMAIN}/nodeb")
    token_for_b = for_b.stdout.strip().splitlines()[-1]
    for_a = b.run("token", "add", "peer-a", "--scope", "write", "--prefix", f"{DOMAIN}/nodea")
    token_for_a = for_a.stdout.strip().splitlines()[-1]
    admin_b = b.add_token("admin", "admin")
    with a.serve() as url_a, b.serve() as url_b:
        add_peer(a, "b", url_b, token_for_a)
        add_peer(b, "a", url_a, token_for_b)
        assert transfer(a, "push", "b")["blobs_sent"] == 1
        assert transfer(b, "push", "a")["blobs_sent"] == 1
        # Each token reaches only its own node's repository on the other side.
        for path in (
            "/chute/repo/example.com/nodea/config",
            "/chute/repo/example.com/other/",
            "/chute/sparql?query=ASK%7B%7D",
            "/chute/snapshots",
        ):
            assert request(url_a, "GET", path, token=token_for_b).status == 403, path
        own = request(url_a, "GET", "/chute/repo/example.com/nodeb/config", token=token_for_b)
        assert own.status == 200
        listed = request(url_a, "GET", "/chute/blob/", token=token_for_b).json()
        assert {blob["node"] for blob in listed} == {"nodeb"}
        for node, other, name in ((a, "b", "nodea"), (b, "a", "nodeb")):
            target = tmp_path / f"from-{other}"
            node.run("get", "latest", "--from", other, "--target", str(target))
            assert_trees_equal(tmp_path / name, target / name)
        # B's own graph says what it holds for A: blob names, sizes, times.
        query = (
            "SELECT ?blob ?size ?when WHERE { ?blob a chute:HeldBlob ; chute:streamSize ?size ; "
            'dcterms:created ?when ; chute:heldIn/chute:ownerNode "nodea" }'
        )
        answer = request(
            url_b,
            "POST",
            "/chute/sparql",
            query.encode(),
            {
                "Content-Type": "application/sparql-query",
                "Accept": "application/sparql-results+json",
            },
            admin_b,
        )
        assert answer.status == 200, answer.body
        rows = answer.json()["results"]["bindings"]
        assert len(rows) == 1 and int(rows[0]["size"]["value"]) > 0
        assert "/chute/repo/example.com/nodea/example.com/nodea/home/" in rows[0]["blob"]["value"]
    # B's own snapshots are untouched by what it holds.
    assert len(json.loads(b.run("ls", "--json").stdout)) == 1
    assert "no damage found" in b.run("check").stdout


MARKERS = [b"ZK-MARKER-7f3a9c", b"another secret phrase 4242"]
NAMES = ["zk-secret-file-name.txt", "Confidential-Plans-2026.odt", "hidden-dir-name"]


@pytest.mark.slow
def test_zero_knowledge_on_the_peer(tmp_path: Path) -> None:
    a = small_window_node(tmp_path / "a", "nodea")
    b = make_node(tmp_path / "b", "nodeb")
    token = b.add_token("peer-a", "write")
    admin = b.add_token("admin", "admin")
    tree = tmp_path / "tree"
    (tree / NAMES[2]).mkdir(parents=True)
    contents = {
        tree / NAMES[0]: MARKERS[0] * 500,
        tree / NAMES[2] / NAMES[1]: MARKERS[1] * 3 + os.urandom(100 * KIB),
        tree / "plain.txt": b"short " + MARKERS[0],
    }
    for path, data in contents.items():
        path.write_bytes(data)
    digests = [hashlib.sha256(d).hexdigest().encode() for d in contents.values()]
    a.run("put", str(tree), "--label", "opaque")
    with b.serve() as base:
        add_peer(a, "b", base, token)
        transfer(a, "push", "b")
        answer = request(
            base,
            "GET",
            "/chute/sparql?query=" + "SELECT%20*%20WHERE%20%7B%3Fs%20%3Fp%20%3Fo%7D",
            headers={"Accept": "text/csv"},
            token=admin,
        )
        assert answer.status == 200 and b"HeldBlob" in answer.body
        seen_by_peer = [answer.body]
        # The peer does hold the data: A gets it back.
        a.run("get", "latest", "--from", "b", "--target", str(tmp_path / "r"))
        assert (tmp_path / "r" / tree.name / NAMES[0]).read_bytes() == MARKERS[0] * 500
    seen_by_peer += [
        files_bytes(b.home / "data"),
        files_bytes(b.home / "cache") if (b.home / "cache").exists() else b"",
        server_logs(b).encode(),
    ]
    needles = [*MARKERS, *(n.encode() for n in NAMES), *digests]
    for haystack in seen_by_peer:
        for needle in needles:
            assert needle not in haystack, needle


def test_peer_commands_and_their_errors(tmp_path: Path) -> None:
    a = make_node(tmp_path / "a", "nodea")
    assert a.run("peer", "add", "b", "ftp://x", check=False).returncode == 2
    a.run(
        "peer",
        "add",
        "b",
        "http://127.0.0.1:9",
        "--token",
        "t",
        "--attempts",
        "1",
        "--space",
        "example.org/laptop",
    )
    assert a.run("peer", "add", "b", "http://127.0.0.1:9", check=False).returncode == 2
    listed = json.loads(a.run("peer", "list", "--json").stdout)
    assert listed == [
        {
            "name": "b",
            "url": "http://127.0.0.1:9",
            "space": "example.org/laptop",
            "timeout": 60.0,
            "inflight": 4,
            "attempts": 1,
            "token": True,
        }
    ]
    assert (a.home / "config" / "chute" / "peers.json").stat().st_mode & 0o077 == 0
    down = a.run("push", "b", check=False)
    assert down.returncode == 16 and len(down.stderr.strip().splitlines()) == 1
    assert "gave up after 1 attempts" in down.stderr
    assert a.run("push", "nobody", check=False).returncode == 14
    assert a.run("get", "latest", "--from", "nobody", "--target", "x", check=False).returncode == 14
    assert a.run("peer", "add", "c", "http://h", "--space", "x", check=False).returncode == 2
    a.run("peer", "remove", "b")
    assert a.run("peer", "remove", "b", check=False).returncode == 14
