"""The device list and a device's page: dense sortable columns the operator can choose,
saves through the same services as the API."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Case, F, QuerySet, Value, When
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.urls import path
from django.utils.html import format_html, format_html_join

from devices import labelling, selectors, services
from devices.admin import actions, console, toggles
from devices.admin.columns import COLUMNS, DEFAULT_COLUMNS, chosen_columns, live_cell
from devices.admin.display import EMPTY, short_time
from devices.admin.filters import (
    FailuresFilter,
    LabelFilter,
    ReloadPendingFilter,
    ResultFilter,
    StatusChangedFilter,
    StatusFilter,
)
from devices.admin.forms import DeviceForm
from devices.admin.saving import SavedThroughServices
from devices.choices import DeviceStatus
from devices.exceptions import DeviceError
from devices.models import Device


def register_device_actions(*device_actions: Any) -> None:
    """Add admin actions to the device list (the Kubernetes bridge adds its own)."""
    DeviceAdmin.actions = [*DeviceAdmin.actions, *device_actions]


@admin.register(Device)
class DeviceAdmin(SavedThroughServices, admin.ModelAdmin):
    form = DeviceForm
    change_list_template = "admin/devices/device/change_list.html"
    change_form_template = "admin/devices/device/change_form.html"
    object_history_template = "admin/devices/device/object_history.html"
    list_display = ["device_id", *DEFAULT_COLUMNS]
    list_filter = [
        StatusFilter,
        "device_type",
        LabelFilter,
        ("health__config_in_sync", admin.BooleanFieldListFilter),
        ReloadPendingFilter,
        FailuresFilter,
        StatusChangedFilter,
        ResultFilter,
    ]
    search_fields = ["device_id", "ip_address", "health__observed_ip"]
    list_per_page = 100
    actions = [actions.reload_devices, actions.probe_devices, actions.use_observed_ip]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Device]:
        # What the columns sort by, the same on SQLite and PostgreSQL (which put NULLs at
        # opposite ends): the contract status (no address or never observed = unknown),
        # and a device never observed as having no failures, no pending reload, no IP.
        status = Case(
            When(ip_address="", then=Value(DeviceStatus.UNKNOWN.value)),
            When(health__isnull=True, then=Value(DeviceStatus.UNKNOWN.value)),
            default=F("health__status"),
        )
        return (
            super()
            .get_queryset(request)
            .select_related("health")
            .alias(
                status_rank=status,
                failures_rank=Coalesce("health__consecutive_failures", 0),
                pending_rank=Coalesce("health__reload_pending", False),
                observed_rank=Coalesce("health__observed_ip", Value("")),
            )
        )

    def get_list_display(self, request: HttpRequest) -> list[str]:
        return ["device_id", *chosen_columns(request)]

    def get_readonly_fields(self, request: HttpRequest, obj: Device | None = None) -> list[str]:
        return ["device_id"] if obj else []

    def get_fields(self, request: HttpRequest, obj: Device | None = None) -> list[str]:
        return [
            "device_id",
            "device_type",
            "ip_address",
            "port",
            "reload_port",
            "enabled_metrics",
            "extra_config",
            "labels",
            "version",
        ]

    def get_urls(self) -> list:
        view = self.admin_site.admin_view
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        # Names start with "_": no device id can (ids start with a letter or a digit).
        return [
            path("_live/", view(self.live_view), name=f"{prefix}_live"),
            path("_export.csv", view(self.export_view), name=f"{prefix}_export"),
            path("_columns/", view(self.columns_view), name=f"{prefix}_columns"),
            path(
                "<path:object_id>/_act/<slug:name>/",
                view(self.page_action_view),
                name=f"{prefix}_act",
            ),
            path(
                "<path:object_id>/_metrics/",
                view(self.metrics_view),
                name=f"{prefix}_metrics",
            ),
            path(
                "<path:object_id>/_running/",
                view(self.running_config_view),
                name=f"{prefix}_running",
            ),
            *super().get_urls(),
        ]

    # ---- columns -------------------------------------------------------------------

    @admin.display(description="type", ordering="device_type")
    def kind(self, device: Device) -> str:
        return device.device_type

    @admin.display(description="address", ordering="ip_address")
    def address(self, device: Device) -> str:
        if not device.ip_address:
            return EMPTY
        return format_html(
            '<span title="metrics port {}, reload port {}">{}</span>',
            device.port,
            device.reload_port,
            device.ip_address,
        )

    @admin.display(description="status", ordering="status_rank")
    def status(self, device: Device) -> str:
        return live_cell(device, "status")

    @admin.display(description="last seen", ordering=F("health__last_seen").asc(nulls_first=True))
    def last_seen(self, device: Device) -> str:
        return live_cell(device, "seen")

    @admin.display(description="failures", ordering="failures_rank")
    def failures(self, device: Device) -> str:
        return live_cell(device, "failures")

    @admin.display(description="reload pending", ordering="pending_rank")
    def reload_pending(self, device: Device) -> str:
        return live_cell(device, "pending")

    @admin.display(
        description="config in sync", ordering=F("health__config_in_sync").asc(nulls_first=True)
    )
    def config_in_sync(self, device: Device) -> str:
        return live_cell(device, "sync")

    @admin.display(description="observed IP", ordering="observed_rank")
    def observed_ip(self, device: Device) -> str:
        return selectors.device_health(device).observed_ip or EMPTY

    @admin.display(
        description="last checked", ordering=F("health__last_checked").asc(nulls_first=True)
    )
    def last_checked(self, device: Device) -> str:
        return short_time(selectors.device_health(device).last_checked)

    @admin.display(description="exporter says", ordering="health__exporter_status")
    def exporter_status(self, device: Device) -> str:
        return selectors.device_health(device).exporter_status or EMPTY

    @admin.display(description="labels")
    def label_list(self, device: Device) -> str:
        if not device.labels:
            return EMPTY
        return format_html_join(
            " ", '<span class="ems-label">{}={}</span>', sorted(device.labels.items())
        )

    @admin.display(description="updated", ordering="updated_at")
    def updated(self, device: Device) -> str:
        return short_time(device.updated_at)

    # ---- pages ---------------------------------------------------------------------

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> Any:
        shown = chosen_columns(request)
        context = {
            **(extra_context or {}),
            "columns": [(name, label, name in shown) for name, label in COLUMNS.items()],
            "refresh_seconds": settings.ADMIN_REFRESH_INTERVAL,
            "query_string": request.GET.urlencode(),
        }
        return super().changelist_view(request, context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> Any:
        context = {**(extra_context or {}), **console.device_page_context(self, request, object_id)}
        return super().change_view(request, object_id, form_url, context)

    live_view = console.live_view
    export_view = console.export_view
    columns_view = console.columns_view
    page_action_view = console.page_action_view
    running_config_view = console.running_config_view
    history_view = console.history_view
    metrics_view = toggles.metrics_view

    # ---- saving through the services ------------------------------------------------

    def save_model(self, request: HttpRequest, obj: Device, form: DeviceForm, change: bool) -> None:
        version = form.cleaned_data.get("version")
        labels = form.cleaned_data.get("labels") or {}
        # A post without the field (not the admin's own form) leaves the labels alone; the
        # form has already put the new labels on `obj`, so they are compared with the row.
        stored = Device.objects.filter(pk=obj.pk).values_list("labels", flat=True).first()
        relabelled = "labels" in form.data and labels != (stored or {})
        actor = actions.admin_actor(request)
        try:
            result = services.device_upsert(
                device_id=obj.pk,
                data=form.config_data,
                actor=actor,
                if_match=f'"{version}"' if change and version else None,
            )
            if relabelled:
                labelling.device_labels_set(device_id=obj.pk, labels=labels, actor=actor)
        except DeviceError as exc:
            # Shown on the change list; the form is not saved.
            messages.error(request, f"Not saved: {obj.pk}: {exc}")
            return
        if not result.changed and relabelled:
            messages.info(request, f"Labels of {obj.pk} saved; its config did not change.")
        elif not result.changed:
            messages.info(request, f"Nothing changed for {obj.pk}, no revision written.")
        elif result.reload_triggered:
            messages.info(request, "Saved: the device reloaded its config.")
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Device) -> None:
        services.device_delete(device_id=obj.pk, actor=actions.admin_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        for device_id in queryset.values_list("device_id", flat=True):
            try:
                services.device_delete(device_id=device_id, actor=actions.admin_actor(request))
            except DeviceError as exc:
                messages.warning(request, f"Not deleted: {device_id}: {exc}")
