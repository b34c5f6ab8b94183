"""The operator's UI: devices (saved through the same services as the API), their
revision history and API tokens."""

from __future__ import annotations

import difflib
import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import csrf_protect_m
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from rest_framework.exceptions import ParseError

from devices import runtime, selectors, services
from devices.api.responses import rfc3339
from devices.api.serializers import DeviceConfigSerializer
from devices.choices import DeviceStatus, ReloadStatus
from devices.exceptions import DeviceError
from devices.models import Device, DeviceRevision
from devices.validation import device_id_problem
from edgeserver.api.parsers import check_storable
from users.actors import Actor
from users.actors import admin_actor as actor_named

STATUS_COLOURS = {
    DeviceStatus.HEALTHY: "#2e7d32",
    DeviceStatus.UNHEALTHY: "#ef6c00",
    DeviceStatus.UNREACHABLE: "#c62828",
    DeviceStatus.UNKNOWN: "#757575",
}
HISTORY_ROWS = 10


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


class PrettyJSONEncoder(json.JSONEncoder):
    """Shows JSON in the edit form indented, one key per line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.update(indent=2, sort_keys=True)
        super().__init__(*args, **kwargs)


def admin_actor(request: HttpRequest) -> Actor:
    return actor_named(request.user.get_username())


def register_device_actions(*actions: Any) -> None:
    """Add admin actions to the device list (the Kubernetes bridge adds its own)."""
    DeviceAdmin.actions = [*DeviceAdmin.actions, *actions]


def status_badge(status: str) -> str:
    return format_html(
        '<span style="color:#fff;background:{};padding:1px 6px;border-radius:8px">{}</span>',
        STATUS_COLOURS.get(status, "#757575"),
        status,
    )


class DeviceForm(forms.ModelForm):
    """Validates exactly as `PUT /config/{id}` does, so the admin cannot store what the API
    would refuse."""

    enabled_metrics = forms.JSONField(
        required=False,
        encoder=PrettyJSONEncoder,
        help_text='JSON list of metric names, e.g. ["gpu_power"]; empty = all',
    )
    extra_config = forms.JSONField(
        required=False,
        encoder=PrettyJSONEncoder,
        initial=dict,
        help_text='JSON object of the other config keys, e.g. {"shelly": {"enabled": true}}',
    )
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = Device
        fields = ["device_id", "device_type", "ip_address", "port", "reload_port"]
        help_texts = {
            "ip_address": "IPv4 or IPv6 literal. Empty keeps the stored address, as in the API.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["version"].initial = self.instance.version
            self.fields["extra_config"].initial = self.instance.extra_config
            self.fields["enabled_metrics"].initial = self.instance.enabled_metrics
        self.config_data: dict[str, Any] = {}

    def clean_device_id(self) -> str:
        device_id = self.cleaned_data["device_id"]
        problem = device_id_problem(device_id)
        if problem:
            raise forms.ValidationError(problem)
        return device_id

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        extra = cleaned.get("extra_config") or {}
        if not isinstance(extra, dict):
            self.add_error("extra_config", "Must be a JSON object")
            return cleaned
        body = {
            **extra,
            "device_type": cleaned.get("device_type"),
            "ip_address": cleaned.get("ip_address") or "",
            "port": cleaned.get("port"),
            "reload_port": cleaned.get("reload_port"),
            "enabled_metrics": cleaned.get("enabled_metrics"),
        }
        version = cleaned.get("version")
        if self.instance.pk and version and version != self.instance.version:
            raise forms.ValidationError(
                f"{self.instance.pk} was changed since this page was opened (now version "
                f"{self.instance.version}); reload the page to see the current config."
            )
        try:
            check_storable(body)
        except ParseError as exc:
            self.add_error(None, str(exc.detail))
            return cleaned
        serializer = DeviceConfigSerializer(
            data=body, context={"device_id": cleaned.get("device_id") or self.instance.pk}
        )
        if not serializer.is_valid():
            for field, problems in serializer.errors.items():
                target = field if field in self.fields else "extra_config"
                for problem in problems if isinstance(problems, list) else [problems]:
                    self.add_error(target, str(problem))
        else:
            self.config_data = serializer.validated_data
        return cleaned


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return list(DeviceStatus.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Device]) -> QuerySet[Device]:
        value = self.value()
        if not value:
            return queryset
        if value == DeviceStatus.UNKNOWN:
            return queryset.filter(
                Q(ip_address="") | Q(health__isnull=True) | Q(health__status=value)
            )
        return queryset.exclude(ip_address="").filter(health__status=value)


# Shown on a device's page, read-only: what probes and the device's own calls observed.
OBSERVED_FIELDS = [
    "status",
    "exporter_status",
    "last_seen",
    "last_checked",
    "config_in_sync",
    "drifted_keys",
    "observed_ip",
    "last_contact",
    "created_at",
    "updated_at",
]


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    form = DeviceForm
    list_display = [
        "device_id",
        "device_type",
        "ip_address",
        "port",
        "reload_port",
        "status",
        "last_seen",
        "config_in_sync",
        "observed_ip",
        "updated_at",
    ]
    list_filter = ["device_type", StatusFilter, "health__config_in_sync"]
    search_fields = ["device_id", "ip_address"]
    list_per_page = 100
    readonly_fields = [*OBSERVED_FIELDS, "history"]
    actions = [
        "reload_devices",
        "probe_devices",
        "use_observed_ip",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Device]:
        return super().get_queryset(request).select_related("health")

    def get_readonly_fields(self, request: HttpRequest, obj: Device | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "device_id"] if obj else fields

    def get_fieldsets(self, request: HttpRequest, obj: Device | None = None) -> list:
        config = [
            "device_id",
            "device_type",
            "ip_address",
            "port",
            "reload_port",
            "enabled_metrics",
            "extra_config",
            "version",
        ]
        if obj is None:
            return [(None, {"fields": config})]
        return [
            (None, {"fields": config}),
            ("Observed", {"fields": OBSERVED_FIELDS}),
            ("History", {"fields": ["history"]}),
        ]

    @admin.display(description="status")
    def status(self, device: Device) -> str:
        status, error = selectors.device_status(device)
        badge = status_badge(status)
        return (
            format_html('{} <small title="{}">{}</small>', badge, error, error) if error else badge
        )

    @admin.display(description="last seen")
    def last_seen(self, device: Device) -> str:
        return rfc3339(selectors.device_health(device).last_seen) or "—"

    @admin.display(description="last checked")
    def last_checked(self, device: Device) -> str:
        return rfc3339(selectors.device_health(device).last_checked) or "—"

    @admin.display(description="exporter says")
    def exporter_status(self, device: Device) -> str:
        return selectors.device_health(device).exporter_status or "—"

    @admin.display(boolean=True, description="config in sync")
    def config_in_sync(self, device: Device) -> bool | None:
        return selectors.device_health(device).config_in_sync

    @admin.display(description="drifted keys")
    def drifted_keys(self, device: Device) -> str:
        return ", ".join(selectors.device_health(device).drifted_keys) or "—"

    @admin.display(description="observed IP")
    def observed_ip(self, device: Device) -> str:
        return selectors.device_health(device).observed_ip or "—"

    @admin.display(description="last contact")
    def last_contact(self, device: Device) -> str:
        return rfc3339(selectors.device_health(device).last_contact) or "—"

    @admin.display(description="recent revisions")
    def history(self, device: Device) -> str:
        revisions = selectors.revision_list(device_id=device.device_id)[:HISTORY_ROWS]
        rows = format_html_join(
            "",
            "<tr><td>v{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((r.version, r.action, r.actor, r.source, rfc3339(r.created_at)) for r in revisions),
        )
        link = reverse("admin:devices_devicerevision_changelist") + f"?device_id={device.pk}"
        return format_html(
            "<table><tr><th>version</th><th>action</th><th>who</th><th>source</th>"
            "<th>when</th></tr>{}</table>"
            '<p><a href="{}">All revisions, their changes and rollback</a></p>',
            rows,
            link,
        )

    @csrf_protect_m
    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        # The admin wraps a save in its own transaction; the service's transaction must be
        # the outermost one, so that the device it reloads fetches the committed config.
        return self._changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: Device, form: DeviceForm, change: bool) -> None:
        version = form.cleaned_data.get("version")
        try:
            result = services.device_upsert(
                device_id=obj.pk,
                data=form.config_data,
                actor=admin_actor(request),
                if_match=f'"{version}"' if change and version else None,
            )
        except DeviceError as exc:
            # Shown on the change list; the form is not saved.
            messages.error(request, f"{obj.pk}: {exc}")
            return
        if not result.changed:
            messages.info(request, f"{obj.pk}: nothing changed, no revision written.")
        elif result.reload_triggered:
            messages.info(request, f"{obj.pk}: the device reloaded its config.")
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Device) -> None:
        services.device_delete(device_id=obj.pk, actor=admin_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        for device_id in queryset.values_list("device_id", flat=True):
            try:
                services.device_delete(device_id=device_id, actor=admin_actor(request))
            except DeviceError as exc:
                messages.warning(request, f"{device_id}: {exc}")

    @admin.action(description="Reload selected devices")
    def reload_devices(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        results = runtime.devices_reload(devices=queryset)
        reloaded = [r.device_id for r in results if r.status == ReloadStatus.RELOADED]
        if reloaded:
            messages.success(request, f"Reloaded {len(reloaded)}: {', '.join(reloaded)}")
        for result in results:
            if result.status != ReloadStatus.RELOADED:
                messages.error(request, f"{result.device_id}: {result.status}: {result.error}")

    @admin.action(description="Probe selected devices now")
    def probe_devices(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        devices = list(queryset.select_related("health"))
        result = runtime.devices_probe(devices=devices, recheck_drift=True)
        counts: dict[str, int] = {}
        for device in devices:
            status, _ = selectors.device_status(device)
            counts[status] = counts.get(status, 0) + 1
        summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
        messages.success(
            request, f"Probed {len(result.devices)} in {result.seconds:.1f}s: {summary}"
        )

    @admin.action(description="Use observed IP")
    def use_observed_ip(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        for device_id in queryset.values_list("device_id", flat=True):
            try:
                result = services.device_adopt_observed_ip(
                    device_id=device_id, actor=admin_actor(request)
                )
            except DeviceError as exc:
                messages.error(request, f"{device_id}: {exc}")
                continue
            if result.changed:
                messages.success(request, f"{device_id}: IP set to {result.device.ip_address}")
            else:
                messages.info(request, f"{device_id}: already at {result.device.ip_address}")


class DeviceIdFilter(admin.SimpleListFilter):
    """Lets the device page link to one device's history (`?device_id=`)."""

    title = "device"
    parameter_name = "device_id"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        value = self.value()
        return [(value, value)] if value else []

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(device_id=self.value()) if self.value() else queryset


@admin.register(DeviceRevision)
class DeviceRevisionAdmin(admin.ModelAdmin):
    list_display = ["device_id", "version", "action", "actor", "source", "created_at"]
    list_filter = [DeviceIdFilter, "action", "source"]
    search_fields = ["device_id", "actor"]
    readonly_fields = [
        "device_id",
        "version",
        "action",
        "actor",
        "source",
        "created_at",
        "changes",
        "config_json",
    ]
    fields = readonly_fields
    actions = ["roll_back"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="config")
    def config_json(self, revision: DeviceRevision) -> str:
        return format_html("<pre>{}</pre>", _pretty(revision.config))

    @admin.display(description="changes from the previous revision")
    def changes(self, revision: DeviceRevision) -> str:
        previous = selectors.revision_before(revision)
        if previous is None:
            return "first revision"
        diff = difflib.unified_diff(
            _pretty(previous.config).splitlines(),
            _pretty(revision.config).splitlines(),
            f"v{previous.version}",
            f"v{revision.version}",
            lineterm="",
        )
        return format_html("<pre>{}</pre>", "\n".join(diff) or "no change")

    @admin.action(description="Roll back each selected device to this revision")
    def roll_back(self, request: HttpRequest, queryset: QuerySet[DeviceRevision]) -> None:
        chosen: dict[str, DeviceRevision] = {}
        for revision in queryset.order_by("-version"):
            chosen.setdefault(revision.device_id, revision)
        for device_id, revision in chosen.items():
            try:
                result = services.device_rollback(
                    device_id=device_id, version=revision.version, actor=admin_actor(request)
                )
            except DeviceError as exc:
                messages.error(request, f"{device_id}: {exc}")
                continue
            outcome = "restored" if result.changed else "already at that config"
            messages.success(
                request,
                f"{device_id}: v{revision.version} {outcome} (now v{result.device.version})",
            )
