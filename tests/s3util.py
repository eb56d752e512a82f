"""An S3 server for the tests: one moto server per session, a fresh bucket per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import Unavailable, s3_server

_buckets = itertools.count()

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "chute-test",
    "AWS_SECRET_ACCESS_KEY": "chute-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The endpoint URL of a moto S3 server that runs for the whole session."""
    try:
        with s3_server(tmp_path_factory.mktemp("moto")) as url:
            yield url
    except Unavailable as exc:
        pytest.skip(str(exc))


def aws_env(endpoint: str, home: Path) -> dict[str, str]:
    """The standard AWS variables that point boto3 at the test server (and no real account)."""
    return {
        **AWS_ENV,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
    }


@pytest.fixture
def s3_bucket(s3_endpoint: str, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty bucket; the AWS environment of this test points at the server."""
    for name, value in aws_env(s3_endpoint, isolated_home).items():
        monkeypatch.setenv(name, value)
    from chute.store.s3 import make_client

    bucket = f"chute-test-{next(_buckets)}"
    make_client().create_bucket(Bucket=bucket)
    return bucket
