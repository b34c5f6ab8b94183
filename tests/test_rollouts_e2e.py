"""Staged rollouts end to end: gunicorn (whose monitor drives rollouts) and exporters that
re-fetch their config from it after a reload, as the real one does."""

from __future__ import annotations

import itertools
import time
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
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
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


def kills(config: dict) -> bool:
    """A config the exporter cannot run: it exits after loading it."""
    return config.get("interval") == 0


def test_a_change_that_kills_devices_stops_at_the_canary_and_is_rolled_back(fleet):
    order = _fleet_of(fleet, 4, dies_on=kills)
    before = {device_id: fleet.history(device_id) for device_id in order}
    started = fleet.start_rollout(
        "lab", {"interval": 0}, canary=1, waves=[100], wave_wait_seconds=0,
        confirm_timeout_seconds=3, max_failure_percent=10,
    )  # fmt: skip
    body = fleet.wait_rollout(started["id"], lambda b: b["status"] != "running", what="ended")
    assert body["status"] == "rolled_back", body
    assert "1 of 1 devices failed" in body["reason"]
    canary, *rest = order
    device = body["devices"][0]
    assert (device["device_id"], device["state"]) == (canary, "rolled_back")
    assert "not confirmed within 3 s: unreachable" in device["error"]
    assert fleet.exporters[canary].dead
    assert [d["state"] for d in body["devices"][1:]] == ["pending"] * 3
    # The rest of the fleet never received it: not served, not fetched, no revision.
    for device_id in rest:
        assert "interval" not in fleet.served(device_id)
        assert fleet.history(device_id) == before[device_id]
        assert not any(kills(c) for c in fleet.exporters[device_id].fetched)
        assert not fleet.exporters[device_id].dead
    # The canary is served the previous version again, by a revision of its own.
    assert "interval" not in fleet.served(canary)
    notes = [r["note"] for r in fleet.history(canary)[:2]]
    assert notes == ["profile lab v1 (rollback)", f"profile lab v{body['to_version']} (rollout)"]
    profile = fleet.server.request("GET", "/profiles/lab").json()
    assert (profile["version"], profile["config"], profile["rollout_version"]) == (1, OLD, None)


def test_devices_that_never_apply_fail_by_the_confirm_timeout(fleet):
    order = _fleet_of(fleet, 4)
    stubborn = order[-1]
    fleet.exporters[stubborn].applies = False
    started = fleet.start_rollout(
        "lab", NEW, canary=1, waves=[100], wave_wait_seconds=0,
        confirm_timeout_seconds=3, max_failure_percent=50,
    )  # fmt: skip
    body = fleet.wait_rollout(started["id"], lambda b: b["status"] != "running", what="ended")
    # One failure of four attempted is within 50 %: the rollout goes on and succeeds.
    assert body["status"] == "succeeded", body
    states = fleet.states(body)
    assert states.pop(stubborn) == "failed"
    assert set(states.values()) == {"confirmed"}
    device = next(d for d in body["devices"] if d["device_id"] == stubborn)
    assert device["error"].startswith("not confirmed within 3 s: running config differs at")
    assert (at(device["settled_at"]) - at(device["applied_at"])).total_seconds() >= 3
    assert (body["waves"][0]["confirmed"], body["waves"][0]["failed"]) == (2, 1)
    # It fetched the new version (it answered the reload) but kept running the old one.
    assert any(c.get("interval") == 5 for c in fleet.exporters[stubborn].fetched)
    assert "interval" not in fleet.exporters[stubborn].running_config


def test_pause_holds_the_next_wave_resume_goes_on_abort_rolls_back(fleet):
    order = _fleet_of(fleet, 4)
    started = fleet.start_rollout(
        "lab", NEW, canary=1, waves=[50, 100], wave_wait_seconds=1, confirm_timeout_seconds=15
    )
    rollout_id = started["id"]
    fleet.wait_rollout(rollout_id, lambda b: b["canary"]["confirmed"] == 1, what="canary")
    paused = fleet.act(rollout_id, "pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "paused"
    refused = fleet.act(rollout_id, "pause")
    assert (refused.status_code, refused.json()["error"]) == (409, "invalid_rollout_transition")
    # Three times the wave wait, and the next wave has not started.
    wait_until(lambda: fleet.rollout(rollout_id)["canary"]["completed_at"], message="canary")
    deadline_body = None
    for _ in range(30):
        deadline_body = fleet.rollout(rollout_id)
        assert deadline_body["waves"][0]["started_at"] is None, deadline_body
        time.sleep(0.1)
    assert [fleet.states(deadline_body)[d] for d in order[1:]] == ["pending"] * 3

    assert fleet.act(rollout_id, "resume").json()["status"] == "running"
    fleet.wait_rollout(rollout_id, lambda b: b["waves"][0]["confirmed"] == 2, what="wave 1")
    aborted = fleet.act(rollout_id, "abort")
    assert aborted.status_code == 200, aborted.text
    body = aborted.json()
    if body["status"] == "succeeded":  # pragma: no cover - a loaded machine's last wave won
        pytest.skip("the last wave completed before the abort arrived")
    assert body["status"] == "aborted"
    reached = [d["device_id"] for d in body["devices"] if d["state"] == "rolled_back"]
    assert set(order[:3]) <= set(reached)
    for device_id in order:
        assert "interval" not in fleet.served(device_id)
    for device_id in order[:3]:
        assert fleet.history(device_id)[0]["note"] == "profile lab v1 (rollback)"
    wait_until(
        lambda: all("interval" not in e.running_config for e in fleet.exporters.values()),
        message="every exporter runs the previous version again",
    )
    for action in ("pause", "resume", "abort"):
        refused = fleet.act(rollout_id, action)
        assert (refused.status_code, refused.json()["error"]) == (409, "invalid_rollout_transition")
    assert fleet.rollout(rollout_id)["status"] == "aborted"


def test_an_offline_device_gets_the_version_when_it_comes_back_and_is_not_failed(fleet):
    order = _fleet_of(fleet, 3)
    offline = order[0]  # the canary
    fleet.exporters[offline].die()
    fleet.wait_status("unreachable", offline)
    started = fleet.start_rollout(
        "lab", NEW, canary=1, waves=[100], wave_wait_seconds=20, confirm_timeout_seconds=10
    )
    rollout_id = started["id"]
    body = fleet.wait_rollout(rollout_id, lambda b: b["canary"]["completed_at"], what="canary")
    assert fleet.act(rollout_id, "pause").status_code == 200
    device = body["devices"][0]
    assert (device["device_id"], device["state"], device["offline"]) == (offline, "applied", True)
    assert device["error"] == "offline: confirms when it answers"
    # Offline does not hold the canary up, and counts as no failure.
    assert body["canary"]["failed"] == 0
    assert fleet.served(offline)["interval"] == 5

    fleet.revive(offline)
    body = fleet.wait_rollout(
        rollout_id, lambda b: b["devices"][0]["state"] == "confirmed", what="back and confirmed"
    )
    assert body["waves"][0]["started_at"] is None
    assert fleet.exporters[offline].running_config["interval"] == 5
    assert fleet.act(rollout_id, "resume").status_code == 200
    body = fleet.wait_rollout(rollout_id, lambda b: b["status"] != "running", 90, "ended")
    assert body["status"] == "succeeded", body
    assert set(fleet.states(body).values()) == {"confirmed"}
    assert sum(w["failed"] for w in [body["canary"], *body["waves"]]) == 0
