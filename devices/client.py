"""The one HTTP client for devices: `GET /health`, `POST /reload` and `GET /config` on the
exporter's management port, `http://{ip}:{reload_port}`.

Every call is checked against DEVICE_ALLOWED_NETWORKS before a packet leaves, connects to
an IP literal (no DNS), never follows a redirect, and is bounded by one deadline for
connect, send and read together and by a byte limit on the body: a device that trickles
bytes holds a thread no longer than the timeout.

http.client parses the answer, reading from a socket whose every `recv` is given only the
time left until the deadline. urllib3 and requests bound each read separately (a device
sending a byte per second would never time out) and follow redirects unless told not to.
"""

from __future__ import annotations

import http.client
import io
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings

from devices.validation import address_allowed, address_not_allowed_message, comparable_ip
from edgeserver.api.parsers import NumberOutOfRange, strict_json_loads

HEALTH_BODY_LIMIT = 64 * 1024
RELOAD_BODY_LIMIT = 64 * 1024
CONFIG_BODY_LIMIT = 1024 * 1024
# The exporter's own status word ("healthy", "degraded", "starting"); longer is not one.
EXPORTER_STATUS_MAX_LENGTH = 32

T = TypeVar("T")
R = TypeVar("R")


class DeviceCallError(Exception):
    """A call that produced no usable answer; `str(error)` is meant for operators."""


class AddressNotAllowed(DeviceCallError):
    """The address is outside DEVICE_ALLOWED_NETWORKS: nothing was sent."""


class DeviceUnreachable(DeviceCallError):
    """Connecting, sending or reading failed or timed out."""


class DeviceBadAnswer(DeviceCallError):
    """The device answered, but not with what was asked for (an HTTP status or a body)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    # False when the body was longer than the call's limit and was cut there.
    complete: bool


@dataclass(frozen=True)
class HealthAnswer:
    status: int
    # What the exporter says about itself in the body, "" when it says nothing readable.
    exporter_status: str


def host_port(ip: str, port: int) -> str:
    """`ip:port`, with an IPv6 address in brackets (`[fd00::7]:9100`), as URLs, Host
    headers and Prometheus targets write it."""
    host = f"[{ip}]" if ":" in ip else ip
    return f"{host}:{port}"


def device_url(ip: str, port: int, path: str = "") -> str:
    return f"http://{host_port(ip, port)}{path}"


class _DeadlineReader(io.RawIOBase):
    """A socket's byte stream whose reads never wait past one deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(_remaining(self._deadline))
        return self._sock.recv_into(buffer)


class _DeadlineSocket:
    """What http.client.HTTPResponse reads from: only `makefile` is used."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str, *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("deadline passed")
    return remaining


def _request(method: str, ip: str, port: int, path: str) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host_port(ip, port)}",
        f"User-Agent: edge-metrics-server/{settings.VERSION}",
        "Accept: application/json",
        "Connection: close",
    ]
    if method == "POST":
        lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, http.client.RemoteDisconnected):
        return "Connection closed without an answer"
    if isinstance(exc, http.client.IncompleteRead):
        return "Connection closed in the middle of the answer"
    if isinstance(exc, http.client.HTTPException):
        return f"Invalid HTTP answer ({type(exc).__name__})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def call(ip: str, port: int, method: str, path: str, *, timeout: float, body_limit: int) -> Answer:
    """One HTTP exchange with a device; raises AddressNotAllowed or DeviceUnreachable.

    Whatever the status (a redirect included), the answer is returned as it came.
    """
    if not address_allowed(ip):
        raise AddressNotAllowed(address_not_allowed_message(ip))
    # An IPv4-mapped address was judged as its IPv4, so it is also reached as one.
    address = comparable_ip(ip)
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(_remaining(deadline))
            sock.connect((str(address), port))
            sock.settimeout(_remaining(deadline))
            sock.sendall(_request(method, ip, port, path))
            response = http.client.HTTPResponse(_DeadlineSocket(sock, deadline), method=method)
            try:
                response.begin()
                body = response.read(body_limit + 1)
            finally:
                response.close()
    except TimeoutError:
        raise DeviceUnreachable(f"No answer within {timeout:g} s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise DeviceUnreachable(_describe(exc)) from None
    return Answer(status=response.status, body=body[:body_limit], complete=len(body) <= body_limit)


def _json(answer: Answer) -> Any:
    return strict_json_loads(answer.body)


def get_health(ip: str, port: int, *, timeout: float) -> HealthAnswer:
    """`GET /health`: the status code, and the exporter's own word on its state."""
    answer = call(ip, port, "GET", "/health", timeout=timeout, body_limit=HEALTH_BODY_LIMIT)
    exporter_status = ""
    if answer.complete:
        try:
            data = _json(answer)
        except (ValueError, RecursionError):
            data = None
        value = data.get("status") if isinstance(data, dict) else None
        if isinstance(value, str) and len(value) <= EXPORTER_STATUS_MAX_LENGTH:
            exporter_status = value
    return HealthAnswer(status=answer.status, exporter_status=exporter_status)


def post_reload(ip: str, port: int, *, timeout: float) -> None:
    """`POST /reload`; returns only when the device answered 200."""
    answer = call(ip, port, "POST", "/reload", timeout=timeout, body_limit=RELOAD_BODY_LIMIT)
    if answer.status != 200:
        raise DeviceBadAnswer(f"Device returned HTTP {answer.status}", status=answer.status)


def get_config(ip: str, port: int, *, timeout: float) -> dict[str, Any]:
    """`GET /config`: the exporter's running config, a JSON object of at most 1 MiB."""
    answer = call(ip, port, "GET", "/config", timeout=timeout, body_limit=CONFIG_BODY_LIMIT)
    if answer.status != 200:
        raise DeviceBadAnswer(f"Device returned HTTP {answer.status}", status=answer.status)
    if not answer.complete:
        raise DeviceBadAnswer(
            f"Device returned a config larger than {CONFIG_BODY_LIMIT // 1024 // 1024} MiB"
        )
    try:
        data = _json(answer)
    except NumberOutOfRange as exc:
        raise DeviceBadAnswer(f"Device returned JSON that cannot be relayed: {exc}") from None
    except (ValueError, RecursionError):
        raise DeviceBadAnswer("Device returned a body that is not JSON") from None
    if not isinstance(data, dict):
        raise DeviceBadAnswer(f"Device returned JSON that is not an object ({type(data).__name__})")
    return data


def for_each_concurrently(
    func: Callable[[T], R], items: Sequence[T], *, limit: int | None = None
) -> list[R]:
    """`[func(item) for item in items]` with at most `limit` (PROBE_CONCURRENCY) in flight.

    Device calls spend their time waiting on sockets, so threads overlap them well; the
    limit bounds sockets and threads, whatever the size of the fleet.
    """
    if not items:
        return []
    limit = limit or settings.PROBE_CONCURRENCY
    if len(items) == 1 or limit == 1:
        return [func(item) for item in items]
    with ThreadPoolExecutor(
        max_workers=min(limit, len(items)), thread_name_prefix="device-call"
    ) as pool:
        return list(pool.map(func, items))
