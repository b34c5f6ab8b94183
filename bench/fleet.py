"""A fleet of fake exporters for the benchmarks, in one asyncio process on loopback.

Each device listens on its own port of 127.0.0.1 and answers like edge-metrics-exporter's
management port: `GET /health` 200 JSON, `GET /config` its running config, `POST /reload`
200 "Config reload triggered". Blackholed devices accept the connection and never answer.

Run: `python -m bench.fleet --healthy 900 --blackholed 100`; it prints one JSON line
`{"healthy": [ports], "blackholed": [ports]}` once every port listens, then serves until
stdin closes or it gets SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

HEALTH = json.dumps(
    {"status": "healthy", "device_id": "bench", "device_type": "jetson_orin",
     "uptime_seconds": 1, "last_collection": None, "last_error": None,
     "metrics_count": 10, "enabled_metrics": 10}
).encode()
CONFIG = json.dumps({"device_type": "jetson_orin", "port": 9102, "reload_port": 9101}).encode()
RELOADED = b"Config reload triggered"


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


async def _serve_blackholed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # Hold the connection open without a byte of answer until the caller gives up.
    try:
        while await reader.read(4096):
            pass
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _run(healthy: int, blackholed: int) -> None:
    servers = []
    ports: dict[str, list[int]] = {"healthy": [], "blackholed": []}
    for kind, count, handler in (
        ("healthy", healthy, _serve_healthy),
        ("blackholed", blackholed, _serve_blackholed),
    ):
        for _ in range(count):
            server = await asyncio.start_server(handler, "127.0.0.1", 0, backlog=256)
            servers.append(server)
            ports[kind].append(server.sockets[0].getsockname()[1])
    print(json.dumps(ports), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.read(1) else None)
    await stop.wait()
    for server in servers:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--healthy", type=int, default=900)
    parser.add_argument("--blackholed", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(_run(args.healthy, args.blackholed))


if __name__ == "__main__":
    main()
