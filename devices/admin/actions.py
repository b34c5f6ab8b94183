"""The device actions of the admin, in bulk (the list) and for one device (its page's
buttons): reload, probe now, use observed IP. Each calls the service the API calls."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from devices import runtime, selectors, services
from devices.admin.outcomes import Outcome, PageAction, register_page_actions, summarise
from devices.choices import ReloadStatus
from devices.exceptions import DeviceError
from devices.models import Device
from users.actors import Actor
from users.actors import admin_actor as actor_named


def admin_actor(request: HttpRequest) -> Actor:
    return actor_named(request.user.get_username())


def reload_outcome(result: runtime.ReloadResult) -> Outcome:
    return Outcome(
        result.device_id, result.status, result.error, ok=result.status == ReloadStatus.RELOADED
    )


def probe_outcomes(devices: list[Device]) -> list[Outcome]:
    """Probe now (drift re-checked) and say what each device's stored status became."""
    runtime.devices_probe(devices=devices, recheck_drift=True)
    outcomes = []
    for device in devices:
        status, error = selectors.device_status(device)
        outcomes.append(Outcome(device.device_id, status, error, ok=status == "healthy"))
    return outcomes


def adopt_outcome(request: HttpRequest, device_id: str) -> Outcome:
    try:
        result = services.device_adopt_observed_ip(device_id=device_id, actor=admin_actor(request))
    except DeviceError as exc:
        return Outcome(device_id, "not changed", str(exc), ok=False)
    if result.changed:
        return Outcome(device_id, "IP set", f"now {result.device.ip_address}")
    return Outcome(device_id, "unchanged", f"already at {result.device.ip_address}")


@admin.action(description="Reload selected devices", permissions=["change"])
def reload_devices(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Device]
) -> None:
    results = runtime.devices_reload(devices=queryset.order_by("device_id"))
    summarise(modeladmin, request, "Reload", [reload_outcome(r) for r in results])


@admin.action(description="Probe selected devices now", permissions=["change"])
def probe_devices(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Device]
) -> None:
    devices = list(queryset.select_related("health").order_by("device_id"))
    summarise(modeladmin, request, "Probe", probe_outcomes(devices))


@admin.action(description="Use observed IP", permissions=["change"])
def use_observed_ip(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Device]
) -> None:
    ids = queryset.order_by("device_id").values_list("device_id", flat=True)
    summarise(modeladmin, request, "Use observed IP", [adopt_outcome(request, i) for i in ids])


register_page_actions(
    PageAction(
        "reload",
        "Reload",
        lambda request, device: reload_outcome(runtime.device_reload(device=device)),
        order=10,
    ),
    PageAction("probe", "Probe now", lambda request, device: probe_outcomes([device])[0], 20),
    PageAction(
        "use-observed-ip",
        "Use observed IP",
        lambda request, device: adopt_outcome(request, device.device_id),
        order=90,
    ),
)
