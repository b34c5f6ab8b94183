"""Who makes a change, as the revision history records it."""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework.request import Request

from users.choices import ChangeSource
from users.permissions import is_operator
from users.tokens import Principal


@dataclass(frozen=True)
class Actor:
    name: str
    source: str = ChangeSource.API
    # True when the device itself writes (anonymous device route, or its own credential).
    is_device: bool = False


def actor_for(request: Request, *, device_route: bool = False) -> Actor:
    """The actor of a write made through `request`; on a device route an anonymous caller
    is the device itself."""
    user = request.user
    if isinstance(user, Principal):
        if user.is_operator:
            return Actor(name=f"token:{user.name}")
        return Actor(name=f"{user.kind}:{user.name}", source=ChangeSource.DEVICE, is_device=True)
    if is_operator(user):
        return Actor(name=user.get_username())
    if device_route:
        return Actor(name="anonymous", source=ChangeSource.DEVICE, is_device=True)
    return Actor(name="anonymous")


def admin_actor(username: str) -> Actor:
    return Actor(name=f"admin:{username}", source=ChangeSource.ADMIN)
