"""A TCP proxy on loopback that a test can make drop every connection for a while.

It stands between envci and the API server to inject the faults a flaky network or an API server
restart causes: established connections reset, new ones refused.
"""

from __future__ import annotations

import socket
import threading
import time


class FlakyProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._down_until = 0.0
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        self.dropped = 0
        self._silent: set[int] = set()
        self.blackholed = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def blackhole(self) -> None:
        """Make every open connection go silent (no reset, no data), as a dropped route does to
        established flows; new connections work."""
        with self._lock:
            self._silent.update(id(c) for c in self._conns)
            self.blackholed += len(self._conns) // 2

    def drop_for(self, seconds: float) -> None:
        """Reset every open connection and refuse new ones for `seconds`."""
        with self._lock:
            self._down_until = time.monotonic() + seconds
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                # shutdown() first: close() alone does not wake a thread blocked in recv() on the
                # socket, so the connection would go silent instead of being reset.
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.close()
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        self.drop_for(0)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if time.monotonic() < self._down_until:
                self.dropped += 1
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if id(src) in self._silent or id(dst) in self._silent:
                    continue  # swallow: the peer waits for an answer that never comes
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass
