"""Rollouts in the admin: the list by status, and a rollout's page with its waves, each
device's state and the pause / resume / abort buttons (POST with CSRF; they call the
services the API calls and need the right to change rollouts)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from devices.admin.actions import admin_actor
from devices.admin.display import relative_time
from rollouts import services
from rollouts.exceptions import RolloutError
from rollouts.models import Rollout
from rollouts.selectors import rollout_progress

ACTIONS = {
    "pause": services.rollout_pause,
    "resume": services.rollout_resume,
    "abort": services.rollout_abort,
}
# Which buttons each status shows.
BUTTONS = {"running": ["pause", "abort"], "paused": ["resume", "abort"]}


@admin.register(Rollout)
class RolloutAdmin(admin.ModelAdmin):
    list_display = ("id", "profile_name", "versions", "badge", "progress", "started", "reason")
    list_display_links = ("id", "profile_name")
    list_filter = ("status", "profile_name")
    search_fields = ("profile_name",)
    change_form_template = "admin/rollouts/rollout/change_form.html"
    readonly_fields = [
        "profile_name", "from_version", "to_version", "status", "reason", "config",
        "strategy", "actor", "created_at", "updated_at", "finished_at",
    ]  # fmt: skip
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a rollout starts through POST /profiles/{name}/rollouts

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # its fields change only through its own steps

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def may_act(self, request: HttpRequest) -> bool:
        return request.user.has_perm("rollouts.change_rollout")

    @admin.display(description="versions")
    def versions(self, rollout: Rollout) -> str:
        return f"v{rollout.from_version} → v{rollout.to_version}"

    @admin.display(description="status", ordering="status")
    def badge(self, rollout: Rollout) -> str:
        return format_html(
            '<span class="ems-badge ems-rollout-{}">{}</span>',
            rollout.status,
            rollout.get_status_display(),
        )

    @admin.display(description="devices")
    def progress(self, rollout: Rollout) -> str:
        progress = rollout_progress(rollout)
        total = sum(w.devices for w in progress.waves)
        confirmed = progress.counts("confirmed")
        return f"{confirmed}/{total} confirmed · {progress.failed} failed"

    @admin.display(description="started", ordering="created_at")
    def started(self, rollout: Rollout) -> str:
        return relative_time(rollout.created_at)

    def get_urls(self) -> list:
        act = self.admin_site.admin_view(require_POST(self.act_view))
        return [
            path("<int:rollout_id>/_act/<str:action>/", act, name="rollouts_rollout_act"),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None
    ) -> HttpResponse:
        rollout = self.get_object(request, object_id)
        extra: dict[str, Any] = dict(extra_context or {})
        if rollout is not None:
            progress = rollout_progress(rollout)
            extra.update(
                rollout=rollout,
                waves=progress.waves,
                rollout_devices=list(rollout.devices.order_by("position")),
                buttons=BUTTONS.get(rollout.status, []) if self.may_act(request) else [],
            )
        return super().change_view(request, object_id, form_url, extra)

    def act_view(self, request: HttpRequest, rollout_id: int, action: str) -> HttpResponse:
        if action not in ACTIONS or not self.may_act(request):
            raise PermissionDenied
        try:
            rollout = ACTIONS[action](rollout_id=rollout_id, actor=admin_actor(request))
            text = f"Rollout {rollout.pk} is {rollout.status}"
            self.message_user(request, text, messages.SUCCESS)
        except RolloutError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        return HttpResponseRedirect(reverse("admin:rollouts_rollout_change", args=[rollout_id]))
