"""The S3-compatible backend: objects under a key prefix of one bucket.

`CHUTE_REPO=s3://bucket/prefix` names it; everything else comes from the
standard AWS sources that boto3 reads — `AWS_ENDPOINT_URL_S3` (or
`AWS_ENDPOINT_URL`) for MinIO, Ceph RGW, Garage and the like, `AWS_REGION`,
`AWS_PROFILE`, the credential variables and `~/.aws/config` /
`~/.aws/credentials` — so the same URL works against AWS and any server
that speaks the S3 REST API. The bucket must exist (chute never creates or
configures buckets: their policies are the operator's).

Object `a/b/c` is the key `<prefix>/a/b/c`. Names are checked before any
request (`check_name`), and keys are used literally (boto3 percent-encodes
them on the wire, so `%2e%2e` stays three characters).

Immutability. A plain write uses a conditional PUT (`If-None-Match: *`),
which AWS, MinIO, Ceph RGW and moto honour: the server creates the object
only if it is absent, atomically, so two writers can never overwrite each
other. On `412 Precondition Failed` the existing object is read back:
identical bytes are fine, others are a `BlobConflict` (AWS's `409` for a
conditional write racing another one in flight is retried). A server that rejects the header (`501`
or `400 NotImplemented`) switches the store to check-then-write: HEAD, PUT,
then read the object back and compare, which still catches every conflict
except two writers that both finish their check before either writes. A
server that silently ignores the header cannot be detected without writing;
name it with `CHUTE_S3_CONDITIONAL=0` to use check-then-write from the
start. `replace=True` (locks) is a plain PUT, atomic on every S3 server.

Large objects (at least `MULTIPART_THRESHOLD`) go up as multipart uploads
(`PART_SIZE` parts, a few in parallel), completed with the same condition;
a failed upload is aborted so no parts linger. Every request is retried
with exponential backoff by botocore's "standard" retry mode (throttling,
5xx, connection errors; `AWS_MAX_ATTEMPTS` overrides the attempts); what
still fails is a `StorageError`.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chute.errors import BlobConflict, NotFound, StorageError, UsageError
from chute.store.base import BlobStore, check_name, check_range

MULTIPART_THRESHOLD = 64 << 20
PART_SIZE = 16 << 20
PART_THREADS = 4
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
_ABSENT = {"404", "NoSuchKey", "NotFound"}
_EXISTS = {"PreconditionFailed"}
_UNSUPPORTED = {"NotImplemented", "501"}


def parse_url(url: str) -> tuple[str, str]:
    """Split `s3://bucket/prefix` into (bucket, prefix without slashes at either end)."""
    if not url.startswith("s3://"):
        raise UsageError(f"not an S3 URL: {url}")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not _BUCKET.match(bucket):
        raise UsageError(f"invalid S3 bucket name: {bucket!r}")
    prefix = prefix.strip("/")
    if prefix:
        check_name(prefix)
    return bucket, prefix


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _listable(name: str) -> bool:
    try:
        check_name(name)
    except UsageError:
        return False
    return True


def make_client() -> Any:
    """An S3 client from the standard AWS environment and config files."""
    config = Config(
        retries={"mode": "standard", "max_attempts": int(os.environ.get("AWS_MAX_ATTEMPTS", 8))},
        max_pool_connections=32,
        connect_timeout=10,
        read_timeout=120,
    )
    return boto3.session.Session().client("s3", config=config)


class S3Store(BlobStore):
    """Objects as keys under one prefix of one bucket."""

    def __init__(
        self, bucket: str, prefix: str = "", client: Any = None, conditional: bool | None = None
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client if client is not None else make_client()
        if conditional is None:
            conditional = os.environ.get("CHUTE_S3_CONDITIONAL", "1") not in ("0", "no", "false")
        self.conditional = conditional
        self.location = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"

    @classmethod
    def from_url(cls, url: str) -> S3Store:
        """Open `s3://bucket/prefix` with the standard AWS configuration."""
        bucket, prefix = parse_url(url)
        return cls(bucket, prefix)

    def _key(self, name: str) -> str:
        check_name(name)
        return f"{self.prefix}/{name}" if self.prefix else name

    def _fail(self, exc: Exception, what: str) -> StorageError:
        if isinstance(exc, ClientError):
            code = _code(exc)
            if code == "NoSuchBucket":
                return StorageError(f"{what}: bucket {self.bucket} does not exist")
            message = exc.response.get("Error", {}).get("Message", "") or code
            return StorageError(f"{what}: {code} {message}".rstrip())
        return StorageError(f"{what}: {exc}")

    # --- writing ----------------------------------------------------------

    def put(self, name: str, data: bytes | memoryview, replace: bool = False) -> None:
        key = self._key(name)
        body = bytes(data)
        try:
            if replace:
                self._upload(key, body, condition=False)
            elif self.conditional:
                self._put_conditional(name, key, body)
            else:
                self._put_checked(name, key, body)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, f"cannot write {name}") from exc

    def _put_conditional(self, name: str, key: str, body: bytes) -> None:
        try:
            self._upload(key, body, condition=True)
        except ClientError as exc:
            code = _code(exc)
            if code == "ConditionalRequestConflict":  # AWS: another conditional write in flight
                time.sleep(0.5)
                self._put_conditional(name, key, body)
            elif code in _EXISTS or _status(exc) == 412:
                self._same_or_conflict(name, body)
            elif code in _UNSUPPORTED or _status(exc) == 501:
                self.conditional = False  # this server cannot: check, write, read back
                self._put_checked(name, key, body)
            else:
                raise

    def _put_checked(self, name: str, key: str, body: bytes) -> None:
        if self.size(name) is not None:
            self._same_or_conflict(name, body)
            return
        self._upload(key, body, condition=False)
        self._same_or_conflict(name, body)  # another writer may have won the race

    def _same_or_conflict(self, name: str, body: bytes) -> None:
        try:
            stored = self.get(name)
        except NotFound:
            raise StorageError(f"cannot write {name}: it exists and vanished at once") from None
        if stored != body:
            raise BlobConflict(f"{name} exists with other bytes")

    def _upload(self, key: str, body: bytes, condition: bool) -> None:
        extra = {"IfNoneMatch": "*"} if condition else {}
        if len(body) < MULTIPART_THRESHOLD:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, **extra)
            return
        upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        try:
            parts = self._parts(key, upload, memoryview(body))
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload,
                MultipartUpload={"Parts": parts},
                **extra,
            )
        except BaseException:
            # If even the abort fails, the bucket's rule for incomplete uploads is the backstop.
            with contextlib.suppress(ClientError, BotoCoreError):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload)
            raise

    def _parts(self, key: str, upload: str, body: memoryview) -> list[dict[str, Any]]:
        offsets = range(0, len(body), PART_SIZE)

        def send(number: int, offset: int) -> dict[str, Any]:
            part = body[offset : offset + PART_SIZE].tobytes()
            reply = self.client.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload, PartNumber=number, Body=part
            )
            return {"ETag": reply["ETag"], "PartNumber": number}

        with ThreadPoolExecutor(max_workers=PART_THREADS) as pool:
            return list(pool.map(send, range(1, len(offsets) + 1), offsets))

    # --- reading ----------------------------------------------------------

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        key = self._key(name)
        check_range(offset, length)
        if length == 0:
            if self.size(name) is None:
                raise NotFound(f"no object {name}")
            return b""
        args: dict[str, Any] = {}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            args["Range"] = f"bytes={offset}-{end}"
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=key, **args)
            data: bytes = reply["Body"].read()
            return data
        except ClientError as exc:
            if _code(exc) in _ABSENT:
                raise NotFound(f"no object {name}") from None
            if _code(exc) == "InvalidRange" or _status(exc) == 416:
                if self.size(name) is None:  # a range past the end of what there is
                    raise NotFound(f"no object {name}") from None
                return b""
            raise self._fail(exc, f"cannot read {name}") from exc
        except BotoCoreError as exc:
            raise self._fail(exc, f"cannot read {name}") from exc

    def size(self, name: str) -> int | None:
        key = self._key(name)
        try:
            reply = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _ABSENT:
                return None
            raise self._fail(exc, f"cannot stat {name}") from exc
        except BotoCoreError as exc:
            raise self._fail(exc, f"cannot stat {name}") from exc
        return int(reply["ContentLength"])

    def list(self, prefix: str = "") -> Iterator[str]:
        below = self._key(prefix) + "/" if prefix else (f"{self.prefix}/" if self.prefix else "")
        names: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=below):
                for item in page.get("Contents", []):
                    name = item["Key"][len(self.prefix) + 1 if self.prefix else 0 :]
                    if _listable(name):  # not folder markers or keys others put there
                        names.append(name)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, f"cannot list {prefix or 'the repository'}") from exc
        yield from sorted(names)

    def delete(self, name: str) -> None:
        key = self._key(name)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _ABSENT:
                return
            raise self._fail(exc, f"cannot delete {name}") from exc
        except BotoCoreError as exc:
            raise self._fail(exc, f"cannot delete {name}") from exc
