"""Real protocol servers the scale-out tests start and stop themselves, on free loopback ports.

* `s3_server()`: moto's standalone server (`moto_server`, from the dev
  dependencies), which speaks the S3 REST API over HTTP, conditional writes
  and multipart uploads included.
* `oxigraph_server()`: the Oxigraph SPARQL 1.1 server (`oxigraph serve`,
  PyPI package `oxigraph`), query and update over HTTP.
* `virtuoso_server()`: OpenLink Virtuoso from Debian (`virtuoso-t`,
  package `virtuoso-opensource`, installed by `.ci/run`), with SPARQL
  update granted to its anonymous endpoint user, on a database in a temp dir.

Each yields the base URL(s) once the server answers, and kills it (the
whole process group) afterwards. `Unavailable` says why a server cannot
start here (its program is missing), so a test can skip with that reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent


class Unavailable(Exception):
    """The server's program is not installed on this machine."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers: good enough
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url}: no answer after {timeout} s: {log.read_text(errors='replace')}")


@contextmanager
def _running(
    argv: list[str], probe: str, workdir: Path, timeout: float = 60.0
) -> Iterator[subprocess.Popen[bytes]]:
    log = workdir / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_http(probe, process, log, timeout)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def s3_server(workdir: Path) -> Iterator[str]:
    """Run moto's S3 server; yield its endpoint URL."""
    program = BIN / "moto_server"
    if not program.exists():
        raise Unavailable("moto_server is not installed (pip install -e '.[dev]')")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with _running([str(program), "-H", "127.0.0.1", "-p", str(port)], url, workdir):
        yield url


@contextmanager
def oxigraph_server(workdir: Path) -> Iterator[str]:
    """Run `oxigraph serve` on a database in `workdir`; yield its base URL."""
    program = BIN / "oxigraph"
    if not program.exists():
        raise Unavailable("the oxigraph server is not installed (pip install -e '.[dev]')")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [str(program), "serve", "--location", str(workdir / "db"), "--bind", f"127.0.0.1:{port}"]
    with _running(argv, url + "/query?query=ASK%7B%7D", workdir):
        yield url


VIRTUOSO_INI = """\
[Database]
DatabaseFile = {db}/virtuoso.db
ErrorLogFile = {db}/virtuoso.log
LockFile = {db}/virtuoso.lck
TransactionFile = {db}/virtuoso.trx
xa_persistent_file = {db}/virtuoso.pxa
MaxCheckpointRemap = 2000
TempStorage = TempDatabase

[TempDatabase]
DatabaseFile = {db}/virtuoso-temp.db
TransactionFile = {db}/virtuoso-temp.trx
MaxCheckpointRemap = 2000

[Parameters]
ServerPort = {sql_port}
DisableUnixSocket = 1
MaxClientConnections = 20
CheckpointInterval = 60
CaseMode = 2
DirsAllowed = ., {db}
NumberOfBuffers = 40000
MaxDirtyBuffers = 30000
MaxQueryMem = 1G

[HTTPServer]
ServerPort = {http_port}
ServerRoot = {db}
MaxClientConnections = 20
ServerThreads = 20
MaxKeepAlives = 20
KeepAliveTimeout = 10
Charset = UTF-8

[SPARQL]
ResultSetMaxRows = 10000000
MaxQueryCostEstimationTime = 0
MaxQueryExecutionTime = 0
MaxSortedTopRows = 10000000
"""


@contextmanager
def virtuoso_server(workdir: Path) -> Iterator[str]:
    """Run Virtuoso on a fresh database in `workdir`; yield its HTTP base URL.

    Its `/sparql` endpoint then takes updates from anyone (granted to the
    `SPARQL` user), which is what a server on loopback in a test may do.
    """
    program = shutil.which("virtuoso-t")
    isql = shutil.which("isql-vt")
    if program is None or isql is None:
        raise Unavailable("Virtuoso is not installed (apt-get install virtuoso-opensource)")
    db = workdir / "virtuoso"
    db.mkdir()
    sql_port, http_port = free_port(), free_port()
    ini = db / "virtuoso.ini"
    ini.write_text(VIRTUOSO_INI.format(db=db, sql_port=sql_port, http_port=http_port))
    url = f"http://127.0.0.1:{http_port}"
    argv = [program, "+foreground", "+configfile", str(ini)]
    with _running(argv, url + "/sparql?query=ASK%7B%7D", db, timeout=120):
        grant = 'GRANT SPARQL_UPDATE TO "SPARQL";'
        subprocess.run(
            [isql, str(sql_port), "dba", "dba", f"exec={grant}"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        yield url
