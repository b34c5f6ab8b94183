"""Profiles in the console: the devices each one matches, its metrics as checkboxes from
the fleet's catalogue, and the served-config changes a save would cause, shown before
saving. Saves and deletes go through devices.profiles, as the API's do."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from devices import profiles
from devices.admin.actions import admin_actor
from devices.admin.forms import PrettyJSONEncoder
from devices.admin.saving import SavedThroughServices
from devices.catalogue import metric_catalogue
from devices.exceptions import InvalidProfile, ProfileError
from devices.layering import profile_preview
from devices.models import Profile, ProfileRevision

# Shown at most on a profile's page; the API lists them all.
MATCHES_SHOWN = 50
PREVIEW_DEVICES_SHOWN = 100


def metric_names() -> list[str]:
    """Every metric name a device has reported, for the checkboxes."""
    return [m["name"] for m in metric_catalogue()["metrics"]]


class ProfileForm(forms.ModelForm):
    """Validates as `PUT /profiles/{name}` does. Each metric of the catalogue is two
    checkboxes: whether this profile sets it, and to what (writing the `metrics` dict)."""

    config = forms.JSONField(
        required=False,
        encoder=PrettyJSONEncoder,
        initial=dict,
        help_text='JSON object of config keys, e.g. {"interval": 5}; the checkboxes below '
        "write its metrics",
    )

    class Meta:
        model = Profile
        fields = ["name", "selector", "priority", "config"]
        help_texts = {
            "selector": "Kubernetes label selector over labels and device_type, e.g. "
            "site=lab-3,device_type in (jetson_orin,jetson_nano); empty: every device",
            "priority": "Where two profiles set one key, the higher priority wins",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["selector"].required = False
        self.fields["selector"].strip = False
        current = (self.instance.config or {}).get("metrics") or {}
        self.metrics = sorted(set(metric_names()) | set(current))
        for index, name in enumerate(self.metrics):
            self.fields[f"metric_set_{index}"] = forms.BooleanField(
                required=False, initial=name in current, label=f"set {name}"
            )
            self.fields[f"metric_on_{index}"] = forms.BooleanField(
                required=False, initial=bool(current.get(name)), label=f"{name} enabled"
            )

    def metric_rows(self) -> list[tuple[str, Any, Any]]:
        return [
            (name, self[f"metric_set_{i}"], self[f"metric_on_{i}"])
            for i, name in enumerate(self.metrics)
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        config = cleaned.get("config") or {}
        if not isinstance(config, dict):
            self.add_error("config", "Must be a JSON object")
            return cleaned
        metrics = {
            name: bool(cleaned.get(f"metric_on_{i}"))
            for i, name in enumerate(self.metrics)
            if cleaned.get(f"metric_set_{i}")
        }
        config = {k: v for k, v in config.items() if k != "metrics"}
        if metrics:
            config["metrics"] = metrics
        cleaned["config"] = config
        name = cleaned.get("name") or self.instance.pk or ""
        try:
            profiles.profile_check(
                name=name,
                selector=cleaned.get("selector") or "",
                priority=cleaned.get("priority") or 0,
                config=config,
            )
        except InvalidProfile as exc:
            self.add_error(None, exc.message)
        if self.instance.pk and self.instance.staged_config is not None:
            self.add_error(None, "A rollout of this profile is running: it changes through it.")
        return cleaned


@admin.register(Profile)
class ProfileAdmin(SavedThroughServices, admin.ModelAdmin):
    form = ProfileForm
    change_form_template = "admin/devices/profile/change_form.html"
    list_display = ["name", "selector", "priority", "version", "matches", "rolling_out"]
    search_fields = ["name", "selector"]

    def get_readonly_fields(self, request: HttpRequest, obj: Profile | None = None) -> list[str]:
        return ["name", "version"] if obj else []

    def get_fields(self, request: HttpRequest, obj: Profile | None = None) -> list[str]:
        return ["name", "selector", "priority", "config", *(["version"] if obj else [])]

    def get_urls(self) -> list:
        view = self.admin_site.admin_view
        return [
            path("_preview/", view(self.preview_view), name="devices_profile_preview"),
            *super().get_urls(),
        ]

    @admin.display(description="devices matched")
    def matches(self, profile: Profile) -> int:
        return len(profiles.matched_devices(profile))

    @admin.display(description="rollout", boolean=True)
    def rolling_out(self, profile: Profile) -> bool:
        return profile.staged_config is not None

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra = dict(extra_context or {})
        profile = Profile.objects.filter(pk=object_id).first() if object_id else None
        if profile is not None:
            matched = profiles.matched_devices(profile)
            extra.update(
                matched=matched[:MATCHES_SHOWN],
                matched_total=len(matched),
                revisions=ProfileRevision.objects.filter(profile_name=profile.pk)[:10],
            )
        return super().changeform_view(request, object_id, form_url, extra)

    def preview_view(self, request: HttpRequest) -> HttpResponse:
        """The served-config changes the form's values would cause (htmx, before saving)."""
        name = request.POST.get("name") or request.POST.get("_original") or ""
        instance = Profile.objects.filter(pk=name).first() or Profile(name=name)
        form = ProfileForm(request.POST, instance=instance)
        context: dict[str, Any] = {"form": form}
        if form.is_valid():
            candidate = Profile(
                name=instance.pk or form.cleaned_data["name"],
                selector=form.cleaned_data.get("selector") or "",
                priority=form.cleaned_data.get("priority") or 0,
                config=form.cleaned_data["config"],
                version=instance.version + 1 if instance.pk else 1,
            )
            changes = profile_preview(candidate)
            context.update(
                changes=list(changes.items())[:PREVIEW_DEVICES_SHOWN],
                changed_total=len(changes),
                matched_total=len(profiles.matched_devices(candidate)),
            )
        return TemplateResponse(request, "admin/devices/profile/preview.html", context)

    def save_model(self, request: HttpRequest, obj: Profile, form: ProfileForm, change: bool):
        try:
            result = profiles.profile_put(
                name=obj.pk,
                selector=form.cleaned_data.get("selector") or "",
                priority=form.cleaned_data.get("priority") or 0,
                config=form.cleaned_data["config"],
                actor=admin_actor(request),
            )
        except ProfileError as exc:
            messages.error(request, f"Not saved: {obj.pk}: {exc}")
            return
        changed = len(result.devices_changed)
        messages.info(request, f"{obj.pk}: {changed} device configs changed (and reloaded).")
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Profile) -> None:
        profiles.profile_delete(name=obj.pk, actor=admin_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Profile]) -> None:
        for name in queryset.values_list("name", flat=True):
            try:
                profiles.profile_delete(name=name, actor=admin_actor(request))
            except ProfileError as exc:
                messages.warning(request, f"Not deleted: {name}: {exc}")
