"""Logging pieces shared by Django, gunicorn and the monitor: secrets never reach a log
line, and every line of a request carries its request id."""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from urllib.parse import unquote

REDACTED = "[redacted]"
# Tokens the server issues (users.tokens.TOKEN_PREFIX and 43 URL-safe characters).
_ISSUED_TOKEN = re.compile(r"ems_[A-Za-z0-9_-]{16,}")
# A credential in the device path prefix, whatever the case or the slashes around it: at
# the start of a path (after a space, a quote, `=`, `:` or a URL's host), `/d/<token>`.
_PATH_TOKEN = re.compile(r"(?i)((?:^|[\s\"'(=:,]|https?://[^/\s\"']*)/+d/+)[^/\s?#\"']+")
# Credentials in an Authorization header, should a line ever carry one.
_AUTHORIZATION = re.compile(r"(?i)\b(bearer|basic)(\s+)[^\s\"',]+")

# The id of the request being served in this thread ("-" outside a request).
request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


def _configured_secrets() -> list[str]:
    """Credentials the settings hold (API_TOKENS, ENROLLMENT_TOKENS, METRICS_TOKEN)."""
    try:
        from django.conf import settings

        secrets = [*settings.API_TOKENS, *settings.ENROLLMENT_TOKENS, settings.METRICS_TOKEN]
    except Exception:  # settings not configured yet (a line from gunicorn's start-up)
        return []
    return sorted((s for s in secrets if s), key=len, reverse=True)


def _decoded(text: str) -> str:
    """`text` with percent-encoding undone (twice: `%252F` is an encoded `%2F`)."""
    for _ in range(2):
        if "%" not in text:
            break
        text = unquote(text)
    return text


def redact(text: str) -> str:
    """`text` without any credential it holds: issued tokens, configured ones, the token of
    a `/d/<token>` path and Authorization values, also when percent-encoded (a line that
    held one is returned decoded, with the credential replaced by a marker)."""
    decoded = _decoded(text)
    secrets = [secret for secret in _configured_secrets() if secret in decoded]
    lowered = decoded.lower()
    if not (
        secrets or "ems_" in decoded or "/d/" in lowered or "earer" in lowered or "basic" in lowered
    ):
        return text
    for secret in secrets:
        decoded = decoded.replace(secret, REDACTED)
    decoded = _ISSUED_TOKEN.sub(REDACTED, decoded)
    decoded = _PATH_TOKEN.sub(rf"\1{REDACTED}", decoded)
    return _AUTHORIZATION.sub(rf"\1\2{REDACTED}", decoded)


class RedactSecrets(logging.Filter):
    """Rewrites a record's message so credentials never appear in any handler's output."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class RequestId(logging.Filter):
    """Adds `request_id` to every record (the gunicorn access line brings its own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            # django.request logs a failed response after the middleware has finished,
            # but hands over the request, which carries its id.
            request = getattr(record, "request", None)
            record.request_id = getattr(request, "request_id", None) or request_id_var.get()
        return True


JSON_FORMATTER = {
    "()": "pythonjsonlogger.json.JsonFormatter",
    "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
    "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
    "timestamp": False,
}
TEXT_FORMATTER = {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"}


def logging_config(*, level: str, json_lines: bool) -> dict:
    """The dictConfig of the Django processes (web workers, monitor, commands)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "redact": {"()": "edgeserver.logging.RedactSecrets"},
            "request_id": {"()": "edgeserver.logging.RequestId"},
        },
        "formatters": {"default": JSON_FORMATTER if json_lines else TEXT_FORMATTER},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["redact", "request_id"],
            },
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django": {"handlers": ["console"], "level": level, "propagate": False},
        },
    }


def gunicorn_logging_config(*, level: str) -> dict:
    """gunicorn's own loggers in JSON: one object per line, access lines included."""
    config = logging_config(level=level, json_lines=True)
    config["loggers"] = {
        "gunicorn.error": {"handlers": ["console"], "level": level, "propagate": False},
        "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
    }
    config["root"] = {"handlers": ["console"], "level": level}
    return config
