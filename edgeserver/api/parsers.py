"""Request bodies: JSON objects only, bounded in size, whatever Content-Type the client sent.

Operators' curl scripts often post JSON without `-H 'Content-Type: application/json'`;
the contract says a body is JSON, so it is parsed as JSON rather than refused with 415.
"""

from __future__ import annotations

import json
import math
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import BaseParser

from edgeserver.api.errors import BodyTooLarge


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class NumberOutOfRange(ValueError):
    """A JSON number beyond a double's range (json would read 1e400 as infinity, which no
    database column and no JSON encoder takes)."""


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NumberOutOfRange(f"the number {text} is out of range")
    return value


def strict_json_loads(raw: str | bytes) -> Any:
    """JSON as RFC 8259 has it: no NaN or Infinity, no number beyond a double's range.
    Raises ValueError (or RecursionError for absurd nesting)."""
    return json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)


def _check_text(value: str, where: str) -> None:
    # PostgreSQL cannot store NUL in text or jsonb, and neither database can store a lone
    # surrogate; refusing them here keeps both databases answering alike.
    if "\x00" in value:
        raise ParseError(f"NUL characters are not allowed ({where})")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ParseError(f"Invalid Unicode in request body ({where})") from exc


def check_storable(value: Any, where: str = "body") -> None:
    """Raise ParseError if a decoded JSON value holds what no database can store: text with
    NUL or lone surrogates, a number that is not finite (from a parser other than ours)."""
    stack = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            _check_text(item, path)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ParseError(f"Numbers must be finite ({path})")
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(key, path)
                stack.append((child, f"{path}.{key}"))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(item))


def decode_json_object(raw: bytes) -> dict[str, Any]:
    """Decode a request body that must be a JSON object; an empty body is `{}`."""
    if not raw.strip():
        return {}
    try:
        data = strict_json_loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ParseError(f"Body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ParseError(f"Body must be a JSON object, got {type(data).__name__}")
    check_storable(data)
    return data


class JSONObjectParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None) -> dict[str, Any]:
        limit = settings.MAX_BODY_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise BodyTooLarge(f"Request body is larger than {limit // 1024} KiB")
        return decode_json_object(raw)


class JSONBodyNegotiation(DefaultContentNegotiation):
    """Parse every body with the JSON parser when no parser claims its Content-Type."""

    def select_parser(self, request, parsers):
        return super().select_parser(request, parsers) or (parsers[0] if parsers else None)
