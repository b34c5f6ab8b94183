"""`GET /config/{id}` answered ahead of Django's request cycle when the answer is certain.

Every exporter fetches its config at start and after each reload, and a fleet of
thousands makes this the server's hottest call by far. Through Django's handler, its
middleware, the URL resolver and a response object the call costs ~300 µs of CPU; the
answer itself, when this process already holds the device's current config
(devices.configcache), costs ~25 µs. On a 2-core host that difference is half the
throughput and most of the tail latency (bench/README.md).

So the WSGI application is wrapped: a request is answered here only when the answer
cannot differ from Django's, and every other request reaches Django untouched.

- Only an exporter's plain call: `GET /config/{id}` (trailing slash allowed), no query,
  no credential, no cookie, no Origin, no conditional header, a Host that ALLOWED_HOSTS
  accepts, and anonymous device calls allowed (AUTH_MODE / DEVICE_REGISTRATION).
- Only a config this process has cached and that is still current (SQLite; on PostgreSQL
  nothing is cached, so Django answers every call). A miss, an unknown or invalid id, a
  stale entry: Django, which loads it and fills the cache for the next call.
- Only under the settings this module mirrors: the project's middleware list exactly, no
  HTTPS redirect or HSTS, no www-prepending, no refused user agents, no DEBUG; contact
  addresses stored off the request path (CONTACT_FLUSH_INTERVAL > 0).
- The answer is Django's: same status, body and headers (tests compare both paths,
  header by header, under several settings), the same request metrics and request id, and
  the caller's address recorded the same way.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable
from time import perf_counter
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.http.request import split_domain_port, validate_host

from devices import services
from devices.api.views import anonymous_device_calls_allowed, served_config_headers
from devices.configcache import served_configs
from devices.selectors import ServedConfig
from edgeserver import metrics
from edgeserver.api.addresses import request_address
from edgeserver.logging import request_id_var
from edgeserver.middleware import request_id_for

logger = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# The middleware whose effect on this response is reproduced here; with any other list
# (a CORS middleware added, say) every request goes to Django.
MIRRORED_MIDDLEWARE = (
    "edgeserver.middleware.RequestObservabilityMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
)
ROUTE = "config-detail"  # the URL name Django's path reports in the request metrics

_CONFIG_PATH = re.compile(r"/config/([^/]+)/?")
# Request headers that make Django's answer depend on more than the device id.
_DELEGATED_HEADERS = (
    "HTTP_AUTHORIZATION",
    "HTTP_COOKIE",
    "HTTP_ORIGIN",
    "HTTP_IF_NONE_MATCH",
    "HTTP_IF_MATCH",
    "HTTP_IF_MODIFIED_SINCE",
)


@functools.cache
def mirrored_settings() -> tuple[bool, tuple[tuple[str, str], ...]]:
    """Whether the settings are the ones this answer mirrors, and the headers that
    SecurityMiddleware and XFrameOptionsMiddleware add to a plain response under them.
    Read once per process (settings do not change while it serves; tests that override
    them clear this through `setting_changed`)."""
    allowed = (
        tuple(settings.MIDDLEWARE) == MIRRORED_MIDDLEWARE
        and anonymous_device_calls_allowed()
        and settings.CONTACT_FLUSH_INTERVAL > 0
        and not settings.DEBUG
        and not settings.SECURE_SSL_REDIRECT
        and not settings.SECURE_HSTS_SECONDS
        and not settings.PREPEND_WWW
        and not settings.USE_X_FORWARDED_HOST
        and not settings.DISALLOWED_USER_AGENTS
    )
    headers = [("X-Frame-Options", getattr(settings, "X_FRAME_OPTIONS", "DENY").upper())]
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append(("X-Content-Type-Options", "nosniff"))
    policy = settings.SECURE_REFERRER_POLICY
    if policy:
        values = [v.strip() for v in policy.split(",")] if isinstance(policy, str) else policy
        headers.append(("Referrer-Policy", ",".join(values)))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    return allowed, tuple(headers)


setting_changed.connect(lambda **_: mirrored_settings.cache_clear(), weak=False)


def cached_answer(environ: dict[str, Any]) -> tuple[str, ServedConfig] | None:
    """The device id and its current config when this request may be answered here."""
    if environ.get("REQUEST_METHOD") != "GET" or environ.get("QUERY_STRING"):
        return None
    match = _CONFIG_PATH.fullmatch(environ.get("PATH_INFO", ""))
    if match is None or any(name in environ for name in _DELEGATED_HEADERS):
        return None
    if not mirrored_settings()[0]:
        return None
    domain, _port = split_domain_port(environ.get("HTTP_HOST", ""))
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None  # Django answers with its 400
    served = served_configs.current(match.group(1))
    return None if served is None else (match.group(1), served)


class ServedConfigFastPath:
    """The WSGI application: cached `GET /config/{id}` here, everything else Django."""

    def __init__(self, django_app: WSGIApp) -> None:
        self.django_app = django_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]):
        started = perf_counter()
        try:
            answer = self._answer(environ)
        except Exception:
            # Django answers instead, and reports a failure the contract's way.
            logger.exception("Answering GET %s ahead of Django failed", environ.get("PATH_INFO"))
            answer = None
        if answer is None:
            return self.django_app(environ, start_response)
        headers, body = answer
        start_response("200 OK", headers)
        metrics.observe_request(
            route=ROUTE, method="GET", status=200, seconds=perf_counter() - started
        )
        return [body]

    @staticmethod
    def _answer(environ: dict[str, Any]) -> tuple[list[tuple[str, str]], bytes] | None:
        answer = cached_answer(environ)
        if answer is None:
            return None
        device_id, served = answer
        request_id = request_id_for(environ.get("HTTP_X_REQUEST_ID", ""))
        token = request_id_var.set(request_id)
        try:
            services.device_contact_record(
                device_id=device_id,
                observed=request_address(environ),
                known_ip=served.observed_ip,
                last_contact=served.last_contact,
            )
        finally:
            request_id_var.reset(token)
        body = served.body
        headers = [
            *served_config_headers(served).items(),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            *mirrored_settings()[1],
            ("X-Request-ID", request_id),
        ]
        return headers, body
