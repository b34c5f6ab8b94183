"""The bodies the routes render by hand (for speed) carry exactly the fields their
serializer declares, which is what the OpenAPI schema shows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from devices import selectors
from devices.api import responses as r
from devices.models import Device, DeviceHealth
from devices.runtime import ReloadResult
from devices.selectors import scrape_targets
from tests.helpers import make_devices


def _declared(serializer: type) -> tuple[set[str], set[str]]:
    fields = serializer().fields
    required = {name for name, field in fields.items() if field.required}
    return set(fields), required


def _check(serializer: type, body: dict) -> None:
    declared, required = _declared(serializer)
    assert set(body) <= declared, f"{serializer.__name__} renders undeclared {set(body) - declared}"
    assert required <= set(body), f"{serializer.__name__} omits required {required - set(body)}"


@pytest.mark.django_db
def test_status_items_of_every_kind_of_device_are_declared():
    make_devices("d", 4, 9101)
    now = timezone.now()
    DeviceHealth.objects.filter(pk="d-0000").update(
        status="healthy", last_seen=now, exporter_status="degraded", config_in_sync=True
    )
    DeviceHealth.objects.filter(pk="d-0001").update(
        status="unreachable",
        error="timeout",
        last_seen=now - timedelta(hours=1),
        config_in_sync=False,
        drifted_keys=["metrics"],
    )
    Device.objects.filter(pk="d-0002").update(ip_address="")
    devices = list(Device.objects.select_related("health"))
    bodies = [r.DeviceStatusItemSerializer(device).data for device in devices]
    for body in bodies:
        _check(r.DeviceStatusItemSerializer, body)
    assert {"exporter_status", "last_seen"} <= set(bodies[0])
    assert {"error", "drifted_keys"} <= set(bodies[1])
    _check(r.DeviceListSerializer, r.DeviceListSerializer(devices).data)
    # The list renders plain rows exactly as it renders the models.
    rows = selectors.device_rows(selectors.device_list())
    assert r.DeviceListSerializer(rows).data == r.DeviceListSerializer(
        list(selectors.device_list())
    ).data


@pytest.mark.django_db
def test_config_items_reload_results_and_targets_are_declared():
    make_devices("d", 2, 9101)
    body = r.ConfigListSerializer(selectors.config_rows()).data
    _check(r.ConfigListSerializer, body)
    for item in body["configs"]:
        assert {"device_id", "device_type", "port", "reload_port"} <= set(item)
    results = [ReloadResult("a", "reloaded"), ReloadResult("b", "failed", "HTTP 500", 502)]
    bulk = r.BulkReloadSerializer(results).data
    _check(r.BulkReloadSerializer, bulk)
    for item in bulk["results"]:
        _check(r.ReloadResultSerializer, item)
    _check(r.ReloadFailureSerializer, r.ReloadFailureSerializer(results[1]).data)
    for group in r.TargetGroupSerializer(scrape_targets(), many=True).data:
        _check(r.TargetGroupSerializer, group)
