"""Real HTTP servers on loopback playing edge-metrics-exporter's management port, and a
guard that keeps the test process's own connections on loopback.

A FakeExporter answers like the field exporter (CLIENTS.md): `GET /health` 200 JSON with
its own status word, `GET /config` its running config, `POST /reload` 200 text/plain
"Config reload triggered". Any route can be made to answer otherwise: another status, a
redirect, an oversized or non-JSON body, bytes trickled slowly, or no answer at all.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

RELOAD_ANSWER = "Config reload triggered"


@dataclass
class Reply:
    status: int = 200
    # dict/list: JSON; str: text; bytes: as is.
    body: Any = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    # Seconds between single bytes of the answer (status line included), or None.
    trickle: float | None = None
    # Accept and read the request, then never answer (until the caller hangs up).
    hang: bool = False
    # Sent as is instead of an HTTP answer.
    raw: bytes | None = None

    def encoded(self) -> bytes:
        if self.raw is not None:
            return self.raw
        body = self.body
        if isinstance(body, dict | list):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        try:
            reason = HTTPStatus(self.status).phrase
        except ValueError:
            reason = "Whatever"
        head = [
            f"HTTP/1.1 {self.status} {reason}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(body)}",
            "Connection: close",
            *(f"{name}: {value}" for name, value in self.headers.items()),
        ]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class FakeExporter:
    """One exporter's management port (`reload_port`) on 127.0.0.1."""

    def __init__(
        self, *, device_type: str = "jetson_orin", host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.host = host
        self.exporter_status = "healthy"
        self.running_config: dict[str, Any] = {
            "device_type": device_type,
            "port": 9102,
            "reload_port": 9101,
            "metrics": {"gpu_power": True},
        }
        self.overrides: dict[tuple[str, str], Reply] = {}
        # Called with (method, path) before answering, e.g. to re-fetch the config from the
        # server on POST /reload as the real exporter does.
        self.on_request: Callable[[str, str], None] | None = None
        self.requests: list[tuple[str, str]] = []
        # (monotonic time, +1 accepted / -1 closed by the caller)
        self.connection_events: list[tuple[float, int]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._open: set[socket.socket] = set()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # `port`: the port of an exporter that stopped, to play its return.
        self._listener.bind((host, port))
        self._listener.listen(1024)
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    # ---- behaviour ------------------------------------------------------------------
    def set(self, method: str, path: str, reply: Reply) -> None:
        self.overrides[(method, path)] = reply

    def answer_everything(self, reply: Reply) -> None:
        for route in (("GET", "/health"), ("GET", "/config"), ("POST", "/reload")):
            self.set(*route, reply)

    def reply_for(self, method: str, path: str) -> Reply:
        if (method, path) in self.overrides:
            return self.overrides[(method, path)]
        if (method, path) == ("GET", "/health"):
            return Reply(
                200,
                {
                    "status": self.exporter_status,
                    "device_type": self.running_config.get("device_type"),
                    "uptime_seconds": 12.5,
                    "metrics_count": 3,
                },
            )
        if (method, path) == ("GET", "/config"):
            return Reply(200, self.running_config)
        if (method, path) == ("POST", "/reload"):
            return Reply(200, RELOAD_ANSWER, content_type="text/plain")
        return Reply(404, {"error": "not found"})

    # ---- what happened --------------------------------------------------------------
    def count(self, method: str, path: str) -> int:
        with self._lock:
            return Counter(self.requests)[(method, path)]

    @property
    def reloads(self) -> int:
        return self.count("POST", "/reload")

    @property
    def probes(self) -> int:
        return self.count("GET", "/health")

    def connections(self) -> int:
        with self._lock:
            return sum(1 for _, delta in self.connection_events if delta > 0)

    def open_before_first_close(self) -> int:
        """How many connections were open at once before any caller hung up: the number
        of calls a bounded caller had in flight in its first wave."""
        with self._lock:
            events = sorted(self.connection_events)
        opened = 0
        for _, delta in events:
            if delta < 0:
                break
            opened += 1
        return opened

    def wait_for(self, method: str, path: str, count: int = 1, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count(method, path) >= count:
                return True
            time.sleep(0.02)
        return False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # ---- serving --------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connection_events.append((time.monotonic(), 1))
                self._open.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            request = self._read_request(conn)
            if request is None:
                return
            with self._lock:
                self.requests.append(request)
            if self.on_request is not None:
                self.on_request(*request)
            reply = self.reply_for(*request)
            if reply.hang:
                # Blocks until the caller hangs up (b"") or close() shuts the socket down.
                while conn.recv(1024):
                    pass
                return
            data = reply.encoded()
            if reply.trickle is None:
                conn.sendall(data)
            else:
                for index in range(len(data)):
                    if self._closed.wait(reply.trickle):
                        return
                    conn.sendall(data[index : index + 1])
            conn.shutdown(socket.SHUT_WR)
            # Let the caller read everything and hang up first.
            conn.settimeout(5)
            while conn.recv(1024):
                pass
        except OSError:
            pass
        finally:
            with self._lock:
                self.connection_events.append((time.monotonic(), -1))
                self._open.discard(conn)
            conn.close()

    @staticmethod
    def _read_request(conn: socket.socket) -> tuple[str, str] | None:
        conn.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk or len(data) > 65536:
                return None
            data += chunk
        conn.settimeout(None)
        method, path, _ = data.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        return method, path

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            connections = list(self._open)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


def closed_port(host: str = "127.0.0.1") -> int:
    """A loopback port nothing listens on: connecting to it is refused."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ConnectionLog:
    """Every outbound connection this process attempted, for tests to assert on."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, int]] = []
        self.refused: list[tuple[str, int]] = []

    def hosts(self) -> set[str]:
        return {host for host, _ in self.attempts}


def is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return host == "localhost"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback
