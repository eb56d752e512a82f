"""Put and get throughput: the local directory backend next to an S3 server on loopback.

    python -m chute.bench.scaleout [--size-mib 512] [--graph]

Starts moto's S3 server (`moto_server`, a dev dependency) on a free
loopback port, writes a data set of incompressible files (1-32 MiB, seeded),
then times `chute put` and `chute get` (real processes) into a fresh local
repository and into a fresh bucket, and prints one table. With `--graph`
it also runs the S3 case with the graph on an Oxigraph SPARQL server
(`oxigraph serve`, a dev dependency). A program that prints figures, never
a test: moto is an in-memory Python server, so the S3 figures show chute
plus a slow server, not what a production S3 store would sustain.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _server(argv: list[str], probe: str) -> Iterator[None]:
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(probe, timeout=2).close()
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{argv[0]} did not start") from None
                time.sleep(0.1)
        yield
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def make_data(root: Path, size: int, seed: int = 1) -> int:
    """Write incompressible files of 1-32 MiB until `size` bytes; return the total."""
    rng = random.Random(seed)
    total, i = 0, 0
    while total < size:
        n = min(rng.randrange(1 << 20, 32 << 20), size - total)
        path = root / f"d{i % 4}" / f"f{i:04d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(n))
        total, i = total + n, i + 1
    return total


def _timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def run_case(label: str, env: dict[str, str], data: Path, work: Path) -> tuple[str, float, float]:
    """Init, put the data, get it back; return (label, put seconds, get seconds)."""
    chute = str(BIN / "chute")
    subprocess.run([chute, "init", "--generate-key"], env=env, check=True, capture_output=True)
    put = _timed([chute, "put", str(data)], env)
    target = work / f"restore-{label}"
    get = _timed([chute, "get", "latest", "--target", str(target)], env)
    shutil.rmtree(target)
    return label, put, get


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHUTE_", "XDG_", "AWS_"))}
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_CACHE_HOME=str(home / "cache"),
        CHUTE_DOMAIN="bench.example",
        CHUTE_NODE="bench",
    )
    env.update(extra)
    return env


def main(argv: list[str] | None = None) -> None:
    """Run the cases and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--graph", action="store_true", help="also S3 + an Oxigraph server")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="chute-scaleout-"))
    try:
        size = make_data(work / "data", args.size_mib << 20)
        rows = [
            run_case(
                "local dir", _env(work / "h1", CHUTE_REPO=str(work / "repo")), work / "data", work
            )
        ]
        s3port = _port()
        endpoint = f"http://127.0.0.1:{s3port}"
        aws = {
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        moto = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3port)]
        with _server(moto, endpoint):
            import boto3

            boto3.session.Session(
                aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
            ).client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
            env = _env(work / "h2", CHUTE_REPO="s3://bench/one", **aws)
            rows.append(run_case("S3 (moto, loopback)", env, work / "data", work))
            if args.graph:
                gport = _port()
                graph = f"http://127.0.0.1:{gport}"
                oxigraph = [str(BIN / "oxigraph"), "serve", "--location", str(work / "ox")]
                with _server([*oxigraph, "--bind", f"127.0.0.1:{gport}"], graph + "/query"):
                    env = _env(
                        work / "h3",
                        CHUTE_REPO="s3://bench/two",
                        CHUTE_GRAPH=graph + "/query",
                        CHUTE_GRAPH_UPDATE=graph + "/update",
                        **aws,
                    )
                    rows.append(run_case("S3 + SPARQL server", env, work / "data", work))
        mb = size / 1e6
        print(f"{mb:.0f} MB in {len(list((work / 'data').rglob('*.bin')))} files, warm cache")
        print(f"{'backend':<22}{'put s':>8}{'put MB/s':>10}{'get s':>8}{'get MB/s':>10}")
        for label, put, get in rows:
            print(f"{label:<22}{put:>8.2f}{mb / put:>10.0f}{get:>8.2f}{mb / get:>10.0f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
