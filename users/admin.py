"""Tokens in the admin: issued once (only the digest is stored), listed, revoked."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.html import format_html

from users import tokens
from users.choices import TokenKind
from users.models import ApiToken
from users.tokens import api_token_create, api_token_revoke


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["name", "kind", "device_id"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "kind" in self.fields:  # most tokens are operators'; a device token is asked for
            self.fields["kind"].initial = TokenKind.OPERATOR

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if tokens.active_token_named(name) is not None:
            raise forms.ValidationError(
                "An active token already has this name; revoke that one first or choose "
                "another name."
            )
        return name

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("kind") == TokenKind.DEVICE:
            problem = tokens.device_id_rule(cleaned.get("device_id") or "")
            if problem:
                self.add_error("device_id", f"A device token needs a valid device id: {problem}")
        return cleaned


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are shown once, when they are issued; only their digest is stored."""

    form = ApiTokenForm
    # What is known of an issued token; its page shows all of it, read-only.
    known = ["name", "kind", "device_id", "prefix", "created_by", "created_at", "last_used_at"]
    list_display = [*known, "active"]
    list_filter = ["kind", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "device_id", "prefix"]
    actions = ["revoke"]
    # An issued token cannot be edited, only revoked: its page has a Revoke button and no
    # Save buttons (users/templates/admin/users/apitoken/change_form.html).
    change_form_template = "admin/users/apitoken/change_form.html"

    def get_urls(self) -> list:
        own = [
            path(
                "<path:object_id>/revoke/",
                self.admin_site.admin_view(self.revoke_view),
                name="users_apitoken_revoke",
            )
        ]
        return own + super().get_urls()

    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        token = self.get_object(request, unquote(object_id))
        if token is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request, token):
            raise PermissionDenied
        api_token_revoke(token=token)
        self.log_change(request, token, "Revoked")
        messages.success(request, f"Revoked {token.name} ({token.prefix}…).")
        return redirect(reverse("admin:users_apitoken_change", args=[token.pk]))

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: ApiToken | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context.update(
                show_save=False,
                show_save_and_continue=False,
                show_save_and_add_another=False,
                can_revoke=obj.is_active and self.has_change_permission(request, obj),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list:
        if obj is None:
            return []
        return [*self.known, "revoked_at"]

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list:
        if obj is None:
            return ["name", "kind", "device_id"]
        return self.get_readonly_fields(request, obj)

    @admin.display(boolean=True, description="active")
    def active(self, token: ApiToken) -> bool:
        return token.is_active

    def save_model(
        self, request: HttpRequest, obj: ApiToken, form: forms.Form, change: bool
    ) -> None:
        if change:
            return
        token, raw = api_token_create(
            name=obj.name,
            kind=obj.kind,
            device_id=obj.device_id,
            created_by=f"admin:{request.user.get_username()}",
        )
        obj.pk = token.pk
        messages.warning(
            request,
            format_html("Token issued. Copy it now, it is not shown again: <code>{}</code>", raw),
        )

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset:
            api_token_revoke(token=token)
        messages.success(request, f"Revoked {queryset.count()} token(s).")
