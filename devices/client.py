"""The one HTTP client for devices: `GET /health`, `POST /reload` and `GET /config` on the
exporter's management port, `http://{ip}:{reload_port}`.

Calls run on asyncio with aiohttp, so a probe round holds thousands of them in flight
without a thread each (`run_each`, at most PROBE_CONCURRENCY at once). Every call is
checked against DEVICE_ALLOWED_NETWORKS before a packet leaves, connects to an IP literal
(no DNS), never follows a redirect, sends no cookie a device set, ignores proxy settings,
and is bounded by one deadline for connect, send and read together and by a byte limit on
the body: a device that trickles bytes holds a call no longer than the timeout.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from django.conf import settings

from devices.validation import address_allowed, address_not_allowed_message, comparable_ip
from edgeserver.api.parsers import NumberOutOfRange, strict_json_loads

logger = logging.getLogger(__name__)

HEALTH_BODY_LIMIT = 64 * 1024
RELOAD_BODY_LIMIT = 64 * 1024
CONFIG_BODY_LIMIT = 1024 * 1024
# The exporter's own status word ("healthy", "degraded", "starting"); longer is not one.
EXPORTER_STATUS_MAX_LENGTH = 32
# Descriptors a process needs besides its device calls: database connections, log files,
# gunicorn's sockets, the Kubernetes client's pool.
OTHER_OPEN_FILES = 512

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


# ---- one session per batch of calls -----------------------------------------------------


def _session() -> aiohttp.ClientSession:
    """A session for one batch of calls, in the running event loop.

    Every call has a connection of its own (closed after the answer, as the exporter
    does anyway); cookies a device sets are dropped, not sent to the next device; the
    environment's proxy settings are not read.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, force_close=True, use_dns_cache=False),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None),
        trust_env=False,
        auto_decompress=False,
        skip_auto_headers=("Accept-Encoding",),
        raise_for_status=False,
    )


Session = aiohttp.ClientSession


def call_limit() -> int:
    """How many device calls may be in flight at once: PROBE_CONCURRENCY, within what the
    open-files limit leaves for them."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return settings.PROBE_CONCURRENCY
    return max(1, min(settings.PROBE_CONCURRENCY, soft - OTHER_OPEN_FILES))


def run_each(
    func: Callable[[Session, T], Awaitable[R]], items: Sequence[T], *, limit: int | None = None
) -> list[R]:
    """`[await func(session, item) for item in items]`, concurrently, at most `limit`
    (default: `call_limit()`) in flight, in an event loop of this call's own; results in
    the order of `items`. Blocks the calling thread until all are done."""
    if not items:
        return []
    limit = limit or call_limit()
    results: list[Any] = [None] * len(items)

    async def main() -> None:
        # `limit` workers taking the next item in turn: a semaphore with thousands of
        # waiters costs a scan of its queue at every release.
        pending = iter(range(len(items)))

        async def worker(session: Session) -> None:
            for index in pending:
                results[index] = await func(session, items[index])

        async with _session() as session:
            await asyncio.gather(*(worker(session) for _ in range(min(limit, len(items)))))

    _run(main())
    return results


def _run(main: Coroutine[Any, Any, R]) -> R:
    """Run a batch in a new event loop of this thread's own."""
    return asyncio.run(main)


def run_one(func: Callable[[Session], Awaitable[R]]) -> R:
    """One call (or a short sequence of them) from synchronous code."""

    async def main() -> R:
        async with _session() as session:
            return await func(session)

    return _run(main())


# ---- calls ----------------------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "Connection closed without an answer"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "Connection closed in the middle of the answer"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"Invalid HTTP answer ({exc.message or type(exc).__name__})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        exc = exc.os_error
    if isinstance(exc, OSError):
        # asyncio words a failed connect "Connect call failed (address)"; say what failed.
        if exc.errno:
            return os.strerror(exc.errno)
        return exc.strerror or str(exc) or type(exc).__name__
    return str(exc) or type(exc).__name__


async def _read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """At most `limit` bytes of the body: reading stops there, the rest is never read."""
    chunks, size = [], 0
    while size < limit:
        chunk = await response.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def call(
    session: Session,
    ip: str,
    port: int,
    method: str,
    path: str,
    *,
    timeout: float,
    body_limit: int,
) -> Answer:
    """One HTTP exchange with a device; raises AddressNotAllowed or DeviceUnreachable.

    Whatever the status (a redirect included), the answer is returned as it came.
    """
    if not address_allowed(ip):
        raise AddressNotAllowed(address_not_allowed_message(ip))
    # An IPv4-mapped address was judged as its IPv4, so it is also reached as one.
    address = str(comparable_ip(ip))
    headers = {
        "Host": host_port(ip, port),
        "User-Agent": f"edge-metrics-server/{settings.VERSION}",
        "Accept": "application/json",
    }
    try:
        async with asyncio.timeout(timeout):
            async with session.request(
                method, device_url(address, port, path), headers=headers, allow_redirects=False
            ) as response:
                body = await _read_limited(response, body_limit + 1)
                status = response.status
    except TimeoutError:
        raise DeviceUnreachable(f"No answer within {timeout:g} s") from None
    except (OSError, aiohttp.ClientError, ValueError) as exc:
        raise DeviceUnreachable(_describe(exc)) from None
    return Answer(status=status, body=body[:body_limit], complete=len(body) <= body_limit)


def _json(answer: Answer) -> Any:
    return strict_json_loads(answer.body)


async def fetch_health(session: Session, ip: str, port: int, *, timeout: float) -> HealthAnswer:
    """`GET /health`: the status code, and the exporter's own word on its state."""
    answer = await call(
        session, ip, port, "GET", "/health", timeout=timeout, body_limit=HEALTH_BODY_LIMIT
    )
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


async def send_reload(session: Session, ip: str, port: int, *, timeout: float) -> None:
    """`POST /reload`; returns only when the device answered 200."""
    answer = await call(
        session, ip, port, "POST", "/reload", timeout=timeout, body_limit=RELOAD_BODY_LIMIT
    )
    if answer.status != 200:
        raise DeviceBadAnswer(f"Device returned HTTP {answer.status}", status=answer.status)


async def fetch_config(session: Session, ip: str, port: int, *, timeout: float) -> dict[str, Any]:
    """`GET /config`: the exporter's running config, a JSON object of at most 1 MiB."""
    answer = await call(
        session, ip, port, "GET", "/config", timeout=timeout, body_limit=CONFIG_BODY_LIMIT
    )
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


# One call from synchronous code (an operator's request about one device).
def get_health(ip: str, port: int, *, timeout: float) -> HealthAnswer:
    return run_one(lambda session: fetch_health(session, ip, port, timeout=timeout))


def post_reload(ip: str, port: int, *, timeout: float) -> None:
    run_one(lambda session: send_reload(session, ip, port, timeout=timeout))


def get_config(ip: str, port: int, *, timeout: float) -> dict[str, Any]:
    return run_one(lambda session: fetch_config(session, ip, port, timeout=timeout))


# ---- the process's open-files limit ------------------------------------------------------


def raise_open_files_limit() -> None:
    """Raise this process's open-files limit (RLIMIT_NOFILE) to what PROBE_CONCURRENCY
    calls in flight need beside everything else, as far as the hard limit allows; say so
    when it does not (the calls are then bounded by what is left, `call_limit`)."""
    needed = settings.PROBE_CONCURRENCY + OTHER_OPEN_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            code = getattr(exc, "errno", None)
            logger.warning(
                "Could not raise the open-files limit from %d to %d: %s",
                soft,
                wanted,
                os.strerror(code) if code else exc,
            )
            wanted = soft
        else:
            logger.debug("Open-files limit raised from %d to %d", soft, wanted)
    if wanted < needed:
        logger.warning(
            "The open-files limit is %d (hard limit %s); PROBE_CONCURRENCY=%d needs %d: at "
            "most %d device calls are made at once. Raise the hard limit (ulimit -Hn, "
            "LimitNOFILE=, docker --ulimit nofile=) or lower PROBE_CONCURRENCY",
            wanted,
            "unlimited" if hard == resource.RLIM_INFINITY else hard,
            settings.PROBE_CONCURRENCY,
            needed,
            max(1, wanted - OTHER_OPEN_FILES),
        )
