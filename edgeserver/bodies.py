"""Request bodies sent chunked (`Transfer-Encoding: chunked`, no Content-Length), made
readable for Django.

gunicorn de-chunks the body into `wsgi.input` but sets no CONTENT_LENGTH, and Django reads
exactly CONTENT_LENGTH bytes: it would see an empty body and, say, answer a PATCH with 200
having changed nothing. Here such a body is read (at most MAX_BODY_BYTES) and handed on
with its length; a larger one is refused with the contract's 413.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings

from edgeserver.api.errors import error_body

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class ChunkedBodies:
    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]):
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and not environ.get("CONTENT_LENGTH"):
            limit = settings.MAX_BODY_BYTES
            body = environ["wsgi.input"].read(limit + 1)
            if len(body) > limit:
                return _too_large(limit, start_response)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)


def _too_large(limit: int, start_response: Callable[..., Any]) -> list[bytes]:
    body = json.dumps(
        error_body("request_too_large", f"Request body is larger than {limit // 1024} KiB")
    ).encode()
    start_response(
        "413 Request Entity Too Large",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ],
    )
    return [body]
