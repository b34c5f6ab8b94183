"""The base of the device routes: the `{device_id}` of the path checked once, after
authentication, and the actor a write is recorded under."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request

from devices.validation import device_id_problem
from edgeserver.api.errors import ApiError
from edgeserver.api.views import ApiView
from users.actors import Actor, actor_for


class DeviceApiView(ApiView):
    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if "device_id" in kwargs:
            problem = device_id_problem(kwargs["device_id"])
            if problem:
                raise ApiError(400, "invalid_device_id", problem)
            self.validated_device_id = kwargs["device_id"]

    def actor(self, *, device_route: bool = False) -> Actor:
        """Who the revision history names for a write made through this request."""
        return actor_for(self.request, device_route=device_route)
