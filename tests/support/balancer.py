"""A TCP load balancer on loopback that sends new connections only to backends whose
`GET /health/ready` answers 200, as Kubernetes endpoints do with a readinessProbe."""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading

import requests


class Balancer:
    READY_INTERVAL = 0.1

    def __init__(self) -> None:
        self._backends: dict[str, tuple[str, int]] = {}
        self._ready: list[str] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._turn = itertools.count()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._check_readiness, daemon=True).start()

    def add(self, url: str) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        with self._lock:
            self._backends[url] = (host, int(port))

    def remove(self, url: str) -> None:
        with self._lock:
            self._backends.pop(url, None)
            self._ready = [u for u in self._ready if u != url]

    def ready(self) -> list[str]:
        with self._lock:
            return list(self._ready)

    def _check_readiness(self) -> None:
        session = requests.Session()
        while not self._closed.wait(self.READY_INTERVAL):
            with self._lock:
                urls = list(self._backends)
            ready = []
            for url in urls:
                try:
                    if session.get(f"{url}/health/ready", timeout=0.5).status_code == 200:
                        ready.append(url)
                except requests.RequestException:
                    pass
            with self._lock:
                self._ready = [u for u in ready if u in self._backends]

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with self._lock:
            ready = [self._backends[u] for u in self._ready if u in self._backends]
        if not ready:
            client.close()
            return
        address = ready[next(self._turn) % len(ready)]
        try:
            backend = socket.create_connection(address, timeout=5)
        except OSError:
            client.close()
            return
        backend.settimeout(None)
        threading.Thread(target=_pump, args=(backend, client), daemon=True).start()
        _pump(client, backend)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()


def _pump(source: socket.socket, target: socket.socket) -> None:
    """Copy until `source` ends, then end `target` (both directions close in the end)."""
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (target, source):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        source.close()
