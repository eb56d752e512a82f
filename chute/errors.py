"""One error tree for chute.

Every error a user can cause or meet carries its own one-line message, a
process exit code and an HTTP status, so the CLI (`cli.main`) and the web
app map it once, in one place. Anything that is not a `ChuteError` is a bug
and keeps its traceback.

Exit codes (also listed in `chute --help`):

    0   success
    1   unexpected internal error (a bug: the traceback is printed)
    2   usage error (bad option, bad argument, bad configuration)
    3   snapshot saved but incomplete (unreadable files, files changed while read)
    10  no repository at the given location
    11  repository or graph locked by another process
    12  wrong key or password, or no key given
    13  integrity error: data is damaged or has been tampered with
    14  not found (snapshot, path, blob)
    15  target exists or cannot be written
    16  storage error (I/O, full disk, permission)
    17  repository already exists
"""

from __future__ import annotations

from typing import ClassVar

EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "unexpected internal error (a bug)",
    2: "usage error",
    3: "snapshot saved but incomplete",
    10: "no repository",
    11: "locked by another process",
    12: "wrong key or password",
    13: "integrity error (damaged or tampered data)",
    14: "not found",
    15: "target exists or cannot be written",
    16: "storage error",
    17: "repository already exists",
}


class ChuteError(Exception):
    """Base of every error chute reports to a user."""

    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = " ".join(message.split())  # one line, always

    def __str__(self) -> str:
        return self.message


class UsageError(ChuteError):
    """A bad option, argument or configuration value."""

    exit_code = 2
    http_status = 400
    code = "bad-request"


class IncompleteSnapshot(ChuteError):
    """The snapshot was saved, but some files could not be read."""

    exit_code = 3
    http_status = 200
    code = "incomplete"


class NoRepository(ChuteError):
    """There is no repository at the given location."""

    exit_code = 10
    http_status = 404
    code = "no-repository"


class Locked(ChuteError):
    """Another process holds the lock."""

    exit_code = 11
    http_status = 423
    code = "locked"


class WrongKey(ChuteError):
    """The key or password does not open the repository."""

    exit_code = 12
    http_status = 403
    code = "wrong-key"


class IntegrityError(ChuteError):
    """Stored data failed authentication or verification."""

    exit_code = 13
    http_status = 422
    code = "integrity"


class NotFound(ChuteError):
    """A snapshot, path or blob does not exist."""

    exit_code = 14
    http_status = 404
    code = "not-found"


class TargetExists(ChuteError):
    """The restore target exists or cannot be written."""

    exit_code = 15
    http_status = 409
    code = "target-exists"


class StorageError(ChuteError):
    """Reading or writing storage failed (I/O error, full disk, permission)."""

    exit_code = 16
    http_status = 503
    code = "storage"


class RepositoryExists(ChuteError):
    """A repository already exists at the location."""

    exit_code = 17
    http_status = 409
    code = "repository-exists"


class BlobConflict(ChuteError):
    """A blob is immutable: different bytes were offered under an existing name."""

    exit_code = 16
    http_status = 409
    code = "conflict"


class Unauthorized(ChuteError):
    """No valid credential was given (a missing, unknown or revoked token)."""

    exit_code = 12
    http_status = 401
    code = "unauthorized"


class Forbidden(ChuteError):
    """The credential is valid but lacks the scope, or the server refuses the operation."""

    exit_code = 12
    http_status = 403
    code = "forbidden"


class TooLarge(ChuteError):
    """A request body is larger than the server accepts."""

    exit_code = 2
    http_status = 413
    code = "too-large"


class LimitExceeded(ChuteError):
    """A query went over the server's time or row limit and was stopped."""

    exit_code = 2
    http_status = 400
    code = "limit-exceeded"
