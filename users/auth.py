"""Who is calling: bearer tokens (header or `/d/<token>/` path prefix) and staff sessions."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from users.tokens import Principal, principal_for_token


def _path_token(request: Request) -> str | None:
    context = getattr(request, "parser_context", None) or {}
    return (context.get("kwargs") or {}).get("path_token")


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>`, or the token of a `/d/<token>/config/{id}` path."""

    keyword = "bearer"

    def authenticate(self, request: Request) -> tuple[Principal, str] | None:
        raw = _path_token(request)
        from_path = raw is not None
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if raw is None and header and header[0].lower() == self.keyword:
            if len(header) != 2:
                raise exceptions.AuthenticationFailed("Malformed Authorization header")
            raw = header[1]
        if raw is None:
            return None
        principal = principal_for_token(raw)
        if principal is None:
            if settings.AUTH_MODE == "open":
                return None  # every route is anonymous; a stale token must not lock anyone out
            raise exceptions.AuthenticationFailed("Invalid or revoked token")
        if principal.is_operator and from_path:
            # A URL ends up in logs, proxies and shell histories: operator credentials never
            # travel there, whatever they would have been allowed to do.
            raise exceptions.AuthenticationFailed(
                "The /d/<token>/ path takes device and enrollment tokens only; send an "
                "operator token as Authorization: Bearer <token>"
            )
        return principal, raw

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="edge-metrics-server"'


class StaffSessionAuthentication(authentication.SessionAuthentication):
    """A logged-in admin user (browsable API, admin pages). CSRF is enforced on writes."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        result = super().authenticate(request)
        if result is None or not result[0].is_staff:
            return None
        return result
