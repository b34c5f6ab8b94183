"""Every `error` value the server answers: its status and what it means, declared once.

Each app declares its kinds (the kernel's are here); the OpenAPI schema lists, per
operation and status, exactly the kinds that operation can answer (`error_responses`), and
the README's table and docs/API.md are generated from the same catalogue
(`manage.py api_reference`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drf_spectacular.utils import OpenApiResponse


@dataclass(frozen=True)
class ErrorKind:
    error: str
    status: int
    meaning: str


_catalogue: dict[str, ErrorKind] = {}


def declare(*kinds: ErrorKind) -> None:
    for kind in kinds:
        known = _catalogue.setdefault(kind.error, kind)
        if known != kind:
            raise ValueError(f"error kind {kind.error!r} is declared twice, differently")


def catalogue() -> list[ErrorKind]:
    return sorted(_catalogue.values(), key=lambda kind: (kind.status, kind.error.lower()))


def kind(error: str) -> ErrorKind:
    return _catalogue[error]


def declared() -> set[str]:
    return set(_catalogue)


# Answers of the kernel, on any route.
INVALID_BODY = "Invalid request body"
INTERNAL_ERROR = "Internal server error"

declare(
    ErrorKind(
        INVALID_BODY,
        400,
        "the body is not JSON as RFC 8259 has it (NaN, Infinity and "
        "numbers beyond a double are refused), not an object, or holds NUL characters or "
        "invalid Unicode",
    ),
    ErrorKind("Missing required field", 400, "a field the operation needs is absent or null"),
    ErrorKind("validation_error", 400, "a value is of the wrong type or out of range"),
    ErrorKind("invalid_query", 400, "a query parameter holds a NUL character"),
    ErrorKind("bad_request", 400, "the request could not be read as HTTP (answered by gunicorn)"),
    ErrorKind(
        "authentication_required",
        401,
        "no credential, a malformed one, an unknown or "
        "revoked token, or an operator token in the /d/<token>/ path",
    ),
    ErrorKind(
        "forbidden",
        403,
        "the credential may not do this (a device token of another "
        "device, a device token on an operator route)",
    ),
    ErrorKind("Not found", 404, "no route for the path"),
    ErrorKind("method_not_allowed", 405, "the route does not take this method"),
    ErrorKind("not_acceptable", 406, "no representation matches the Accept header"),
    ErrorKind("request_too_large", 413, "the body is over 256 KiB"),
    ErrorKind("uri_too_long", 414, "the request line is over 8190 bytes (answered by gunicorn)"),
    ErrorKind("unsupported_media_type", 415, "the body's media type cannot be parsed"),
    ErrorKind("headers_too_large", 431, "the request's headers are too large (gunicorn)"),
    ErrorKind(INTERNAL_ERROR, 500, "an unexpected failure; the server's log has the details"),
    ErrorKind(
        "draining",
        503,
        "this replica is shutting down (`GET /health/ready`); another one answers",
    ),
)

# What every authenticated route can answer besides its own kinds.
AUTHENTICATION = ("authentication_required",)


def _error_schema(errors: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "enum": sorted(errors)},
            "device_id": {"type": "string"},
            "message": {"type": "string"},
        },
    }


def error_responses(*errors: str) -> dict[int, OpenApiResponse]:
    """The documented error responses of an operation: per status, the schema of the
    contract's error shape whose `error` is one of the kinds given, and what each means."""
    by_status: dict[int, list[str]] = {}
    for error in errors:
        by_status.setdefault(kind(error).status, []).append(error)
    return {
        status: OpenApiResponse(
            _error_schema(kinds),
            description="; ".join(f"`{e}`: {kind(e).meaning}" for e in sorted(kinds)),
        )
        for status, kinds in sorted(by_status.items())
    }
