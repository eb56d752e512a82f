"""Scale-out end to end: blobs on an S3 server, the graph on a SPARQL server, from real processes.

* one node: `chute init/put/get/query/check/graph rebuild` with `CHUTE_REPO=s3://...`
  and `CHUTE_GRAPH=...`, nothing of the repository or graph on local disk;
* four nodes put into one S3 repository and one SPARQL graph at the same
  time: every snapshot restores bit-exact and `chute check` passes;
* several gunicorn workers serve one repository and one graph while puts run
  (in the workers and from the CLI): every worker sees every snapshot.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import CHUTE, ROOT
from graphutil import GraphBackend, backend_for
from s3util import aws_env
from treeutil import assert_trees_equal
from webutil import Node, free_port, make_node, request, wait_until_up

from chute.store.s3 import make_client

pytestmark = pytest.mark.slow

COUNT = "SELECT (COUNT(?s) AS ?n) WHERE { ?s a chute:Snapshot }"


@pytest.fixture(params=["oxigraph", "virtuoso"])
def graph(request: pytest.FixtureRequest) -> GraphBackend:
    return backend_for(request.param, request)


@pytest.fixture
def bucket(s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in aws_env(s3_endpoint, tmp_path).items():
        monkeypatch.setenv(name, value)
    name = f"scaleout-{time.monotonic_ns()}"
    make_client().create_bucket(Bucket=name)
    return name


def scaled_node(home: Path, node: str, s3_endpoint: str, bucket: str, graph: GraphBackend) -> Node:
    """A node whose repository is the bucket and whose graph is on the server."""
    found = make_node(home, node=node, init=False)
    assert graph.query_url and graph.update_url
    found.env.update(
        aws_env(s3_endpoint, home),
        CHUTE_REPO=f"s3://{bucket}/shared",
        CHUTE_GRAPH=graph.query_url,
        CHUTE_GRAPH_UPDATE=graph.update_url,
    )
    return found


def share_key(first: Node, other: Node) -> None:
    key = first.home / "config" / "chute" / "key"
    target = other.home / "config" / "chute" / "key"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(key, target)


def make_tree(root: Path, seed: int, files: int = 12) -> None:
    rng = random.Random(seed)
    for i in range(files):
        path = root / f"d{i % 3}" / f"f{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randrange(1, 600_000)))
    (root / "shared.txt").write_text("the same on every node\n" * 1000)


def count(node: Node) -> int:
    out = node.run("query", COUNT, "--format", "csv").stdout.split()
    return int(out[-1])


def test_put_get_query_check_on_s3_and_a_sparql_server(
    tmp_path: Path, s3_endpoint: str, bucket: str, graph: GraphBackend
) -> None:
    node = scaled_node(tmp_path / "home", "node1", s3_endpoint, bucket, graph)
    node.run("init", "--generate-key")
    src = tmp_path / "src"
    make_tree(src, 1)
    first = node.run("put", str(src)).stdout.strip()
    (src / "d0" / "f0.bin").write_bytes(b"changed")
    second = node.run("put", str(src)).stdout.strip()
    assert first != second and count(node) == 2
    node.run("get", first, "--target", str(tmp_path / "r1"))
    node.run("get", "latest", "--target", str(tmp_path / "r2"))
    assert_trees_equal(src, tmp_path / "r2" / "src", ignore_root_times=True)
    assert (tmp_path / "r1" / "src" / "d0" / "f0.bin").read_bytes() != b"changed"
    node.run("check", "--read-data")
    out = node.run("graph", "rebuild").stdout
    assert "2 snapshots" in out and count(node) == 2
    # Forget and prune work on the bucket and the remote graph alike.
    node.run("forget", first, "--prune")
    assert count(node) == 1
    node.run("check", "--read-data")
    node.run("get", "latest", "--target", str(tmp_path / "r3"))
    assert_trees_equal(src, tmp_path / "r3" / "src", ignore_root_times=True)
    # Nothing of the repository or the graph is on this node's disk.
    assert not (node.home / "data" / "chute").exists()
    keys = make_client().list_objects_v2(Bucket=bucket, Prefix="shared/")["KeyCount"]
    assert keys > 5


def test_four_nodes_put_into_one_repository_and_graph_at_once(
    tmp_path: Path, s3_endpoint: str, bucket: str, graph: GraphBackend
) -> None:
    nodes = [
        scaled_node(tmp_path / f"home{i}", f"node{i}", s3_endpoint, bucket, graph)
        for i in range(1, 5)
    ]
    nodes[0].run("init", "--generate-key")
    for other in nodes[1:]:
        share_key(nodes[0], other)
    sources = []
    for i, _ in enumerate(nodes):
        src = tmp_path / f"src{i}" / "data"
        make_tree(src, 100 + i)
        sources.append(src)

    def put_all(round_: int) -> list[str]:
        procs = [
            subprocess.Popen(
                [CHUTE, "put", str(src)], env=n.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            for n, src in zip(nodes, sources, strict=True)
        ]
        uris = []
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, f"round {round_}: {err.decode()}"
            uris.append(out.decode().strip())
        return uris

    uris = put_all(1)
    for src in sources:  # change every tree a little, then all put again at once
        (src / "d1" / "new.txt").write_text(f"round 2 of {src}\n")
    uris += put_all(2)
    assert len(set(uris)) == 8
    for node in nodes:
        assert count(node) == 8
    for i, uri in enumerate(uris):
        target = tmp_path / f"restore{i}"
        nodes[(i + 1) % 4].run("get", uri, "--target", str(target))
        source = sources[i % 4]
        if i >= 4:
            assert_trees_equal(source, target / "data", ignore_root_times=True)
        else:
            assert (target / "data" / "shared.txt").read_bytes() == (
                source / "shared.txt"
            ).read_bytes()
            assert not (target / "data" / "d1" / "new.txt").exists()
    for node in nodes:
        node.run("check")
    nodes[2].run("check", "--read-data")


@pytest.fixture
def gunicorn_app(
    tmp_path: Path, s3_endpoint: str, bucket: str, oxigraph_url: str
) -> Iterator[tuple[Node, str, Path]]:
    graph = GraphBackend("oxigraph", oxigraph_url + "/query", oxigraph_url + "/update")
    node = scaled_node(tmp_path / "home", "web", s3_endpoint, bucket, graph)
    node.run("init", "--generate-key")
    node.add_token("admin", "admin")
    mount = tmp_path / "docs"
    make_tree(mount, 7, files=6)
    config = node.home / "config" / "chute" / "config.toml"
    config.write_text(f'[mounts]\ndocs = "{mount}"\n')
    port = free_port()
    log = tmp_path / "gunicorn.log"
    argv = [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "--workers",
        "3",
        "--threads",
        "4",
        "--bind",
        f"127.0.0.1:{port}",
        "chute.web.wsgi:app",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=node.env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base + "/chute/openapi.json", proc)
        yield node, base, mount
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_gunicorn_workers_share_one_repository_and_graph(
    gunicorn_app: tuple[Node, str, Path], tmp_path: Path
) -> None:
    node, base, _ = gunicorn_app
    token = node.tokens["admin"]
    other = tmp_path / "other"
    make_tree(other, 8, files=4)

    def snapshot_now(_: int) -> int:
        body = json.dumps({"mount": "docs"}).encode()
        headers = {"Content-Type": "application/json"}
        return request(base, "POST", "/chute/snapshot", body, headers, token).status

    with ThreadPoolExecutor(max_workers=4) as pool:
        posts = pool.map(snapshot_now, range(3))  # spread over the workers
        cli = pool.submit(node.run, "put", str(other))
        statuses = list(posts)
        cli.result()
    assert statuses == [201, 201, 201]
    for _ in range(24):  # every worker, asked many times, answers the same
        reply = request(
            base,
            "GET",
            "/chute/sparql?query=" + COUNT.replace(" ", "%20").replace("?", "%3F"),
            headers={"Accept": "text/csv"},
            token=token,
        )
        assert reply.status == 200, reply.body
        assert reply.body.split()[-1] == b"4"
    listing = request(base, "GET", "/chute/snapshots", token=token).json()
    assert len(listing) == 4
    # A file of the snapshot the CLI took (after the workers started) downloads from any worker.
    for _ in range(6):
        reply = request(
            base,
            "GET",
            "/chute/snapshots/file?snapshot=latest:"
            + str(other).strip("/")
            + "&path=other/d1/f1.bin",
            token=token,
        )
        assert reply.status == 200, reply.body
        assert reply.body == (other / "d1" / "f1.bin").read_bytes()
    node.run("check")
