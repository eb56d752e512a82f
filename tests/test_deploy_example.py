"""examples/deploy: the compose file is well formed and names only settings chute reads."""

from __future__ import annotations

import yaml
from conftest import ROOT

from chute.config import ENV_KEYS

DEPLOY = ROOT / "examples" / "deploy"


def test_compose_has_the_pieces_of_the_scale_out() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert {"s3", "graph", "app", "nginx"} <= set(compose["services"])
    app = compose["services"]["app"]
    assert "gunicorn" in app["command"] and "chute.web.wsgi:app" in app["command"]
    assert (DEPLOY / app["build"]["dockerfile"].split("/")[-1]).exists()
    assert "app:2002" in (DEPLOY / "nginx.conf").read_text()


def test_env_example_names_known_settings() -> None:
    known = set(ENV_KEYS.values()) | {
        "CHUTE_S3_CONDITIONAL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "XDG_CONFIG_HOME",
        "XDG_CACHE_HOME",
        "XDG_DATA_HOME",
    }
    lines = (DEPLOY / "chute.env.example").read_text().splitlines()
    names = {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}
    assert names <= known, names - known
    assert {"CHUTE_REPO", "CHUTE_GRAPH", "CHUTE_GRAPH_UPDATE"} <= names
