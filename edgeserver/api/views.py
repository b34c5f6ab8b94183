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

from devices.api.serializers import ErrorSerializer, ServerHealthSerializer
from devices.services import Actor
from devices.tokens import Principal
from devices.validation import device_id_problem
from edgeserver.api.addresses import ObservedAddress, request_address
from edgeserver.api.errors import ApiError
from edgeserver.api.permissions import IsOperator, is_operator

ERROR_RESPONSES = {
    400: ErrorSerializer,
    401: ErrorSerializer,
    403: ErrorSerializer,
    404: ErrorSerializer,
    413: ErrorSerializer,
}


class ApiView(APIView):
    """Validates the `{device_id}` of the path once, after authentication."""

    validated_device_id: str | None = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if "device_id" in kwargs:
            problem = device_id_problem(kwargs["device_id"])
            if problem:
                raise ApiError(400, "invalid_device_id", problem)
            self.validated_device_id = kwargs["device_id"]

    def permission_denied(self, request: Request, message: str | None = None, code=None) -> None:
        # DRF drops the permission's message for anonymous callers; keep it, it says what to send.
        if request.authenticators and not request.successful_authenticator:
            raise exceptions.NotAuthenticated(message or IsOperator.message)
        super().permission_denied(request, message=message, code=code)

    def body(self) -> dict[str, Any]:
        """The request's JSON object; an empty body reads as `{}`."""
        data = self.request.data
        return {} if isinstance(data, QueryDict) else data

    def observed_address(self) -> ObservedAddress | None:
        """Where this request came from (X-Forwarded-For only from TRUSTED_PROXIES)."""
        return request_address(self.request.META)

    def actor(self, *, device_route: bool = False) -> Actor:
        """Who the revision history names for a write made through this request."""
        user = self.request.user
        if isinstance(user, Principal):
            if user.is_operator:
                return Actor(name=f"token:{user.name}")
            return Actor(name=f"{user.kind}:{user.name}", source="device", is_device=True)
        if is_operator(user):
            return Actor(name=user.get_username())
        if device_route:
            return Actor(name="anonymous", source="device", is_device=True)
        return Actor(name="anonymous")


class ServerHealthView(ApiView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(responses={200: ServerHealthSerializer}, auth=[], tags=["server"])
    def get(self, request: Request) -> Response:
        return Response(
            {"status": "healthy", "service": "config-server", "version": settings.VERSION}
        )
