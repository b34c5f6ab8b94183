"""Staged rollouts in process: what a start refuses (and that it changes nothing), the
plan it makes, the routes' answers, and the rollouts in /metrics. The waves themselves run
end to end in tests/test_rollouts_e2e.py."""

from __future__ import annotations

import pytest

from devices.models import Device, DeviceRevision, Profile, StagedDevice
from rollouts.models import Rollout
from rollouts.strategy import Strategy, rollout_order, wave_plan
from tests.helpers import JETSON, send

pytestmark = pytest.mark.django_db

GOOD = {"canary": 1, "waves": [50, 100], "wave_wait_seconds": 0, "confirm_timeout_seconds": 5}


@pytest.fixture
def profile(api, anon):
    for n in range(4):
        assert send(anon, "PUT", f"/config/edge-{n}", JETSON).status_code == 200
    body = {"selector": "", "config": {"interval": 30}}
    assert send(api, "PUT", "/profiles/lab", body).status_code == 201
    return "lab"


def _state() -> tuple:
    """Everything a refused start must leave as it was."""
    profile = Profile.objects.get(name="lab")
    return (
        Rollout.objects.count(),
        StagedDevice.objects.count(),
        DeviceRevision.objects.count(),
        (profile.version, profile.config, profile.staged_config, profile.staged_version),
        sorted(Device.objects.values_list("device_id", "version")),
    )


@pytest.mark.parametrize(
    ("body", "kind", "needle"),
    [
        ({}, "Missing required field", "config"),
        ({"config": []}, "validation_error", "config"),
        ({"config": {"device_type": "shelly"}}, "invalid_profile", "device_type"),
        ({"config": {"port": 0}}, "invalid_profile", "port"),
        ({"config": {"x": 1}, "strategy": []}, "invalid_strategy", "object"),
        ({"config": {"x": 1}, "strategy": {"canary": -1}}, "invalid_strategy", "canary"),
        ({"config": {"x": 1}, "strategy": {"canary": True}}, "invalid_strategy", "canary"),
        ({"config": {"x": 1}, "strategy": {"waves": [50, 10, 100]}}, "invalid_strategy", "waves"),
        ({"config": {"x": 1}, "strategy": {"waves": [10, 50]}}, "invalid_strategy", "waves"),
        ({"config": {"x": 1}, "strategy": {"waves": []}}, "invalid_strategy", "waves"),
        ({"config": {"x": 1}, "strategy": {"waves": [0, 100]}}, "invalid_strategy", "waves"),
        ({"config": {"x": 1}, "strategy": {"waves": "100"}}, "invalid_strategy", "waves"),
        (
            {"config": {"x": 1}, "strategy": {"wave_wait_seconds": 1.5}},
            "invalid_strategy",
            "wave_wait_seconds",
        ),
        (
            {"config": {"x": 1}, "strategy": {"confirm_timeout_seconds": 0}},
            "invalid_strategy",
            "confirm_timeout_seconds",
        ),
        (
            {"config": {"x": 1}, "strategy": {"max_failure_percent": 101}},
            "invalid_strategy",
            "max_failure_percent",
        ),
        ({"config": {"x": 1}, "strategy": {"speed": 1}}, "invalid_strategy", "speed"),
    ],
)
def test_a_bad_start_is_refused_and_changes_nothing(api, profile, body, kind, needle):
    before = _state()
    response = send(api, "POST", "/profiles/lab/rollouts", body)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == kind
    assert needle in response.json()["message"]
    assert _state() == before


def test_a_start_needs_a_profile_an_operator_and_no_other_rollout(api, anon, profile):
    missing = send(api, "POST", "/profiles/nope/rollouts", {"config": {"x": 1}})
    assert (missing.status_code, missing.json()["error"]) == (404, "Profile not found")
    unauthenticated = send(anon, "POST", "/profiles/lab/rollouts", {"config": {"x": 1}})
    assert unauthenticated.status_code == 401
    assert Rollout.objects.count() == 0

    first = send(api, "POST", "/profiles/lab/rollouts", {"config": {"x": 1}, "strategy": GOOD})
    assert first.status_code == 201, first.content
    before = (Rollout.objects.count(), StagedDevice.objects.count())
    second = send(api, "POST", "/profiles/lab/rollouts", {"config": {"x": 2}})
    assert (second.status_code, second.json()["error"]) == (409, "rollout_in_progress")
    assert f"rollout {first.json()['id']}" in second.json()["message"]
    # The profile changes only through its rollout meanwhile.
    put = send(api, "PUT", "/profiles/lab", {"config": {"x": 3}})
    assert (put.status_code, put.json()["error"]) == (409, "rollout_in_progress")
    assert (Rollout.objects.count(), StagedDevice.objects.count()) == before


def test_a_started_rollout_plans_its_waves_and_reaches_no_device_yet(api, profile):
    served = {d: send(api, "GET", f"/config/{d}").json() for d in ("edge-0", "edge-1")}
    response = send(
        api, "POST", "/profiles/lab/rollouts", {"config": {"interval": 5}, "strategy": GOOD}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["rollout_id"] == body["id"]
    assert (body["profile"], body["status"], body["from_version"], body["to_version"]) == (
        "lab", "running", 1, 2
    )  # fmt: skip
    assert body["strategy"] == {**GOOD, "max_failure_percent": 10.0}
    order = rollout_order([f"edge-{n}" for n in range(4)])
    assert [d["device_id"] for d in body["devices"]] == order
    assert {d["state"] for d in body["devices"]} == {"pending"}
    assert body["canary"]["devices"] == 1
    assert [(w["percent"], w["devices"]) for w in body["waves"]] == [(50, 2), (100, 1)]
    for device_id, config in served.items():
        assert send(api, "GET", f"/config/{device_id}").json() == config
    assert send(api, "GET", "/profiles/lab").json()["rollout_version"] == 2


def test_waves_are_cumulative_percentages_of_the_devices_after_the_canary():
    ids = [f"d{n}" for n in range(21)]
    strategy = Strategy(2, (10, 50, 100), 0, 1, 10)
    plan = wave_plan(ids, strategy)
    assert [len(wave) for wave in plan] == [2, 2, 8, 9]
    assert [d for wave in plan for d in wave] == rollout_order(ids)
    assert wave_plan(["a"], strategy) == [["a"], [], [], []]
    assert rollout_order(ids) == rollout_order(list(reversed(ids)))


def test_the_rollout_routes_answer_lists_filters_and_refusals(api, profile):
    started = send(api, "POST", "/profiles/lab/rollouts", {"config": {"x": 1}, "strategy": GOOD})
    rollout_id = started.json()["id"]
    listed = send(api, "GET", "/rollouts?status=running&profile=lab").json()
    assert (listed["total"], listed["rollouts"][0]["id"]) == (1, rollout_id)
    assert "devices" not in listed["rollouts"][0]
    assert send(api, "GET", "/rollouts?status=paused").json()["total"] == 0
    assert send(api, "GET", "/rollouts?profile=other").json()["total"] == 0
    bad = send(api, "GET", "/rollouts?status=bogus")
    assert (bad.status_code, bad.json()["error"]) == (400, "invalid_filter")
    for path in ("/rollouts/999", "/rollouts/abc", "/rollouts/99999999999999999999999"):
        missing = send(api, "GET", path)
        assert (missing.status_code, missing.json()["error"]) == (404, "Rollout not found")
    resume = send(api, "POST", f"/rollouts/{rollout_id}/resume")
    assert (resume.status_code, resume.json()["error"]) == (409, "invalid_rollout_transition")
    assert send(api, "POST", f"/rollouts/{rollout_id}/pause").json()["status"] == "paused"
    assert send(api, "GET", f"/rollouts/{rollout_id}").json()["status"] == "paused"
    aborted = send(api, "POST", f"/rollouts/{rollout_id}/abort").json()
    assert (aborted["status"], aborted["reason"]) == ("aborted", "aborted by token:tests")
    profile_after = send(api, "GET", "/profiles/lab").json()
    assert (profile_after["version"], profile_after["rollout_version"]) == (1, None)
    assert StagedDevice.objects.count() == 0
    # The profile is free again: a new rollout may start.
    again = send(api, "POST", "/profiles/lab/rollouts", {"config": {"x": 2}, "strategy": GOOD})
    assert again.status_code == 201, again.content
    assert (again.json()["from_version"], again.json()["to_version"]) == (1, 3)
    # The aborted version keeps its number, in the history as rolled back.
    history = send(api, "GET", "/profiles/lab/history").json()["revisions"]
    assert [(r["version"], r["action"]) for r in history] == [(2, "rolled_back"), (1, "created")]


@pytest.mark.parametrize("then", ["PUT", "DELETE"])
def test_after_an_aborted_rollout_the_profile_takes_a_version_of_its_own(api, profile, then):
    """The aborted version's number stays taken: the next write numbers past it (it took
    the same number and the history's uniqueness made it a 500)."""
    started = send(api, "POST", "/profiles/lab/rollouts", {"config": {"x": 1}, "strategy": GOOD})
    assert send(api, "POST", f"/rollouts/{started.json()['id']}/abort").status_code == 200
    body = {"selector": "", "config": {"interval": 60}} if then == "PUT" else None
    response = send(api, then, "/profiles/lab", body)
    assert response.status_code == 200, response.content
    if then == "PUT":
        assert response.json()["version"] == 3
    history = send(api, "GET", "/profiles/lab/history").json()["revisions"]
    assert [r["version"] for r in history] == [3, 2, 1]
    assert history[0]["action"] == ("updated" if then == "PUT" else "deleted")


def test_metrics_report_rollouts_by_status_and_devices_by_state(api, profile):
    body = {"config": {"x": 1}, "strategy": GOOD}
    rollout_id = send(api, "POST", "/profiles/lab/rollouts", body).json()["id"]
    text = send(api, "GET", "/metrics").content.decode()
    assert 'ems_rollouts{status="running"} 1.0' in text
    assert 'ems_rollouts{status="succeeded"} 0.0' in text
    labels = f'rollout_id="{rollout_id}",profile="lab"'
    assert f'ems_rollout_devices{{{labels},state="pending"}} 4.0' in text
    assert f'ems_rollout_devices{{{labels},state="confirmed"}} 0.0' in text
