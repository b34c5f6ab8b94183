"""Query filters of the device list (`GET /devices?status=...&device_type=...&q=...`)."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from devices.choices import DeviceStatus
from devices.models import Device


class DeviceFilterSet(django_filters.FilterSet):
    device_type = django_filters.CharFilter(field_name="device_type")
    status = django_filters.ChoiceFilter(choices=DeviceStatus.choices, method="filter_status")
    q = django_filters.CharFilter(method="filter_search", label="Device id or IP contains")

    class Meta:
        model = Device
        fields = ["device_type", "status", "q"]

    # A filter that is given must say something: `?status=` is a mistake, not "any status".
    REQUIRED_WHEN_GIVEN = ("device_type", "status")

    def is_valid(self) -> bool:
        valid = super().is_valid()
        for name in self.REQUIRED_WHEN_GIVEN:
            if name in self.data and not self.data[name]:
                self.errors[name] = ["must not be empty"]
                valid = False
        return valid

    def filter_status(self, queryset: QuerySet[Device], name: str, value: str) -> QuerySet:
        # A device without an address is unknown whatever was last observed.
        if value == DeviceStatus.UNKNOWN:
            return queryset.filter(
                Q(ip_address="") | Q(health__isnull=True) | Q(health__status=value)
            )
        return queryset.exclude(ip_address="").filter(health__status=value)

    def filter_search(self, queryset: QuerySet[Device], name: str, value: str) -> QuerySet:
        return queryset.filter(Q(device_id__icontains=value) | Q(ip_address__icontains=value))
