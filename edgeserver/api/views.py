"""The base of every JSON route, and the server's own health route."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import QueryDict
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from edgeserver.api.addresses import ObservedAddress, request_address
from edgeserver.api.errorkinds import error_responses
from edgeserver.api.errors import ApiError
from edgeserver.api.serializers import (
    ErrorSerializer,
    ServerHealthSerializer,
    ServerReadySerializer,
)
from edgeserver.runstate import LeaderState, draining

ERROR_RESPONSES = {
    400: ErrorSerializer,
    401: ErrorSerializer,
    403: ErrorSerializer,
    404: ErrorSerializer,
    413: ErrorSerializer,
}


class ApiView(APIView):
    """What every JSON route shares: the body as a JSON object, where the call came from,
    and an authentication failure that says what to send."""

    # The device id the request is about, once its app validated it: errors name it.
    validated_device_id: str | None = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        method = request.method.lower()
        if method not in self.http_method_names or not hasattr(self, method):
            self.http_method_not_allowed(request)  # a wrong method is a 405, whoever asks
        super().initial(request, *args, **kwargs)
        for name, value in request.query_params.items():
            if "\x00" in name or "\x00" in value:
                # No database takes NUL in text, and no parameter of ours means one.
                raise ApiError(400, "invalid_query", "Query parameters must not contain NUL")

    def permission_denied(self, request: Request, message: str | None = None, code=None) -> None:
        # DRF drops the permission's message for anonymous callers; keep it, it says what to send.
        if request.authenticators and not request.successful_authenticator:
            raise exceptions.NotAuthenticated(message)
        super().permission_denied(request, message=message, code=code)

    def body(self) -> dict[str, Any]:
        """The request's JSON object; an empty body reads as `{}`."""
        data = self.request.data
        return {} if isinstance(data, QueryDict) else data

    def observed_address(self) -> ObservedAddress | None:
        """Where this request came from (X-Forwarded-For only from TRUSTED_PROXIES)."""
        return request_address(self.request.META)


class ServerHealthView(ApiView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(responses={200: ServerHealthSerializer}, auth=[], tags=["server"])
    def get(self, request: Request) -> Response:
        """The server answers; `version` is its release. Needs no credential."""
        body = {
            "status": "healthy",
            "service": "config-server",
            "version": settings.VERSION,
            "leader": LeaderState.of_this_server().read(),
        }
        return Response(ServerHealthSerializer(body).data)


class ServerReadyView(ApiView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(
        responses={200: ServerReadySerializer, **error_responses("draining")},
        auth=[],
        tags=["server"],
    )
    def get(self, request: Request) -> Response:
        """Whether load balancers should send this server requests (the manifests'
        readinessProbe): 503 `draining` once it is shutting down. Needs no credential."""
        if draining().is_set():
            raise ApiError(
                503, "draining", "This server is shutting down; send requests to another replica"
            )
        return Response(ServerReadySerializer({"status": "ready"}).data)
