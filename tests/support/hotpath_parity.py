"""Compare the two ways `GET /config/{id}` can be answered, in a process of its own.

`python -m tests.support.hotpath_parity DB_PATH` serves a fresh SQLite file, and for each
case builds the applications as a worker starting under the case's settings would: Django's
own, and the wrapped one gunicorn serves (edgeserver.wsgi). It calls the wrapped one three
times (the fast path learns from Django's first two answers) and Django's once, and prints
one JSON object per case: whether the fast path answered the third call, and both answers.
tests/test_hotpath.py judges them.
"""

from __future__ import annotations

import io
import json
import os
import sys
from typing import Any

CASES: list[dict[str, Any]] = [
    {"name": "plain"},
    {"name": "trailing slash", "path": "/config/edge-01/"},
    {"name": "caller's request id", "environ": {"HTTP_X_REQUEST_ID": "req-42"}},
    {"name": "forwarded, untrusted peer", "environ": {"HTTP_X_FORWARDED_FOR": "10.1.2.3"}},
    {"name": "host with port", "environ": {"HTTP_HOST": "edge.example:8081"}},
    {"name": "no host header", "environ": {"HTTP_HOST": None}},
    {"name": "origin", "environ": {"HTTP_ORIGIN": "http://dash.example"}},
    {"name": "frame options", "settings": {"X_FRAME_OPTIONS": "sameorigin"}},
    {
        "name": "referrer policy list",
        "settings": {"SECURE_REFERRER_POLICY": ["no-referrer", "strict-origin"]},
    },
    {
        "name": "no nosniff, no opener policy",
        "settings": {
            "SECURE_CONTENT_TYPE_NOSNIFF": False,
            "SECURE_CROSS_ORIGIN_OPENER_POLICY": None,
        },
    },
    {"name": "open auth mode", "settings": {"AUTH_MODE": "open"}},
    {"name": "contacts stored in the request", "settings": {"CONTACT_FLUSH_INTERVAL": 0}},
    {"name": "debug", "settings": {"DEBUG": True}},
    # Middleware the fast path knows nothing of: what they add is learned and replayed.
    {"name": "another middleware", "middleware": "tests.support.hotpath_parity.PoweredBy"},
    {"name": "gzip middleware", "middleware": "django.middleware.gzip.GZipMiddleware"},
    {"name": "not cached yet", "warm": False},
    # Cached, but recording the caller fails: Django answers (its 500, in the error shape).
    {"name": "contact recording fails", "fault": True},
    # Django answers these.
    {"name": "bearer token", "delegated": True, "environ": {"HTTP_AUTHORIZATION": "Bearer x"}},
    {"name": "cookie", "delegated": True, "environ": {"HTTP_COOKIE": "sessionid=abc"}},
    {"name": "query", "delegated": True, "environ": {"QUERY_STRING": "x=1"}},
    {"name": "if-none-match", "delegated": True, "environ": {"HTTP_IF_NONE_MATCH": '"1"'}},
    {"name": "head", "delegated": True, "environ": {"REQUEST_METHOD": "HEAD"}},
    {
        "name": "host not allowed",
        "delegated": True,
        "settings": {"ALLOWED_HOSTS": ["edge.example"]},
        "environ": {"HTTP_HOST": "evil.example"},
    },
    {"name": "unknown device", "delegated": True, "path": "/config/nobody"},
    {"name": "invalid id", "delegated": True, "path": "/config/bad..id"},
    {"name": "history route", "delegated": True, "path": "/config/edge-01/history"},
    {"name": "path token route", "delegated": True, "path": "/d/sometoken/config/edge-01"},
    {
        "name": "registration by token",
        "delegated": True,
        "settings": {"DEVICE_REGISTRATION": "token"},
    },
    {"name": "https redirect", "delegated": True, "settings": {"SECURE_SSL_REDIRECT": True}},
    # A header that changes on every answer cannot be replayed: Django keeps answering.
    {
        "name": "a header that changes per answer",
        "delegated": True,
        "middleware": "tests.support.hotpath_parity.NonceMiddleware",
    },
]


class PoweredBy:
    """Adds the same header to every response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response["X-Powered-By"] = "edge"
        return response


class NonceMiddleware:
    """Adds a header whose value differs on every response (a CSP nonce, say)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        import secrets

        response = self.get_response(request)
        response["X-Nonce"] = secrets.token_hex(8)
        return response


def environ_for(method: str, path: str, body: bytes = b"", **extra: Any) -> dict[str, Any]:
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "edge.example",
        "SERVER_PORT": "8081",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "edge.example",
        "REMOTE_ADDR": "127.0.0.7",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
    }
    for key, value in extra.items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    return environ


def call(app, environ: dict[str, Any]) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info=None) -> None:
        seen["status"], seen["headers"] = status, headers

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    headers = {name.lower(): value for name, value in seen["headers"]}
    return {"status": seen["status"], "headers": headers, "body": body.decode()}


def _failing_contact_record(**kwargs: Any) -> None:
    raise RuntimeError("can't start new thread")


def main(db_path: str) -> None:
    os.environ["DB_PATH"] = db_path
    os.environ.pop("DATABASE_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["CONTACT_FLUSH_INTERVAL"] = "60"
    os.environ["ALLOWED_HOSTS"] = "*"

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import override_settings

    call_command("migrate", verbosity=0)
    # tests.settings stores contacts in the request; the production default buffers them.
    settings.CONTACT_FLUSH_INTERVAL = 60

    from django.core.handlers.wsgi import WSGIHandler

    from devices import served
    from devices.api.hotpath import ServedConfigFastPath
    from devices.served import served_configs
    from edgeserver.wsgi import django_application
    from users.choices import TokenKind
    from users.tokens import api_token_create

    record_contact = served.device_contact_record
    _, token = api_token_create(name="parity", kind=TokenKind.OPERATOR)
    document = {
        "device_type": "jetson_orin",
        "port": 9102,
        "metrics": {"gpu": True},
        "shelly": {"enabled": True, "server_url": "http://x"},
    }
    put = call(
        django_application,
        environ_for(
            "PUT",
            "/config/edge-01",
            json.dumps(document).encode(),
            HTTP_AUTHORIZATION=f"Bearer {token}",
        ),
    )
    assert put["status"].startswith("200"), put

    for case in CASES:
        overrides = dict(case.get("settings", {}))
        if case.get("middleware"):
            overrides["MIDDLEWARE"] = [*settings.MIDDLEWARE, case["middleware"]]
        with override_settings(**overrides):
            # Both applications as a process starting under these settings builds them
            # (Django's middleware reads its settings once, when it is loaded).
            plain_app = WSGIHandler()
            wrapped_app = ServedConfigFastPath(plain_app)
            served_configs.clear()
            path = case.get("path", "/config/edge-01")
            extra = dict(case.get("environ", {}))
            method = extra.pop("REQUEST_METHOD", "GET")
            for _ in range(2):  # the fast path learns from Django's answers
                call(wrapped_app, environ_for(method, path, **extra))
            if not case.get("warm", True):
                served_configs.clear()  # the third call loads the config itself
            if case.get("fault"):
                served.device_contact_record = _failing_contact_record
            answered = wrapped_app.answered_here
            wrapped = call(wrapped_app, environ_for(method, path, **extra))
            fast = wrapped_app.answered_here > answered
            plain = call(plain_app, environ_for(method, path, **extra))
            served.device_contact_record = record_contact
        print(json.dumps({"case": case, "fast": fast, "wrapped": wrapped, "django": plain}))


if __name__ == "__main__":
    main(sys.argv[1])
