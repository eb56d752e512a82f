"""chute under gunicorn behind a real nginx (examples/nginx.conf): 100 MiB up and down.

nginx (the Debian package, installed by .ci/run) and gunicorn run on free
ports with a temporary configuration made from the example file; both are
stopped at the end. The figures are printed (`-s` shows them), never asserted.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT
from webutil import Node, free_port, make_node, request, wait_until_up

MIB = 1 << 20
SIZE = 100 * MIB
WINDOW = 8 * MIB
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

pytestmark = pytest.mark.slow


def nginx_config(tmp: Path, listen: int, upstream: int) -> Path:
    lines = [
        line
        for line in (ROOT / "examples" / "nginx.conf").read_text().splitlines()
        if "# tls" not in line
    ]
    site = "\n".join(lines).replace("127.0.0.1:2002", f"127.0.0.1:{upstream}")
    site = site.replace("server_name backup.example.com;", f"listen 127.0.0.1:{listen};")
    user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""{user}
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
{site}
}}
"""
    )
    return conf


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def behind_nginx(tmp_path: Path) -> Iterator[tuple[Node, str]]:
    if not Path(NGINX).exists():
        pytest.fail("nginx is not installed (.ci/run installs the Debian package)")
    node = make_node(tmp_path / "home")
    node.add_token("writer", "write")
    app_port, web_port = free_port(), free_port()
    gunicorn = [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "--workers",
        "1",
        "--threads",
        "4",
        "--bind",
        f"127.0.0.1:{app_port}",
        "--timeout",
        "300",
        "chute.web.wsgi:app",
    ]
    app = start(gunicorn, node.env, tmp_path / "gunicorn.log")
    web = None
    try:
        wait_until_up(f"http://127.0.0.1:{app_port}/chute/openapi.json", app)
        conf = nginx_config(tmp_path, web_port, app_port)
        web = start([NGINX, "-c", str(conf), "-p", str(tmp_path)], node.env, tmp_path / "nginx.log")
        wait_until_up(f"http://127.0.0.1:{web_port}/chute/openapi.json", web)
        yield node, f"http://127.0.0.1:{web_port}"
    finally:
        if web is not None:
            stop(web)
        stop(app)


def curl(*args: str) -> str:
    return subprocess.run(
        ["curl", "-sS", "-f", *args], capture_output=True, text=True, check=True
    ).stdout


def test_100_mib_up_and_down_through_nginx(behind_nginx: tuple[Node, str], tmp_path: Path) -> None:
    node, base = behind_nginx
    auth = ["-H", f"Authorization: Bearer {node.tokens['writer']}"]
    stream = tmp_path / "stream"
    with open(stream, "wb") as handle:
        for _ in range(SIZE // MIB):
            handle.write(os.urandom(MIB))
    data = stream.read_bytes()
    checksum = hashlib.sha256(data).hexdigest()
    windows = [hashlib.sha256(data[i : i + WINDOW]).hexdigest() for i in range(0, SIZE, WINDOW)]
    name = "peer.example.org/alpha/big/20260101T000000Z"
    url = f"{base}/chute/blob/{name}"

    started = time.perf_counter()
    complete = curl(
        "-X",
        "PUT",
        "--data-binary",
        f"@{stream}",
        *auth,
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        f"Chute-Sha256: {checksum}",
        "-H",
        f"Chute-Window: {WINDOW}",
        f"{url}/0",
    )
    up = time.perf_counter() - started
    assert json.loads(complete) is True
    index = {
        "version": 1,
        "domain": "peer.example.org",
        "node": "alpha",
        "mount": "big",
        "timestamp": "20260101T000000Z",
        "parent": None,
        "shards": len(windows),
        "size": SIZE,
        "checksum": checksum,
        "encrypted": True,
        "window": WINDOW,
        "windows": windows,
    }
    made = request(
        base,
        "POST",
        "/chute/blob/",
        json.dumps(index).encode(),
        {"Content-Type": "application/json"},
        node.tokens["writer"],
    )
    assert made.status == 201, made.body

    started = time.perf_counter()
    curl(*auth, "-o", str(tmp_path / "back"), f"{url}/0")
    down = time.perf_counter() - started
    assert hashlib.sha256((tmp_path / "back").read_bytes()).hexdigest() == checksum

    first, last = 50 * MIB - 7, 58 * MIB + 3
    headers = tmp_path / "range-headers"
    curl(
        *auth, "-r", f"{first}-{last}", "-D", str(headers), "-o", str(tmp_path / "part"), f"{url}/0"
    )
    assert headers.read_text().startswith("HTTP/1.1 206")
    assert (tmp_path / "part").read_bytes() == data[first : last + 1]
    hashes = json.loads(curl(*auth, f"{url}/0/{WINDOW}/3/hash/sha256"))
    assert hashes["sha256"] == windows[3]

    started = time.perf_counter()
    shutil.copyfile(stream, tmp_path / "copy")
    copy = time.perf_counter() - started
    mb = SIZE / 1e6
    print(
        f"\n100 MiB through nginx+gunicorn: up {up:.2f} s ({mb / up:.0f} MB/s), "
        f"down {down:.2f} s ({mb / down:.0f} MB/s); plain file copy {copy:.2f} s "
        f"({mb / copy:.0f} MB/s)"
    )


def test_errors_pass_through_nginx_in_the_json_shape(behind_nginx: tuple[Node, str]) -> None:
    _, base = behind_nginx
    resp = request(base, "GET", "/chute/blob/", headers={"Content-Length": "0"})
    assert resp.status == 401 and resp.json()["error"] == "unauthorized"
