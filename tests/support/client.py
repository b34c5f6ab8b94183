"""The API client of the in-process tests: an exporter's plain `GET /config/{id}` goes
through the WSGI application gunicorn serves (edgeserver.wsgi: the fast path ahead of
Django), everything else through DRF's test client as usual.

So the suite runs the code that answers most real requests: the first calls of a request
shape are Django's (the fast path learns from them), the next ones the fast path's. A
response says which answered it (`response.answered_by`).
"""

from __future__ import annotations

from typing import Any

from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.core.signals import request_finished, request_started, setting_changed
from django.db import close_old_connections
from django.http import HttpResponse
from rest_framework.test import APIClient

from devices.api.hotpath import ServedConfigFastPath, plain_call

_application: ServedConfigFastPath | None = None


def production_application() -> ServedConfigFastPath:
    """The wrapped WSGI application as a gunicorn worker builds it, under the current
    settings (rebuilt when a test changes them: middleware reads settings once)."""
    global _application
    if _application is None:
        _application = ServedConfigFastPath(WSGIHandler())
    return _application


def forget_application(**_: Any) -> None:
    global _application
    _application = None


setting_changed.connect(forget_application, weak=False)


def _through_wsgi(environ: dict[str, Any]) -> HttpResponse:
    application = production_application()
    answered_before = application.answered_here
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list, exc_info: Any = None) -> None:
        seen["status"], seen["headers"] = status, headers

    # As Django's own test handler does: the test's database connection (inside the
    # test's transaction) must not be closed by the request's start and end.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        chunks = application(environ, start_response)
        try:
            body = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    code, reason = seen["status"].split(" ", 1)
    response = HttpResponse(body, status=int(code), reason=reason)
    del response["Content-Type"]
    for name, value in seen["headers"]:
        response[name] = value
    response.wsgi_request = WSGIRequest(environ)
    answered = application.answered_here > answered_before
    response.answered_by = "fast path" if answered else "django"
    return response


class _Handler:
    def __init__(self, client_handler: Any) -> None:
        self.client_handler = client_handler

    def __call__(self, environ: dict[str, Any]) -> HttpResponse:
        if plain_call(environ) is None:
            response = self.client_handler(environ)
            response.answered_by = "django"
            return response
        return _through_wsgi(environ)


class ServerClient(APIClient):
    """DRF's APIClient, answering plain config fetches as the production server does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handler = _Handler(self.handler)
