"""Tokens in the admin: issued once (only the digest is stored), listed, revoked."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from users import tokens
from users.choices import TokenKind
from users.models import ApiToken
from users.tokens import api_token_create, api_token_revoke


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["name", "kind", "device_id"]

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
    list_display = [
        "name",
        "kind",
        "device_id",
        "prefix",
        "created_by",
        "created_at",
        "last_used_at",
        "active",
    ]
    list_filter = ["kind", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "device_id", "prefix"]
    actions = ["revoke"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list:
        if obj is None:
            return []
        return [
            "name",
            "kind",
            "device_id",
            "prefix",
            "created_by",
            "created_at",
            "last_used_at",
            "revoked_at",
        ]

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
