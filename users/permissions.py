"""What a caller may do: operators everything, devices only their own config routes."""

from __future__ import annotations

from django.conf import settings
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from users.choices import TokenKind
from users.tokens import Principal, device_has_own_token


def anonymous_device_calls_allowed() -> bool:
    """Whether a device route may be called without any credential."""
    return settings.AUTH_MODE == "open" or settings.DEVICE_REGISTRATION == "open"


def is_operator(user: object) -> bool:
    if isinstance(user, Principal):
        return user.is_operator
    return bool(getattr(user, "is_staff", False) and getattr(user, "is_active", False))


class IsOperator(BasePermission):
    """Operator routes: an operator token or a staff session, unless AUTH_MODE=open."""

    message = "This route needs operator credentials: Authorization: Bearer <token>"

    def has_permission(self, request: Request, view: object) -> bool:
        return settings.AUTH_MODE == "open" or is_operator(request.user)


class DeviceRouteAccess(BasePermission):
    """`GET`/`PUT /config/{id}`: the exporter's own routes.

    Under DEVICE_REGISTRATION=open anyone may call them (field exporters send no
    credentials), but a credential that is presented must fit the device id.
    """

    message = "This credential may not use the config of this device"

    def has_permission(self, request: Request, view: object) -> bool:
        if settings.AUTH_MODE == "open":
            return True
        user = request.user
        device_id = view.kwargs.get("device_id", "")  # type: ignore[attr-defined]
        if is_operator(user):
            return True
        if isinstance(user, Principal) and not user.may_act_as_device(device_id):
            return False
        if isinstance(user, Principal) or anonymous_device_calls_allowed():
            return self._may_write(request, user, device_id)
        self.message = (
            "DEVICE_REGISTRATION=token: send a device or enrollment token as "
            "Authorization: Bearer <token> or use the /d/<token>/config/{id} path"
        )
        return False

    def _may_write(self, request: Request, user: object, device_id: str) -> bool:
        """Once a device has a token bound to it, only that token (or an operator) writes
        its config: not the fleet's enrollment token, not an anonymous caller."""
        if request.method in SAFE_METHODS:
            return True
        if isinstance(user, Principal) and user.kind == TokenKind.DEVICE:
            return True
        if device_has_own_token(device_id):
            self.message = (
                f"Device {device_id} has a token of its own: only that token, or an "
                "operator, may change its config"
            )
            return False
        return True
