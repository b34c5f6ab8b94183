"""The device admin's own views: live status cells for the list, CSV export of the
filtered list, the column chooser, a device page's buttons, served vs running config, and
the one history (the project's revisions with their diffs).

Each is a method of DeviceAdmin (reached through `admin_site.admin_view`: logged in,
CSRF-checked); each checks the permission it needs.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from devices import runtime, selectors
from devices.admin.columns import COLUMNS, COLUMNS_KEY, DEFAULT_COLUMNS, LIVE_CELLS, live_cell
from devices.admin.display import pretty, revision_diff
from devices.admin.outcomes import page_action, page_actions
from devices.api.responses import rfc3339
from devices.exceptions import DeviceError
from devices.models import Device

TIMELINE_ROWS = 15
HISTORY_ROWS = 50
CSV_FIELDS = [
    "device_id",
    "device_type",
    "ip_address",
    "port",
    "reload_port",
    "status",
    "error",
    "last_seen",
    "last_checked",
    "consecutive_failures",
    "reload_pending",
    "config_in_sync",
    "drifted_keys",
    "observed_ip",
    "version",
    "updated_at",
]


def _device(object_id: str) -> Device:
    device = selectors.device_get_with_health(device_id=unquote(object_id))
    if device is None:
        raise Http404("No such device")
    return device


def observation_context(device: Device) -> dict[str, Any]:
    status, error = selectors.device_status(device)
    return {
        "device": device,
        "health": selectors.device_health(device),
        "status": status,
        "error": error,
    }


def device_page_context(modeladmin: Any, request: HttpRequest, object_id: str) -> dict[str, Any]:
    device = selectors.device_get_with_health(device_id=unquote(object_id))
    if device is None:
        return {}
    can_act = modeladmin.has_change_permission(request, device)
    return {
        **observation_context(device),
        "page_actions": page_actions() if can_act else [],
        "timeline": list(selectors.status_changes(device_id=device.device_id)[:TIMELINE_ROWS]),
    }


def live_view(modeladmin: Any, request: HttpRequest) -> HttpResponse:
    """The live cells of the rows the list shows for the same query (htmx swaps them in
    by id)."""
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    if not modeladmin.has_view_permission(request):
        raise PermissionDenied
    try:
        changelist = modeladmin.get_changelist_instance(request)
    except IncorrectLookupParameters:
        return HttpResponse(status=400)
    cells = [
        live_cell(device, column, oob=True)
        for device in changelist.result_list
        for column in LIVE_CELLS
    ]
    return HttpResponse("\n".join(cells))


def _csv_cell(value: Any) -> Any:
    """Text a spreadsheet would run as a formula is quoted (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_rows(devices: Any) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_FIELDS)
    for device in devices.iterator(chunk_size=500):
        health = selectors.device_health(device)
        status, error = selectors.device_status(device)
        row = [
            device.device_id,
            device.device_type,
            device.ip_address,
            device.port,
            device.reload_port,
            status,
            error,
            rfc3339(health.last_seen) or "",
            rfc3339(health.last_checked) or "",
            health.consecutive_failures,
            health.reload_pending,
            "" if health.config_in_sync is None else health.config_in_sync,
            " ".join(health.drifted_keys),
            health.observed_ip,
            device.version,
            rfc3339(device.updated_at),
        ]
        yield writer.writerow([_csv_cell(value) for value in row])


def export_view(modeladmin: Any, request: HttpRequest) -> HttpResponse:
    """The list as CSV, with the filters, search and order of the page it was asked from."""
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    if not modeladmin.has_view_permission(request):
        raise PermissionDenied
    try:
        devices = modeladmin.get_changelist_instance(request).get_queryset(request)
    except IncorrectLookupParameters:
        return HttpResponse("Unknown filter", status=400, content_type="text/plain")
    response = StreamingHttpResponse(_csv_rows(devices), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="devices.csv"'
    return response


def columns_view(modeladmin: Any, request: HttpRequest) -> HttpResponse:
    """Keep the operator's choice of columns in their session."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not modeladmin.has_view_permission(request):
        raise PermissionDenied
    chosen = [c for c in request.POST.getlist("columns") if c in COLUMNS]
    request.session[COLUMNS_KEY] = chosen or DEFAULT_COLUMNS
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse("admin:devices_device_changelist")
    return HttpResponseRedirect(back)


def page_action_view(
    modeladmin: Any, request: HttpRequest, object_id: str, name: str
) -> HttpResponse:
    """One button of a device's page; htmx shows the outcome beside the buttons, a plain
    form post gets it as a message on the page."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    device = _device(object_id)
    action = page_action(name)
    if action is None:
        raise Http404("No such action")
    if not modeladmin.has_change_permission(request, device):
        raise PermissionDenied
    outcome = action.run(request, device)
    if not request.headers.get("HX-Request"):
        modeladmin.message_user(request, f"{action.label}: {outcome.text}", outcome.level)
        return HttpResponseRedirect(reverse("admin:devices_device_change", args=[device.pk]))
    context = {
        "action": action,
        "outcome": outcome,
        **observation_context(_device(object_id)),
        "timeline": list(selectors.status_changes(device_id=device.device_id)[:TIMELINE_ROWS]),
    }
    return TemplateResponse(request, "admin/devices/device/action_result.html", context)


def running_config_view(modeladmin: Any, request: HttpRequest, object_id: str) -> HttpResponse:
    """What the server serves beside what the device runs (fetched now), key by key,
    the drifted ones marked."""
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    device = _device(object_id)
    if not modeladmin.has_view_permission(request, device):
        raise PermissionDenied
    served = device.config_document()
    context: dict[str, Any] = {"device": device, "problem": "", "rows": []}
    try:
        running = runtime.device_running_config(device=device)
    except DeviceError as exc:
        context["problem"] = str(exc)
        running = None
    if isinstance(running, dict):
        drifted = set(runtime.config_drift(served, running))
        context["rows"] = [
            {
                "key": key,
                "served": pretty(served[key]) if key in served else None,
                "running": pretty(running[key]) if key in running else None,
                "drifted": key in drifted,
                "device_only": key not in served,
            }
            for key in sorted(served.keys() | running.keys())
        ]
        context["drifted_total"] = len(drifted)
    elif running is not None:
        context["problem"] = "The device answered with JSON that is not an object"
    return TemplateResponse(request, "admin/devices/device/running_config.html", context)


def history_view(
    modeladmin: Any, request: HttpRequest, object_id: str, extra_context: dict | None = None
) -> HttpResponse:
    """The HISTORY button: the device's revisions (who, when, from where) with the diff of
    each from the one before; it outlives a deleted device."""
    device_id = unquote(object_id)
    if not modeladmin.has_view_permission(request):
        raise PermissionDenied
    revisions = list(selectors.revision_list(device_id=device_id)[: HISTORY_ROWS + 1])
    if not revisions and selectors.device_get(device_id=device_id) is None:
        raise Http404("No such device")
    entries = []
    for index, revision in enumerate(revisions[:HISTORY_ROWS]):
        previous = revisions[index + 1] if index + 1 < len(revisions) else None
        if previous is None and revision.version > 1:
            previous = selectors.revision_before(revision)
        diff = (
            revision_diff(
                previous.config, revision.config, f"v{previous.version}", f"v{revision.version}"
            )
            if previous
            else None
        )
        entries.append({"revision": revision, "diff": diff, "config": pretty(revision.config)})
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": f"History: {device_id}",
        "device_id": device_id,
        "object_id": object_id,
        "opts": modeladmin.opts,
        "entries": entries,
        "more": len(revisions) > HISTORY_ROWS,
        "revisions_url": reverse("admin:devices_devicerevision_changelist")
        + "?"
        + urlencode({"device_id": device_id}),
        "device_exists": selectors.device_get(device_id=device_id) is not None,
        **(extra_context or {}),
    }
    if not context["device_exists"]:
        messages.info(request, "This device was deleted; its history is kept.")
    return TemplateResponse(request, modeladmin.object_history_template, context)
