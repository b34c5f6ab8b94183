"""A fleet of fake exporters for the benchmarks, on loopback.

Each device listens on an address of its own in 127.0.0.0/8 (127.1.0.1, 127.1.0.2, ...:
devices of a real fleet have one each) and answers like edge-metrics-exporter's
management port: `GET /health` 200 JSON, `GET /config` its running config, `POST /reload`
200 "Config reload triggered". The answering devices are served by a few asyncio worker
processes (a share of the ports each: one process would run out of descriptors at 10,000
devices, a listening socket and a connection each). Blackholed devices listen and never
accept: the kernel completes a handshake or two for the backlog, then drops the SYNs,
and nothing is ever answered.

Run: `python -m bench.device_fleet --healthy 9000 --blackholed 1000`; it prints one JSON line
`{"healthy": [[ip, port], ...], "blackholed": [[ip, port], ...]}` once every port listens,
then serves until stdin closes or it gets SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import sys

HEALTH = json.dumps(
    {"status": "healthy", "device_id": "bench", "device_type": "jetson_orin",
     "uptime_seconds": 1, "last_collection": None, "last_error": None,
     "metrics_count": 10, "enabled_metrics": 10}
).encode()
CONFIG = json.dumps({"device_type": "jetson_orin", "port": 9102, "reload_port": 9101}).encode()
RELOADED = b"Config reload triggered"
# Answering devices per worker process.
PER_PROCESS = 3000


def _answer(status: str, body: bytes, content_type: str) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


ANSWERS = {
    ("GET", "/health"): _answer("200 OK", HEALTH, "application/json"),
    ("GET", "/config"): _answer("200 OK", CONFIG, "application/json"),
    ("POST", "/reload"): _answer("200 OK", RELOADED, "text/plain"),
}
NOT_FOUND = _answer("404 Not Found", b"{}", "application/json")


async def _serve_healthy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        method, path = head.split(b" ", 2)[:2]
        writer.write(ANSWERS.get((method.decode(), path.decode()), NOT_FOUND))
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


def address(index: int) -> str:
    """The loopback address of the fleet's device `index` (127.1.0.1 onwards)."""
    return f"127.{1 + index // 62500}.{index // 250 % 250}.{index % 250 + 1}"


def _listener(index: int, backlog: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((address(index), 0))
    sock.listen(backlog)
    return sock


async def _serve(listeners: list[socket.socket]) -> None:
    for sock in listeners:
        await asyncio.start_server(_serve_healthy, sock=sock, backlog=1024)
    await asyncio.Event().wait()


def _worker(listeners: list[socket.socket]) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    asyncio.run(_serve(listeners))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--healthy", type=int, default=900)
    parser.add_argument("--blackholed", type=int, default=100)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    healthy = [_listener(i, 1024) for i in range(args.healthy)]
    blackholed = [_listener(args.healthy + i, 1) for i in range(args.blackholed)]
    ports = {
        "healthy": [list(sock.getsockname()[:2]) for sock in healthy],
        "blackholed": [list(sock.getsockname()[:2]) for sock in blackholed],
    }
    workers = []
    for start in range(0, len(healthy), PER_PROCESS):
        share = healthy[start : start + PER_PROCESS]
        pid = os.fork()
        if pid == 0:
            for sock in healthy[:start] + healthy[start + PER_PROCESS :] + blackholed:
                sock.close()
            _worker(share)
            os._exit(0)
        workers.append(pid)
    for sock in healthy:
        sock.close()  # the workers serve them
    print(json.dumps(ports), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while sys.stdin.read(1):
            pass
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGTERM)
        for pid in workers:
            os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
