"""Which devices the bridge publishes, under which names: the fleet's plans, or a few
devices' plans read without the fleet (per-device routes)."""

from __future__ import annotations

from collections.abc import Collection

from django.conf import settings
from django.db.models import Q
from django.db.models.functions import Lower

from devices.models import Device
from devices.selectors import device_list
from k8sbridge.objects import (
    DevicePlan,
    name_holder_id,
    plan_device,
    plan_devices,
    service_name,
)

# Beyond this many ids one query naming each costs more than reading the fleet.
SCOPE_QUERY_LIMIT = 500


def fleet_plans() -> list[DevicePlan]:
    """The plan of every registered device, by device id."""
    return plan_devices(device_list(), policy=settings.K8S_UNHEALTHY_POLICY)


def plans_for(device_ids: Collection[str]) -> list[DevicePlan]:
    """The plans of these devices and of the devices that share their names (by id).

    The same plans as fleet_plans() gives those devices: names go to the device
    registered first among the devices that can get them.
    """
    ids = set(device_ids)
    if len(ids) > SCOPE_QUERY_LIMIT:
        return fleet_plans()
    holders = {name_holder_id(service_name(device_id)) for device_id in ids}
    devices = (
        device_list()
        .alias(lowered_id=Lower("device_id"))
        .filter(Q(device_id__in=ids) | Q(lowered_id__in=holders))
    )
    return plan_devices(devices, policy=settings.K8S_UNHEALTHY_POLICY)


def device_plan(device: Device) -> DevicePlan:
    """The plan of one device (its objects' name, whether to publish them): one query."""
    for plan in plans_for([device.device_id]):
        if plan.device_id == device.device_id:
            return plan
    # Deleted meanwhile: nobody else is left to claim its name.
    return plan_device(device, owner=device.device_id, policy=settings.K8S_UNHEALTHY_POLICY)
