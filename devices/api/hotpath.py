"""An exporter's plain `GET /config/{id}` answered ahead of Django's request cycle: a
dispatcher into devices.served, the one answer Django's view gives too.

Every exporter fetches its config at start and after each reload; a fleet of thousands
makes it the server's hottest call. Through Django's handler, its middleware, the URL
resolver and DRF it costs ~300 µs of CPU; `served.serve` costs ~25 µs. So the WSGI
application is wrapped, and a plain call (`plain_call`: no credential, cookie, query or
conditional header, where anonymous device calls are allowed) is answered here:

- the body, the config's own headers and the recording of the caller come from
  `served.serve`, exactly as in Django's view;
- what Django's middleware adds to that answer (security headers, X-Frame-Options, a
  Vary, whatever the settings make them) is not written here: it is learned from Django's
  own answers to requests of the same shape (the path's form, scheme, server, and every
  request header but the request id and X-Forwarded-For, which only this project's code
  reads) and replayed once two of Django's answers agreed. A shape Django answered
  otherwise (a redirect, an error, another body, a header that changes per request) is
  never answered here;
- the request id, its log context and the request metrics come from the functions the
  observability middleware uses.

Anything else, and any failure here, is Django's to answer. A middleware that decides by
the caller's address alone would not be replayed; the project has none.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from django.core.signals import setting_changed

from devices import served
from edgeserver import metrics
from edgeserver.api.addresses import request_address
from edgeserver.middleware import request_context
from users.permissions import anonymous_device_calls_allowed

logger = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Headers = list[tuple[str, str]]

# The URL name of `GET /config/{id}` (devices/api/urls.py), as request metrics label it.
CONFIG_ROUTE = "config-detail"
_CONFIG_PATH = re.compile(r"//?config/([^/]+)/?")
# A request carrying any of these is not an exporter's plain call (credentials go through
# authentication; conditional requests are rare and Django answers them).
_NOT_PLAIN = frozenset(
    {
        "HTTP_AUTHORIZATION",
        "HTTP_COOKIE",
        "HTTP_IF_NONE_MATCH",
        "HTTP_IF_MATCH",
        "HTTP_IF_MODIFIED_SINCE",
        "HTTP_IF_UNMODIFIED_SINCE",
    }
)
# Headers that differ from call to call and that only this project's code reads.
_PER_CALL = frozenset({"HTTP_X_REQUEST_ID", "HTTP_X_FORWARDED_FOR"})
# Request shapes remembered per process (a fleet's exporters send a handful).
_SHAPES_KEPT = 256


@dataclass(frozen=True)
class PlainCall:
    device_id: str
    # What Django's middleware could answer differently by: everything of the request but
    # the device id, the caller's address and the per-call headers.
    shape: tuple


def plain_call(environ: dict[str, Any]) -> PlainCall | None:
    """The exporter's plain `GET /config/{id}`, or None for any other request."""
    if environ.get("REQUEST_METHOD") != "GET" or environ.get("QUERY_STRING"):
        return None
    match = _CONFIG_PATH.fullmatch(environ.get("PATH_INFO", ""))
    if match is None:
        return None
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            if key in _NOT_PLAIN and value:  # an empty header is no header
                return None
            if key not in _PER_CALL:
                headers.append((key, value))
    if not anonymous_device_calls_allowed():
        return None
    path = match.group(0)
    shape = (
        path[: match.start(1)] + "{id}" + path[match.end(1) :],
        environ.get("wsgi.url_scheme"),
        environ.get("SERVER_NAME"),
        environ.get("SERVER_PORT"),
        environ.get("CONTENT_TYPE", ""),
        tuple(sorted(headers)),
    )
    return PlainCall(match.group(1), shape)


class LearnedHeaders:
    """Per request shape, the status line and the headers Django's middleware added to a
    served config's answer, trusted once two of Django's answers agreed."""

    _UNUSABLE = ("", ())

    def __init__(self) -> None:
        self._learned: dict[tuple, tuple[str, tuple[tuple[str, str], ...]]] = {}
        self._seen: dict[tuple, tuple[str, tuple[tuple[str, str], ...]]] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._learned.clear()
            self._seen.clear()

    def get(self, shape: tuple) -> tuple[str, tuple[tuple[str, str], ...]] | None:
        learned = self._learned.get(shape)
        return None if learned is None or learned is self._UNUSABLE else learned

    def learn(self, shape: tuple, status: str, headers: Headers, body: bytes, answer: Any) -> None:
        """Django answered a plain call of `shape` with `status`, `headers` and `body`;
        `answer` is what `served.serve` gave its view (None: it did not serve a config)."""
        if answer is None or answer.status != 200:
            return
        added = _added_headers(headers, answer) if body == answer.body else None
        observed = self._UNUSABLE if added is None else (status, added)
        with self._lock:
            known = len(self._learned) + len(self._seen)
            if shape in self._learned or (shape not in self._seen and known >= _SHAPES_KEPT):
                return
            before = self._seen.pop(shape, None)
            if observed is self._UNUSABLE or (before is not None and before != observed):
                self._learned[shape] = self._UNUSABLE
            elif before is None:
                self._seen[shape] = observed
            else:
                self._learned[shape] = observed


def _added_headers(headers: Headers, answer: Any) -> tuple[tuple[str, str], ...] | None:
    """What Django's answer has beyond the served config's own headers and its request id;
    None when it changed one of the served headers."""
    final = [(name, value) for name, value in headers]
    lowered = {(name.lower(), value) for name, value in final}
    own = {name.lower() for name, _ in answer.headers}
    if any((name.lower(), value) not in lowered for name, value in answer.headers):
        return None
    return tuple(
        (name, value)
        for name, value in final
        if name.lower() not in own and name.lower() != "x-request-id"
    )


class ServedConfigFastPath:
    """The WSGI application: plain config fetches here once learned, everything else (and
    the calls it learns from) Django."""

    def __init__(self, django_app: WSGIApp) -> None:
        self.django_app = django_app
        self.learned = LearnedHeaders()
        # Calls answered here rather than by Django (tests read it).
        self.answered_here = 0
        setting_changed.connect(self._forget)

    def _forget(self, **_: Any) -> None:
        # What Django adds depends on the settings: tests that override them start over.
        self.learned.clear()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]):
        started = perf_counter()
        call = plain_call(environ)
        if call is None:
            return self.django_app(environ, start_response)
        try:
            answer = self.answer(call, environ)
        except Exception:
            # Django answers instead, and reports a failure the contract's way.
            logger.exception("Answering GET %s ahead of Django failed", environ.get("PATH_INFO"))
            answer = None
        if answer is None:
            return self._through_django(call, environ, start_response)
        status, headers, body = answer
        start_response(status, headers)
        self.answered_here += 1
        metrics.observe_request(
            route=CONFIG_ROUTE, method="GET", status=200, seconds=perf_counter() - started
        )
        return [body]

    def answer(self, call: PlainCall, environ: dict[str, Any]) -> tuple[str, Headers, bytes] | None:
        """Django's answer to a plain call, without Django, when its shape was learned and
        the device exists; else None."""
        learned = self.learned.get(call.shape)
        if learned is None:
            return None
        with request_context(environ.get("HTTP_X_REQUEST_ID", "")) as request_id:
            result = served.serve(device_id=call.device_id, caller=request_address(environ))
        if result is None:
            return None
        status, added = learned
        return status, [*result.headers, *added, ("X-Request-ID", request_id)], result.body

    def _through_django(
        self, call: PlainCall, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> list[bytes]:
        seen: dict[str, Any] = {}

        def capture(status: str, headers: Headers, exc_info: Any = None) -> Any:
            seen["status"], seen["headers"] = status, list(headers)
            return start_response(status, headers, exc_info)

        token = served.last_answer.set(None)
        try:
            result = self.django_app(environ, capture)
            try:
                body = b"".join(result)  # a config answer is a small JSON body
            finally:
                getattr(result, "close", lambda: None)()
            self.learned.learn(
                call.shape, seen["status"], seen["headers"], body, served.last_answer.get()
            )
        finally:
            served.last_answer.reset(token)
        return [body]
