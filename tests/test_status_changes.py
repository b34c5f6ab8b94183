"""Status changes are recorded with the observation that made them: the admin's status
timeline and its "changes that matter" read them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from devices import runtime, selectors
from devices.models import DeviceStatusChange
from tests.helpers import register
from tests.support.exporters import Reply

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_devices")]


def probe(device_id: str) -> None:
    runtime.devices_probe(devices=[selectors.device_get_with_health(device_id=device_id)])


def test_first_probe_and_each_change_are_recorded_once(api, exporters):
    exporter = exporters()
    register(api, "edge-01", exporter.port)
    probe("edge-01")
    probe("edge-01")  # still healthy: nothing new
    exporter.set("GET", "/health", Reply(503))
    probe("edge-01")
    timeline = [
        (c.previous, c.status, c.error) for c in selectors.status_changes(device_id="edge-01")
    ]
    assert timeline == [("healthy", "unhealthy", "HTTP 503"), ("unknown", "healthy", "")]
    since = timezone.now() - timedelta(hours=1)
    mattering = [(c.device_id, c.status) for c in selectors.changes_that_matter(since=since)]
    assert mattering == [("edge-01", "unhealthy")]
    down = DeviceStatusChange.objects.get(status="unhealthy").changed_at
    assert selectors.down_since(["edge-01"]) == {"edge-01": down}


def test_old_changes_are_dropped_when_new_ones_are_written(api, exporters):
    exporter = exporters()
    register(api, "edge-01", exporter.port)
    DeviceStatusChange.objects.create(
        device_id="gone",
        previous="healthy",
        status="unreachable",
        changed_at=timezone.now() - runtime.STATUS_CHANGE_RETENTION - timedelta(hours=1),
    )
    probe("edge-01")
    assert list(DeviceStatusChange.objects.values_list("device_id", flat=True)) == ["edge-01"]
