"""Per-request observability: a request id on every log line and response, and the HTTP
metrics. Nothing here changes what a request does."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from time import perf_counter

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from edgeserver import metrics
from edgeserver.logging import request_id_var

# An incoming X-Request-ID (from a proxy) is kept when it is short and plain.
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_for(incoming: str) -> str:
    """The id of a request: the caller's `X-Request-ID` when it is safe to log, else new."""
    return incoming if _SAFE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex


@contextmanager
def request_context(incoming_id: str) -> Iterator[str]:
    """The id of the request being served, on every log line written meanwhile."""
    request_id = request_id_for(incoming_id)
    token = request_id_var.set(request_id)
    try:
        yield request_id
    finally:
        request_id_var.reset(token)


def _route(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match.url_name or match.view_name or "unnamed"
    if request.path.startswith("/" + settings.STATIC_URL.lstrip("/")):
        return "static"
    return "unmatched"


class RequestObservabilityMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = perf_counter()
        with request_context(request.headers.get("X-Request-ID", "")) as request_id:
            request.request_id = request_id
            response = self.get_response(request)
        metrics.observe_request(
            route=_route(request),
            method=request.method or "other",
            status=response.status_code,
            seconds=perf_counter() - started,
        )
        response["X-Request-ID"] = request_id
        return response
