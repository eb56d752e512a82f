"""The OpenAPI document agrees with the routing table; a property-based run finds no 5xx."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import falcon
import falcon.inspect
import pytest
from conftest import Run
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from webutil import Node, make_node, request

from chute.web.blobs import BLOB_ROUTES
from chute.web.openapi import document

BLOB_ITEM = "/chute/blob/{rest:path}"


def routing_table(app: falcon.App) -> set[tuple[str, str]]:
    """Return (path template, method) for every responder the app really has."""
    pairs = set()
    for route in falcon.inspect.inspect_routes(app):
        methods = {m.method for m in route.methods if not m.internal}
        if route.path == BLOB_ITEM:
            for template, allowed in BLOB_ROUTES.values():
                assert set(allowed) <= methods, template
                pairs |= {(template, m) for m in allowed}
            continue
        pairs |= {(route.path.replace(":path}", "}"), m) for m in methods}
    return pairs


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, m.upper()) for path, ops in doc["paths"].items() for m in ops}


@pytest.fixture
def full_app(chute: Callable[..., Run], repo_ready: None) -> Iterator[falcon.App]:
    from chute.config import load_settings
    from chute.web.app import build
    from chute.web.settings import ServeSettings

    app, plaintext = build(load_settings({}), ServeSettings())
    yield app
    assert plaintext is not None
    plaintext.close()


def test_routes_and_document_agree(full_app: falcon.App) -> None:
    assert routing_table(full_app) == documented(document(plaintext=True))


def test_blobs_only_routes_and_document_agree(tmp_path: Any) -> None:
    from chute.store.local import LocalStore
    from chute.web.app import create_app
    from chute.web.settings import ServeSettings

    app = create_app(LocalStore(tmp_path / "r"), ServeSettings(), None)
    assert routing_table(app) == documented(document(plaintext=False))


def test_every_operation_has_a_summary_and_scope() -> None:
    for path, ops in document(plaintext=True)["paths"].items():
        for method, op in ops.items():
            assert op["summary"], (path, method)
            if path != "/chute/openapi.json":
                assert op["x-chute-scope"], (path, method)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Node:
    home = tmp_path_factory.mktemp("fuzz") / "home"
    found = make_node(home)
    tree = home.parent / "small"
    tree.mkdir()
    (tree / "a.txt").write_text("a\n")
    found.run("put", str(tree))
    (home / "config" / "chute" / "config.toml").write_text(f'[mounts]\nsmall = "{tree}"\n')
    found.add_token("admin", "admin")
    return found


@pytest.mark.slow
def test_property_based_run_finds_no_5xx(node: Node) -> None:
    import schemathesis
    from schemathesis import GenerationMode

    with node.serve("--setting", "query_time_limit", "5") as base:
        served = request(base, "GET", "/chute/openapi.json")
        assert served.status == 200
        schema = schemathesis.openapi.from_dict(served.json())
        headers = {"Authorization": f"Bearer {node.tokens['admin']}"}
        seen: list[tuple[str, int]] = []
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == len(documented(document(plaintext=True)))
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @settings(
                    max_examples=15,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=operation.as_strategy(generation_mode=mode))
                def check(case: Any) -> None:
                    response = case.call(base_url=base, headers=headers)
                    seen.append((case.operation.label, response.status_code))
                    assert response.status_code < 500, (case.as_curl_command(), response.text)
                    if response.status_code >= 400 and case.method.upper() != "HEAD":
                        assert set(response.json()) == {"error", "status", "message"}

                try:
                    check()
                except Unsatisfiable:
                    assert mode == GenerationMode.NEGATIVE  # nothing to make invalid here
        assert {label for label, _ in seen} == {op.label for op in operations}
