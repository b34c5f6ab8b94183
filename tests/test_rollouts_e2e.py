"""Staged rollouts end to end: gunicorn (whose monitor drives rollouts) and exporters that
re-fetch their config from it after a reload, as the real one does."""

from __future__ import annotations

import itertools
from datetime import datetime

import pytest

from rollouts.strategy import rollout_order
from tests.support.gunicorn import run_server
from tests.support.rollout_fleet import FAST_MONITOR, Fleet, wait_until

pytestmark = pytest.mark.e2e

OLD = {"metrics": {"gpu_power": True}}
NEW = {"metrics": {"gpu_power": True, "cpu_temp": True}, "interval": 5}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def fleet(tmp_path):
    with run_server(tmp_path, env=FAST_MONITOR) as server:
        group = Fleet(server)
        try:
            yield group
        finally:
            group.close()


def _fleet_of(fleet: Fleet, count: int, **kwargs) -> list[str]:
    ids = [f"edge-{n:02d}" for n in range(count)]
    for device_id in ids:
        fleet.add(device_id, **kwargs)
    fleet.wait_status("healthy")
    fleet.put_profile("lab", OLD)
    wait_until(
        lambda: all(e.running_config.get("metrics") == {"gpu_power": True}
                    for e in fleet.exporters.values()),
        message="every exporter runs the profile's first version",
    )  # fmt: skip
    return rollout_order(ids)


def test_a_change_the_devices_apply_is_confirmed_wave_by_wave(fleet):
    order = _fleet_of(fleet, 5)
    started = fleet.start_rollout(
        "lab", NEW, canary=1, waves=[50, 100], wave_wait_seconds=1, confirm_timeout_seconds=15
    )
    assert started["status"] == "running"
    assert [d["device_id"] for d in started["devices"]] == order
    assert [d["wave"] for d in started["devices"]] == [0, 1, 1, 2, 2]
    rollout_id = started["rollout_id"]

    # Whenever the rollout says a device is pending, it was served the previous version.
    seen_pending = set()
    while True:
        served = {device_id: fleet.served(device_id) for device_id in order}
        body = fleet.rollout(rollout_id)
        for device in body["devices"]:
            if device["state"] == "pending":
                seen_pending.add(device["device_id"])
                assert "interval" not in served[device["device_id"]]
        if body["status"] != "running":
            break
    assert body["status"] == "succeeded", body
    assert set(order[3:]) <= seen_pending  # the last wave waited its turn
    assert set(fleet.states(body).values()) == {"confirmed"}
    stages = [body["canary"], *body["waves"]]
    assert [(w["devices"], w["confirmed"], w["failed"]) for w in stages] == [
        (1, 1, 0), (2, 2, 0), (2, 2, 0)
    ]  # fmt: skip
    for before, after in itertools.pairwise(stages):
        assert at(after["started_at"]) >= at(before["completed_at"])
        gap = (at(after["started_at"]) - at(before["completed_at"])).total_seconds()
        assert gap >= 1, stages
    for device_id, exporter in fleet.exporters.items():
        assert exporter.running_config["interval"] == 5
        assert exporter.running_config["metrics"] == {"gpu_power": True, "cpu_temp": True}
        assert len(fleet.rollout_notes(device_id)) == 1, fleet.history(device_id)
    profile = fleet.server.request("GET", "/profiles/lab").json()
    assert (profile["version"], profile["config"], profile["rollout_version"]) == (
        body["to_version"], NEW, None
    )  # fmt: skip
