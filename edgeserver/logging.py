"""Logging pieces shared by Django, gunicorn and the monitor: secrets never reach a log
line, and every line of a request carries its request id."""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar

# A device credential can travel in the path (/d/<token>/config/<id>) or in a header.
_PATH_TOKEN = re.compile(r"/d/[^/\s?\"']+/")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',]+")

# The id of the request being served in this thread ("-" outside a request).
request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


def redact(text: str) -> str:
    """Return `text` with path tokens and bearer tokens replaced by a marker."""
    if "/d/" not in text and "earer" not in text:
        return text
    return _BEARER.sub(r"\1[redacted]", _PATH_TOKEN.sub("/d/[redacted]/", text))


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
