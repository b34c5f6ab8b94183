"""The leader's periodic check that every device is served what its layers give now:
a write acknowledged before a crash has its devices re-layered, whatever stopped it
(a monitor listener, level-based like the Kubernetes sync)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from django.conf import settings
from django.db.models import Q

from devices.layering import ProfileSet, device_layered, devices_relayer
from devices.models import Device
from users.actors import Actor

logger = logging.getLogger(__name__)

ACTOR = Actor(name="server:profile-reconcile")


def devices_out_of_layer() -> list[str]:
    """Devices whose served config is not what their layers give now (only those a
    profile or an earlier one can have changed are looked at)."""
    profiles = ProfileSet()
    devices = Device.objects.order_by("device_id")
    if not profiles:
        devices = devices.filter(~Q(base_config=None))
    return [
        device.device_id
        for device in devices.iterator(chunk_size=1000)
        if device_layered(device, profiles).document != device.config_document()
    ]


class ProfileReconcile:
    """Every PROFILE_RECONCILE_INTERVAL, re-layer what drifted from its layers."""

    def __init__(self, *, interval: float | None = None) -> None:
        self.still_leading: Callable[[], bool] | None = None
        self._interval = interval
        self._last: datetime | None = None

    @property
    def interval(self) -> float:
        if self._interval is not None:
            return self._interval
        return settings.PROFILE_RECONCILE_INTERVAL

    def devices_changed(self, device_ids: Iterable[str]) -> None:
        """Probes change nothing a profile reads (labels and device_type come from writes)."""

    def tick(self, now: datetime) -> list[str]:
        if self._last is not None and (now - self._last).total_seconds() < self.interval:
            return []
        self._last = now
        if self.still_leading is not None and not self.still_leading():
            return []
        stale = devices_out_of_layer()
        if not stale:
            return []
        logger.warning("%d devices not served what their layers give: re-layering", len(stale))
        return devices_relayer(device_ids=stale, actor=ACTOR, note="layers reconciled")
