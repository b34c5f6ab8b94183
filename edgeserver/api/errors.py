"""The one error renderer: every failure leaves the server as the contract's error shape.

`{"error": <kind>, "device_id": <id, when known>, "message": <human text>}`
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

from edgeserver.api import errorkinds
from edgeserver.api.errorkinds import INTERNAL_ERROR, INVALID_BODY

logger = logging.getLogger(__name__)


class ApiError(exceptions.APIException):
    """A failure with a contract error kind; raise it from views and services alike."""

    def __init__(
        self,
        status_code: int,
        error: str,
        message: str | None = None,
        *,
        device_id: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail=message or error)
        self.status_code = status_code
        self.error = error
        self.message = message
        self.device_id = device_id
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return error_body(self.error, self.message, device_id=self.device_id, **self.extra)


class BodyTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is larger than the limit"


def error_body(
    error: str, message: str | None = None, *, device_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"error": error}
    if device_id is not None:
        body["device_id"] = device_id
    if message is not None:
        body["message"] = message
    body.update(extra)
    return body


# Domain exceptions, by class, to what they mean in HTTP. Each app registers its own
# (AppConfig.ready), so services raise domain errors and only this table knows HTTP.
ErrorMapper = Callable[[Exception], ApiError]
_mappers: dict[type[Exception], ErrorMapper] = {}


def register_errors(mapping: Mapping[type[Exception], ErrorMapper]) -> None:
    """Declare how an app's exceptions are answered (the most specific class wins)."""
    _mappers.update(mapping)


def as_api_error(exc: Exception) -> ApiError | None:
    """The contract's error for a registered domain exception, else None."""
    for cls in type(exc).__mro__:
        mapper = _mappers.get(cls)
        if mapper is not None:
            return mapper(exc)
    return None


# DRF's own exceptions, by class, to (error kind, fallback message).
_DRF_KINDS: list[tuple[type[exceptions.APIException], str]] = [
    (exceptions.ParseError, INVALID_BODY),
    (exceptions.NotAuthenticated, "authentication_required"),
    (exceptions.AuthenticationFailed, "authentication_required"),
    (exceptions.PermissionDenied, "forbidden"),
    (exceptions.NotFound, "Not found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.NotAcceptable, "not_acceptable"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.Throttled, "rate_limited"),
    (BodyTooLarge, "request_too_large"),
]

# Validation codes raised by DRF's built-in fields, to contract error kinds. Our own fields
# raise with the contract kind as their code, so it passes through unchanged.
_VALIDATION_KINDS = {
    "required": "Missing required field",
    "null": "Missing required field",
    "blank": "Missing required field",
}


def _first_validation_error(detail: Any, path: str = "") -> tuple[str, str, str]:
    """Walk DRF's nested error detail and return (field, code, message) of the first error."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            field = key if key != "non_field_errors" else path
            return _first_validation_error(value, field or path)
    if isinstance(detail, list) and detail:
        return _first_validation_error(detail[0], path)
    code = getattr(detail, "code", "invalid") or "invalid"
    return path, code, str(detail)


def _validation_response(exc: exceptions.ValidationError, device_id: str | None) -> Response:
    field, code, message = _first_validation_error(exc.detail)
    kind = _VALIDATION_KINDS.get(code, code)
    if kind == "Missing required field":
        message = f"{field} is required"
    elif kind not in errorkinds.declared():
        # One of DRF's own codes (invalid, max_value, not_a_list, ...): our fields raise
        # with a declared kind as their code, so it passes through as it is.
        kind = "validation_error"
        message = f"{field}: {message}" if field else message
    return Response(error_body(kind, message, device_id=device_id), status=400)


def _device_id_of(context: dict[str, Any]) -> str | None:
    view = context.get("view")
    return getattr(view, "validated_device_id", None)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: render anything raised in a view as the contract's shape."""
    # Imported here: rest_framework.views reads the API settings, which import this module.
    from rest_framework.views import set_rollback

    device_id = _device_id_of(context)
    set_rollback()
    exc = as_api_error(exc) or exc
    if isinstance(exc, ApiError):
        body = exc.body()
        if exc.device_id is None and device_id is not None:
            body = {"error": body.pop("error"), "device_id": device_id, **body}
        return Response(body, status=exc.status_code)
    if isinstance(exc, exceptions.ValidationError):
        return _validation_response(exc, device_id)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    for exc_class, kind in _DRF_KINDS:
        if isinstance(exc, exc_class):
            headers = {}
            auth_header = getattr(exc, "auth_header", None)
            if auth_header:
                headers["WWW-Authenticate"] = auth_header
            if isinstance(exc, exceptions.Throttled) and exc.wait:
                headers["Retry-After"] = str(int(exc.wait))
            return Response(
                error_body(kind, str(exc.detail)), status=exc.status_code, headers=headers
            )
    if isinstance(exc, exceptions.APIException):
        return Response(error_body("error", str(exc.detail)), status=exc.status_code)
    request = context.get("request")
    logger.exception(
        "Unhandled error on %s %s",
        getattr(request, "method", "?"),
        getattr(request, "path", "?"),
    )
    return Response(
        error_body(INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def json_response(body: Any, *, status: int = 200, **kwargs: Any) -> JsonResponse:
    """A JSON answer outside DRF, encoded as compactly as DRF's renderer does."""
    return JsonResponse(
        body,
        status=status,
        safe=False,
        json_dumps_params={"separators": (",", ":"), "ensure_ascii": False},
        **kwargs,
    )


def error_response(
    status: int, error: str, message: str | None = None, **extra: Any
) -> JsonResponse:
    """The contract's error shape, for answers made outside DRF."""
    return json_response(error_body(error, message, **extra), status=status)


def render_error(exc: Exception) -> JsonResponse:
    """A registered domain exception answered outside DRF, as DRF's handler answers it."""
    api_error = as_api_error(exc)
    if api_error is None:
        raise exc
    return json_response(api_error.body(), status=api_error.status_code)


# Django-level handlers, for requests that never reach a DRF view (unknown paths, CSRF
# failures outside DRF, crashes in middleware).
def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(404, "Not found", f"No route for {request.path}")


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(400, "bad_request", str(exception or "Bad request"))


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(403, "forbidden", str(exception or "Forbidden"))


def server_error(request: HttpRequest) -> JsonResponse:
    return error_response(500, INTERNAL_ERROR, "The server failed to handle the request")
