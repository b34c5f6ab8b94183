"""One device's plan (its objects' name, whether to publish them) without the fleet: the
same answer as the plan of the whole fleet."""

from __future__ import annotations

import pytest

from devices.models import Device
from k8sbridge.objects import service_name
from k8sbridge.selectors import device_plan, fleet_plans, plans_for
from tests.support.fleet import add_device

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("doc_networks")]


def arrange_fleet() -> list[str]:
    # The name Edge_01 gets is hashed; an id that lower-cases to that name, registered
    # first, holds it (the only way a hashed name is shared).
    holder = service_name("Edge_01").removeprefix("edge-device-").upper()
    for n, device_id in enumerate(
        [holder, "EDGE-01", "edge-01", "Edge_01", "edge.01", "sick", "no-ip", "other"]
    ):
        add_device(
            device_id,
            ip="" if device_id == "no-ip" else f"192.0.2.{n + 1}",
            status="unhealthy" if device_id == "sick" else "healthy",
        )
    return [holder, "EDGE-01", "edge-01", "Edge_01", "edge.01", "sick", "no-ip", "other"]


def test_a_devices_plan_is_its_plan_in_the_fleet():
    arrange_fleet()
    fleet = {plan.device_id: plan for plan in fleet_plans()}

    for device in Device.objects.all():
        assert device_plan(device) == fleet[device.device_id]

    assert fleet["edge-01"].failed and "EDGE-01" in fleet["edge-01"].problem
    assert fleet["Edge_01"].failed and not fleet["edge.01"].failed


def test_plans_of_a_few_devices_are_their_fleet_plans():
    ids = arrange_fleet()
    fleet = {plan.device_id: plan for plan in fleet_plans()}
    scope = ["edge-01", "Edge_01", "sick"]

    plans = {plan.device_id: plan for plan in plans_for(scope)}

    assert {i: plans[i] for i in scope} == {i: fleet[i] for i in scope}
    # Read with them: the devices that share their names, and nobody else.
    assert set(plans) == {*scope, "EDGE-01", ids[0]}


def test_a_scope_larger_than_a_query_should_name_reads_the_fleet(monkeypatch):
    arrange_fleet()
    monkeypatch.setattr("k8sbridge.selectors.SCOPE_QUERY_LIMIT", 2)
    assert plans_for(["edge-01", "sick", "other"]) == fleet_plans()
