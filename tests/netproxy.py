"""A loopback TCP proxy for the peer tests: slow links, long round trips, failures on purpose.

    with Proxy(server_port, rate=2_000_000, latency=0.03) as proxy:
        ... point a peer at proxy.url ...

* `rate`: bytes per second in each direction (a token bucket shared by all
  connections);
* `latency`: seconds added to each request/response turn (the first answer
  bytes after the client has sent something wait this long), the cost of a
  round trip;
* `max_request`: a connection that sends more than this many bytes without
  an answer in between is reset (RST), as a middlebox that drops large
  requests would;
* `stall_over`: past this many unanswered bytes a connection goes silent
  (what the client sends is swallowed, nothing comes back) until the client
  gives up, as a link that stalls does;
* `at_bytes(n, callback)`: call `callback` once the client side has sent n
  bytes in all (to kill the client or the server at a chosen point);
* `retarget(port)`: send new connections to another upstream (a restarted
  server).

Loopback only: it listens on 127.0.0.1 and connects to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

CHUNK = 16 << 10


class Bucket:
    """A token bucket: `take(n)` waits until n bytes may pass."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.tokens = 0.0
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self, n: int) -> None:
        if not self.rate:
            return
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.tokens + (now - self.stamp) * self.rate, self.rate / 10)
            self.stamp = now
            self.tokens -= n
            wait = -self.tokens / self.rate if self.tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)


class Proxy:
    """Forward 127.0.0.1:<port> to an upstream port, with the faults configured."""

    def __init__(
        self,
        upstream: int,
        rate: float | None = None,
        latency: float = 0.0,
        max_request: int | None = None,
        stall_over: int | None = None,
    ) -> None:
        self.upstream = upstream
        self.latency = latency
        self.max_request = max_request
        self.stall_over = stall_over
        self.stalls = 0
        self.up = Bucket(rate)
        self.down = Bucket(rate)
        self.sent = 0  # client -> server bytes, all connections
        self.received = 0  # server -> client bytes
        self.resets = 0
        self.connections = 0
        self._hooks: list[tuple[int, Callable[[], Any]]] = []
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stopped = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopped = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._listener.close()
        self.drop_all()

    def drop_all(self) -> None:
        """Reset every open connection (its pumps close it)."""
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            _abort(sock)

    def retarget(self, upstream: int) -> None:
        self.upstream = upstream

    def at_bytes(self, count: int, callback: Callable[[], Any]) -> None:
        with self._lock:
            self._hooks.append((count, callback))

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                _abort(client)
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._socks |= {client, server}
                self.connections += 1
            Link(self, client, server).start()

    def _count(self, n: int) -> None:
        fired = []
        with self._lock:
            self.sent += n
            for hook in list(self._hooks):
                if self.sent >= hook[0]:
                    self._hooks.remove(hook)
                    fired.append(hook[1])
        for callback in fired:
            callback()

    def _forget(self, *socks: socket.socket) -> None:
        with self._lock:
            self._socks -= set(socks)


class Link:
    """One proxied connection: a pump thread each way."""

    def __init__(self, proxy: Proxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        self.turn = False  # the client sent something not yet answered
        self.unanswered = 0
        self._pumps = 2
        self._lock = threading.Lock()

    def start(self) -> None:
        threading.Thread(target=self._upstream, daemon=True).start()
        threading.Thread(target=self._downstream, daemon=True).start()

    def _upstream(self) -> None:
        proxy = self.proxy
        try:
            while True:
                data = self.client.recv(CHUNK)
                if not data:
                    break
                self.turn = True
                self.unanswered += len(data)
                if proxy.max_request is not None and self.unanswered > proxy.max_request:
                    proxy.resets += 1
                    break
                if proxy.stall_over is not None and self.unanswered > proxy.stall_over:
                    proxy.stalls += 1
                    while self.client.recv(CHUNK):
                        pass  # swallowed, until the client times out and closes
                    break
                proxy.up.take(len(data))
                self.server.sendall(data)
                proxy._count(len(data))
        except OSError:
            pass
        self._close()

    def _downstream(self) -> None:
        proxy = self.proxy
        try:
            while True:
                data = self.server.recv(CHUNK)
                if not data:
                    break
                if self.turn and proxy.latency:
                    time.sleep(proxy.latency)
                self.turn = False
                self.unanswered = 0
                proxy.down.take(len(data))
                self.client.sendall(data)
                proxy.received += len(data)
        except OSError:
            pass
        self._close()

    def _close(self) -> None:
        """Wake the other pump; the last one out closes both sockets.

        Only the pumps close a socket: a close from elsewhere would free its
        descriptor while a pump may still be about to read from that
        number, which a new connection may have been given meanwhile.
        """
        _abort(self.client)
        _abort(self.server)
        with self._lock:
            self._pumps -= 1
            last = self._pumps == 0
        if last:
            self.proxy._forget(self.client, self.server)
            self.client.close()
            self.server.close()


def _abort(sock: socket.socket) -> None:
    """Reset a connection (RST, as a dropped one), keeping the descriptor until closed."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
