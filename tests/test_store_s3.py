"""The S3 backend: the one contract suite against a real S3 protocol server, and its own rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_contract import DATA, StoreContract, spawn

from chute.errors import BlobConflict, StorageError, UsageError
from chute.store import s3
from chute.store.base import BlobStore, open_store
from chute.store.s3 import S3Store, make_client, parse_url

pytestmark = pytest.mark.slow  # a real S3 server: about a minute on 2 cores


class TestS3Store(StoreContract):
    @pytest.fixture
    def store(self, s3_bucket: str) -> BlobStore:
        return open_store(f"s3://{s3_bucket}/repo/one")


class TestS3StoreAtBucketRoot(StoreContract):
    @pytest.fixture
    def store(self, s3_bucket: str) -> BlobStore:
        return open_store(f"s3://{s3_bucket}")


def test_keys_live_under_the_prefix(s3_bucket: str) -> None:
    store = open_store(f"s3://{s3_bucket}/backups/node1/")
    assert store.location == f"s3://{s3_bucket}/backups/node1"
    store.put("config", b"{}")
    store.put("keys/abc", b"wrapped")
    client = make_client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert keys == ["backups/node1/config", "backups/node1/keys/abc"]
    # A neighbour prefix and a console's folder marker are not objects of this store.
    client.put_object(Bucket=s3_bucket, Key="backups/node10/config", Body=b"x")
    client.put_object(Bucket=s3_bucket, Key="backups/node1/folder/", Body=b"")
    assert list(store.list()) == ["config", "keys/abc"]


def test_multipart_uploads_keep_immutability(
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(s3, "MULTIPART_THRESHOLD", 5 << 20)
    monkeypatch.setattr(s3, "PART_SIZE", 5 << 20)
    store = open_store(f"s3://{s3_bucket}/mp")
    big = bytes(range(256)) * (48 * 1024) + b"end"  # 12 MiB and a bit: three parts
    store.put("0/8388608/0", big)
    assert store.size("0/8388608/0") == len(big)
    assert store.get("0/8388608/0", 5 << 20, 10) == big[5 << 20 : (5 << 20) + 10]
    store.put("0/8388608/0", big)  # identical: fine
    with pytest.raises(BlobConflict):
        store.put("0/8388608/0", big[:-1] + b"!")
    assert store.get("0/8388608/0") == big
    uploads = make_client().list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
    assert uploads == []  # completed or aborted, none left behind


def test_check_then_write_for_servers_without_conditional_writes(
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHUTE_S3_CONDITIONAL", "0")
    store = open_store(f"s3://{s3_bucket}/checked")
    assert isinstance(store, S3Store) and not store.conditional
    store.put("a", DATA)
    store.put("a", DATA)
    with pytest.raises(BlobConflict):
        store.put("a", DATA[:-1])
    store.put("lock", b"1", replace=True)
    store.put("lock", b"2", replace=True)
    assert store.get("a") == DATA and store.get("lock") == b"2"
    # Writers of distinct names never meet; the one check-then-write race is documented.
    results = spawn(8, lambda i: store.put(f"n/{i}", bytes([i]) * 100))
    assert results == [None] * 8


def test_missing_bucket_and_unreachable_server_are_storage_errors(
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    missing = open_store("s3://no-such-bucket-here/x")
    with pytest.raises(StorageError, match="does not exist"):
        missing.put("config", b"{}")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    with pytest.raises(StorageError, match="cannot read config"):
        open_store(f"s3://{s3_bucket}/x").get("config")


@pytest.mark.parametrize(
    "url",
    ["s3://", "s3://UPPER/x", "s3://a/x", "s3://bucket/../x", "s3://bucket/a//b", "s3:/bucket"],
)
def test_bad_urls_are_usage_errors(url: str) -> None:
    with pytest.raises(UsageError):
        if url.startswith("s3://"):
            parse_url(url)
        else:
            open_store(url)


def test_cli_put_and_get_on_s3(
    s3_bucket: str,
    tmp_path: Path,
    chute: object,
) -> None:
    from conftest import Run

    run = chute  # the in-process CLI runner
    assert callable(run)
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("hello s3\n")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 4096)
    repo = f"s3://{s3_bucket}/cli"
    result: Run = run("--repo", repo, "init", "--generate-key")
    uri = run("--repo", repo, "put", str(src)).out.strip()
    assert uri.startswith("https://example.com/chute/blob/example.com/node1/")
    run("--repo", repo, "get", "latest", "--target", str(tmp_path / "out"))
    assert (tmp_path / "out" / "src" / "a.txt").read_text() == "hello s3\n"
    assert (tmp_path / "out" / "src" / "sub" / "b.bin").read_bytes() == bytes(range(256)) * 4096
    run("--repo", repo, "check", "--read-data")
    assert result.code == 0
