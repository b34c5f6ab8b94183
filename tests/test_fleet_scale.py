"""A large fleet on one leader: probe rounds that store observations in batches, and the
fleet views paged for clients that ask (`?limit=&cursor=`), conditional for Prometheus."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from devices import runtime, selectors
from devices.models import DeviceHealth
from tests.helpers import make_devices
from tests.support.exporters import Reply

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_devices")]


def health_updates(queries: CaptureQueriesContext) -> list[str]:
    table = DeviceHealth._meta.db_table
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith(("UPDATE", "WITH")) and table in q["sql"]
    ]


def test_a_round_stores_its_observations_in_one_statement_per_batch(exporters, monkeypatch):
    monkeypatch.setattr(runtime, "_STORE_BATCH", 100)
    alive, silent = exporters(), exporters()
    silent.set("GET", "/health", Reply(hang=True))
    make_devices("alive", 250, alive.port)
    make_devices("silent", 50, silent.port)
    with CaptureQueriesContext(connection) as queries:
        runtime.devices_probe(devices=list(selectors.device_list()))
    # Two groups (the healthy ones, the silent ones) of 250 and 50 devices: 3 + 1 batches.
    assert len(health_updates(queries)) == 4
    statuses = dict(DeviceHealth.objects.values_list("device_id", "status"))
    assert {statuses[f"alive-{i:04d}"] for i in range(250)} == {"healthy"}
    assert {statuses[f"silent-{i:04d}"] for i in range(50)} == {"unreachable"}
    errors = set(DeviceHealth.objects.filter(status="unreachable").values_list("error", flat=True))
    assert errors == {"No answer within 0.5 s"}

    # The next round changes less (the time of the probe, the failure count): still one
    # statement per batch of each group.
    with CaptureQueriesContext(connection) as queries:
        runtime.devices_probe(devices=list(selectors.device_list()))
    assert len(health_updates(queries)) == 4
    silent_health = DeviceHealth.objects.get(device_id="silent-0000")
    assert silent_health.consecutive_failures == 2


def test_a_reload_left_pending_while_a_round_ran_is_kept(exporters):
    exporter = exporters()
    make_devices("edge", 3, exporter.port)
    devices = list(selectors.device_list())
    # A config write marks a reload pending after the round loaded its devices.
    DeviceHealth.objects.filter(device_id="edge-0001").update(reload_pending=True)
    runtime.devices_probe(devices=devices)
    assert DeviceHealth.objects.get(device_id="edge-0001").reload_pending is True
    assert DeviceHealth.objects.get(device_id="edge-0001").status == "healthy"
