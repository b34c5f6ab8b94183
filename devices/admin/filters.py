"""Filters of the admin's device and revision lists."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Collection
from datetime import timedelta

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from devices import selectors
from devices.choices import DeviceStatus
from devices.labels import InvalidSelector, parse_selector
from devices.models import Device

# Result sets of the last bulk actions a user ran, kept in the session for the links of
# their summary messages.
RESULTS_KEY = "ems_device_results"
RESULTS_KEPT = 10


def remember_devices(request: HttpRequest, device_ids: Collection[str]) -> str:
    """Keep a set of device ids in the session; the token filters the list to them."""
    kept: dict[str, list[str]] = dict(request.session.get(RESULTS_KEY, {}))
    token = secrets.token_hex(6)
    kept[token] = sorted(device_ids)
    request.session[RESULTS_KEY] = dict(list(kept.items())[-RESULTS_KEPT:])
    return token


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


class ReloadPendingFilter(admin.SimpleListFilter):
    title = "reload pending"
    parameter_name = "reload_pending"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Device]) -> QuerySet[Device]:
        if self.value() == "yes":
            return queryset.filter(health__reload_pending=True)
        if self.value() == "no":
            return queryset.exclude(health__reload_pending=True)
        return queryset


class FailuresFilter(admin.SimpleListFilter):
    title = "consecutive failures"
    parameter_name = "failures"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("0", "None"), ("1-9", "1 to 9"), ("10+", "10 or more")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Device]) -> QuerySet[Device]:
        value = self.value()
        if value == "0":
            return queryset.filter(Q(health__isnull=True) | Q(health__consecutive_failures=0))
        if value == "1-9":
            return queryset.filter(health__consecutive_failures__range=(1, 9))
        if value == "10+":
            return queryset.filter(health__consecutive_failures__gte=10)
        return queryset


class StatusChangedFilter(admin.SimpleListFilter):
    """Devices whose status changed lately, first probes left out (the home page links
    here)."""

    title = "status changed"
    parameter_name = "changed"
    WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("1h", "In the last hour"), ("24h", "In the last 24 hours"), ("7d", "In 7 days")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Device]) -> QuerySet[Device]:
        window = self.WINDOWS.get(self.value() or "")
        if window is None:
            return queryset
        changed = selectors.changes_that_matter(since=timezone.now() - window)
        return queryset.filter(device_id__in=changed.values("device_id"))


class ResultFilter(admin.SimpleListFilter):
    """The devices of one bulk action's result (the link in its summary message)."""

    title = "action result"
    parameter_name = "result"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        value = self.value()
        return [(value, "Devices of that action")] if value else []

    def queryset(self, request: HttpRequest, queryset: QuerySet[Device]) -> QuerySet[Device]:
        if not self.value():
            return queryset
        ids = request.session.get(RESULTS_KEY, {}).get(self.value(), [])
        return queryset.filter(device_id__in=ids)


class DeviceIdFilter(admin.SimpleListFilter):
    """Lets the device page link to one device's history (`?device_id=`)."""

    title = "device"
    parameter_name = "device_id"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        value = self.value()
        return [(value, value)] if value else []

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(device_id=self.value()) if self.value() else queryset


class LabelFilter(admin.SimpleListFilter):
    """Devices by label: the fleet's most common `key=value` pairs as links, and any
    selector typed in the box above the list (`rack in (r1,r2),status!=healthy`)."""

    title = "label"
    parameter_name = "selector"
    # Pairs listed at most; the selector box reaches the others.
    SHOWN = 30

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        pairs: Counter[tuple[str, str]] = Counter()
        for labels in Device.objects.values_list("labels", flat=True).iterator(chunk_size=2000):
            pairs.update((labels or {}).items())
        common = sorted(pairs.most_common(self.SHOWN))
        found = [(f"{k}={v}", f"{k}={v} ({count})") for (k, v), count in common]
        value = self.value()
        if value and value not in {lookup for lookup, _ in found}:
            found.append((value, value))
        return found

    def queryset(self, request: HttpRequest, queryset: QuerySet[Device]) -> QuerySet[Device]:
        if not self.value():
            return queryset
        try:
            selector = parse_selector(self.value())
        except InvalidSelector as exc:
            messages.error(request, f"Not a label selector: {exc}")
            return queryset.none()
        rows = selectors.device_rows(queryset.order_by("device_id"), selector=selector)
        return queryset.filter(device_id__in=[row.device_id for row in rows])
