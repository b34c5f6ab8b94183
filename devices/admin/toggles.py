"""A device's metrics as checkboxes: every name the fleet's devices of its type have
reported, ticked when the device is served it enabled, with the layer that decided it.
Saving writes the `metrics` dict as an operator's values for this device (they win over
profiles); a box left as it was stays with the layer that set it."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from devices import selectors, services
from devices.admin.actions import admin_actor
from devices.catalogue import metric_catalogue
from devices.exceptions import DeviceError
from devices.layering import device_explain


def _rows(device_id: str) -> tuple[Any, list[dict[str, Any]]]:
    device = selectors.device_get(device_id=device_id)
    if device is None:
        raise Http404(f"No device {device_id}")
    explained = device_explain(device)
    served = explained["config"].get("metrics")
    served = served if isinstance(served, dict) else {}
    catalogue = metric_catalogue(device_type=device.device_type)["metrics"]
    names = sorted({m["name"] for m in catalogue} | set(served))
    keys = explained["keys"]
    rows = []
    for name in names:
        origin = keys.get(f"metrics.{name}", {"layer": "—"})
        by = origin["layer"]
        if by == "profile":
            by = f"profile {origin['profile']} v{origin['version']}"
        rows.append({"name": name, "enabled": served.get(name) is True, "by": by})
    return device, rows


def metrics_view(modeladmin: Any, request: HttpRequest, object_id: str) -> HttpResponse:
    device, rows = _rows(unquote(object_id))
    if not modeladmin.has_view_permission(request, device):
        raise PermissionDenied
    if request.method == "POST":
        if not modeladmin.has_change_permission(request, device):
            raise PermissionDenied
        ticked = set(request.POST.getlist("enabled"))
        metrics = {row["name"]: row["name"] in ticked for row in rows}
        try:
            result = services.device_patch(
                device_id=device.device_id,
                data={"extra": {"metrics": metrics}},
                actor=admin_actor(request),
                if_match=f'"{request.POST.get("version", "")}"',
            )
        except DeviceError as exc:
            messages.error(request, f"Not saved: {device.device_id}: {exc}")
        else:
            told = " and the device reloaded" if result.reload_triggered else ""
            saved = f"Metrics of {device.device_id} saved{told}."
            messages.info(request, saved if result.changed else "Nothing changed.")
        url = reverse("admin:devices_device_metrics", args=[quote(device.device_id)])
        return HttpResponseRedirect(url)
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": modeladmin.opts,
        "device": device,
        "rows": rows,
        "title": f"Metrics of {device.device_id}",
    }
    return TemplateResponse(request, "admin/devices/device/metrics.html", context)
