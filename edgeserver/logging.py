"""Logging pieces shared by Django and gunicorn: secrets never reach a log line."""

from __future__ import annotations

import logging
import re

# A device credential can travel in the path (/d/<token>/config/<id>) or in a header.
_PATH_TOKEN = re.compile(r"/d/[^/\s?\"']+/")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',]+")


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
