"""Admin pages that save through the services: the admin wraps a save or a delete in a
transaction of its own, but the service's must be the outermost one, so that the devices
it reloads after commit fetch the committed config."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.options import csrf_protect_m
from django.http import HttpRequest, HttpResponse


class SavedThroughServices:
    """Mixed in before `admin.ModelAdmin`: its add, change and delete pages without the
    admin's own transaction."""

    @csrf_protect_m
    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        return self._changeform_view(request, object_id, form_url, extra_context)

    @csrf_protect_m
    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return self._delete_view(request, object_id, extra_context)
