"""Revisions in the admin: read-only, each with its diff, and rollback."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from devices import selectors, services
from devices.admin.actions import admin_actor
from devices.admin.display import pretty, revision_diff
from devices.admin.filters import DeviceIdFilter
from devices.admin.outcomes import Outcome, summarise
from devices.exceptions import DeviceError
from devices.models import DeviceRevision


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

    def has_rollback_permission(self, request: HttpRequest) -> bool:
        """A rollback is a config write: it needs the right to change devices."""
        return request.user.has_perm("devices.change_device")

    @admin.display(description="config")
    def config_json(self, revision: DeviceRevision) -> str:
        return format_html("<pre>{}</pre>", pretty(revision.config))

    @admin.display(description="changes from the previous revision")
    def changes(self, revision: DeviceRevision) -> str:
        previous = selectors.revision_before(revision)
        if previous is None:
            return "first revision"
        return revision_diff(
            previous.config, revision.config, f"v{previous.version}", f"v{revision.version}"
        )

    @admin.action(
        description="Roll back each selected device to this revision", permissions=["rollback"]
    )
    def roll_back(self, request: HttpRequest, queryset: QuerySet[DeviceRevision]) -> None:
        chosen: dict[str, DeviceRevision] = {}
        for revision in queryset.order_by("-version"):
            chosen.setdefault(revision.device_id, revision)
        outcomes = []
        for device_id, revision in sorted(chosen.items()):
            try:
                result = services.device_rollback(
                    device_id=device_id, version=revision.version, actor=admin_actor(request)
                )
            except DeviceError as exc:
                outcomes.append(Outcome(device_id, "failed", str(exc), ok=False))
                continue
            word = f"v{revision.version} restored" if result.changed else "already at that config"
            outcomes.append(Outcome(device_id, word, f"now v{result.device.version}"))
        summarise(self, request, "Rollback", outcomes)
