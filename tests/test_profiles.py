"""Profiles: config keys for the devices a selector matches, layered between what the
device reports and what an operator set for it."""

from __future__ import annotations

import pytest
from django.conf import settings

from devices.models import Device, DeviceRevision
from tests.helpers import JETSON, send

pytestmark = pytest.mark.django_db

EXPORTER_PUT = {
    "device_type": "jetson_orin",
    "metrics": {"gpu_power": False, "cpu_temp": False},
    "port": 9102,
    "reload_port": 9101,
    "shelly": {"enabled": True, "server_url": "http://shelly.local"},
}


def label(api, device_id: str, **labels: str) -> None:
    device = Device.objects.get(device_id=device_id)
    device.labels = labels
    device.save(update_fields=["labels"])


def put_profile(api, name: str, config: dict, selector: str = "", priority: int = 0):
    body = {"selector": selector, "priority": priority, "config": config}
    return send(api, "PUT", f"/profiles/{name}", body)


def served(anon, device_id: str) -> dict:
    response = send(anon, "GET", f"/config/{device_id}")
    assert response.status_code == 200, response.content
    return response.json()


def test_a_profile_reaches_every_matching_device_and_no_other(api, anon):
    for device_id in ("lab-a", "lab-b", "home-c"):
        assert send(anon, "PUT", f"/config/{device_id}", EXPORTER_PUT).status_code == 200
    label(api, "lab-a", site="lab")
    label(api, "lab-b", site="lab")
    response = put_profile(api, "gpu-on", {"metrics": {"gpu_power": True}}, "site=lab")
    assert response.status_code == 201, response.content
    assert sorted(response.json()["devices_changed"]) == ["lab-a", "lab-b"]
    assert served(anon, "lab-a")["metrics"] == {"gpu_power": True, "cpu_temp": False}
    assert served(anon, "home-c")["metrics"] == {"gpu_power": False, "cpu_temp": False}
    revision = DeviceRevision.objects.filter(device_id="lab-a").order_by("-version").first()
    assert (revision.action, revision.note) == ("profile", "profile gpu-on v1")


def test_the_exporters_echo_never_pins_a_profile_key(api, anon):
    send(anon, "PUT", "/config/edge-1", EXPORTER_PUT)
    put_profile(api, "gpu-on", {"metrics": {"gpu_power": True}, "interval": 5})
    echo = served(anon, "edge-1")
    assert send(anon, "PUT", "/config/edge-1", echo).status_code == 200
    put_profile(api, "gpu-on", {"metrics": {"gpu_power": False}, "interval": 7})
    assert served(anon, "edge-1")["metrics"]["gpu_power"] is False
    assert served(anon, "edge-1")["interval"] == 7
    # Gone, the profile leaves what the device itself reported, not its own echo.
    assert send(api, "DELETE", "/profiles/gpu-on").status_code == 200
    assert "interval" not in served(anon, "edge-1")
    assert served(anon, "edge-1")["metrics"]["gpu_power"] is False


def test_a_profile_key_survives_the_device_reporting_another_value(api, anon):
    send(anon, "PUT", "/config/edge-1", EXPORTER_PUT)
    put_profile(api, "gpu-on", {"metrics": {"gpu_power": True}})
    body = {**EXPORTER_PUT, "metrics": {"gpu_power": False, "cpu_temp": False, "new_one": False}}
    assert send(anon, "PUT", "/config/edge-1", body).status_code == 200
    metrics = served(anon, "edge-1")["metrics"]
    assert metrics == {"gpu_power": True, "cpu_temp": False, "new_one": False}


def test_an_operators_value_for_the_device_wins_over_profiles(api, anon):
    send(anon, "PUT", "/config/edge-1", EXPORTER_PUT)
    put_profile(api, "slow", {"interval": 60}, priority=100)
    response = send(api, "PATCH", "/config/edge-1", {"interval": 5})
    assert response.status_code == 200, response.content
    assert served(anon, "edge-1")["interval"] == 5
    put_profile(api, "slow", {"interval": 90}, priority=100)
    assert served(anon, "edge-1")["interval"] == 5
    # The device echoing it keeps it the operator's.
    send(anon, "PUT", "/config/edge-1", served(anon, "edge-1"))
    put_profile(api, "slow", {"interval": 120}, priority=100)
    assert served(anon, "edge-1")["interval"] == 5


def test_higher_priority_wins_and_dicts_merge_key_by_key(api, anon):
    send(anon, "PUT", "/config/edge-1", EXPORTER_PUT)
    put_profile(api, "base", {"metrics": {"cpu_temp": True}, "interval": 30}, priority=1)
    put_profile(api, "fast", {"metrics": {"gpu_power": True}, "interval": 5}, priority=10)
    config = served(anon, "edge-1")
    assert config["interval"] == 5
    assert config["metrics"] == {"gpu_power": True, "cpu_temp": True}


def test_explain_says_which_layer_set_each_key(api, anon):
    send(anon, "PUT", "/config/edge-1", EXPORTER_PUT)
    put_profile(api, "fast", {"interval": 5, "metrics": {"gpu_power": True}}, priority=10)
    send(api, "PATCH", "/config/edge-1", {"port": 9200})
    response = send(api, "GET", "/config/edge-1?explain=true")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["config"] == served(anon, "edge-1")
    keys = body["keys"]
    assert keys["interval"] == {"layer": "profile", "profile": "fast", "version": 1}
    assert keys["metrics.gpu_power"]["layer"] == "profile"
    assert keys["metrics.cpu_temp"] == {"layer": "device"}
    assert keys["port"] == {"layer": "operator"}
    assert [p["name"] for p in body["profiles"]] == ["fast"]


def test_explain_is_for_operators(anon):
    send(anon, "PUT", "/config/edge-1", EXPORTER_PUT)
    response = send(anon, "GET", "/config/edge-1?explain=true")
    assert response.status_code in (401, 403)
    assert response.json()["error"] in ("authentication_required", "forbidden")


def test_with_no_profiles_the_last_write_wins_as_before(api, anon):
    assert send(anon, "PUT", "/config/edge-1", JETSON).json()["status"] == "registered"
    assert Device.objects.get(device_id="edge-1").base_config is None
    send(api, "PATCH", "/config/edge-1", {"interval": 5})
    assert Device.objects.get(device_id="edge-1").operator_keys == [["interval"]]
    echo = send(anon, "PUT", "/config/edge-1", {**JETSON, "interval": 5})
    assert echo.json() == {
        "status": "updated", "device_id": "edge-1", "reload_triggered": False, "version": 2
    }
    assert served(anon, "edge-1") == {**JETSON, "interval": 5}
    # The device's own change of the operator's key wins, as it always did.
    send(anon, "PUT", "/config/edge-1", {**JETSON, "interval": 9})
    assert served(anon, "edge-1") == {**JETSON, "interval": 9}
    send(anon, "PUT", "/config/edge-1", JETSON)
    assert served(anon, "edge-1") == JETSON
    assert Device.objects.get(device_id="edge-1").base_config is None


@pytest.mark.parametrize(
    ("name", "body", "needle"),
    [
        ("Bad_Name", {"config": {}}, "profile name"),
        ("ok", {"config": {"device_type": "shelly"}}, "device_type"),
        ("ok", {"config": {"shelly": None}}, "null"),
        ("ok", {"config": {"port": 70000}}, "port"),
        ("ok", {"config": {"metrics": {"a": "yes"}}}, "metrics"),
        ("ok", {"config": {}, "selector": "site in ("}, "selector"),
        ("ok", {"config": {}, "selector": "status=healthy"}, "status"),
        ("ok", {"config": {}, "priority": 10**9}, "priority"),
    ],
)
def test_a_bad_profile_is_refused_and_stores_nothing(api, name, body, needle):
    response = send(api, "PUT", f"/profiles/{name}", body)
    assert response.status_code == 400, response.content
    assert response.json()["error"] in ("invalid_profile", "validation_error")
    assert needle in response.json()["message"]
    assert send(api, "GET", "/profiles").json()["total"] == 0


def test_profile_crud_history_and_matches(api, anon):
    send(anon, "PUT", "/config/edge-1", EXPORTER_PUT)
    send(anon, "PUT", "/config/plug-1", {"device_type": "shelly"})
    put_profile(api, "jetsons", {"interval": 5}, "device_type=jetson_orin")
    put_profile(api, "jetsons", {"interval": 6}, "device_type=jetson_orin")
    detail = send(api, "GET", "/profiles/jetsons").json()
    assert (detail["version"], detail["matched_devices"]) == (2, ["edge-1"])
    history = send(api, "GET", "/profiles/jetsons/history").json()["revisions"]
    versions = [(r["version"], r["config"]) for r in history]
    assert versions == [(2, {"interval": 6}), (1, {"interval": 5})]
    unchanged = put_profile(api, "jetsons", {"interval": 6}, "device_type=jetson_orin").json()
    assert (unchanged["status"], unchanged["version"]) == ("unchanged", 2)
    assert send(api, "DELETE", "/profiles/jetsons").status_code == 200
    missing = send(api, "GET", "/profiles/jetsons")
    assert (missing.status_code, missing.json()["error"]) == (404, "Profile not found")
    history = send(api, "GET", "/profiles/jetsons/history").json()["revisions"]
    assert history[0]["action"] == "deleted"


def test_profiles_need_an_operator(anon):
    response = send(anon, "PUT", "/profiles/x", {"config": {}})
    assert response.status_code == 401


def test_the_catalogue_counts_reported_names_and_enabled_devices(api, anon):
    send(anon, "PUT", "/config/edge-1", EXPORTER_PUT)
    send(anon, "PUT", "/config/edge-2", {**EXPORTER_PUT, "metrics": {"gpu_power": True}})
    send(anon, "PUT", "/config/plug-1", {"device_type": "shelly", "metrics": {"power": True}})
    body = send(api, "GET", "/metrics/catalogue?device_type=jetson_orin").json()
    assert body["devices"] == 2
    assert body["metrics"] == [
        {"name": "cpu_temp", "devices": 1, "enabled": 0},
        {"name": "gpu_power", "devices": 2, "enabled": 1},
    ]
    put_profile(api, "gpu", {"metrics": {"gpu_power": True}})
    body = send(api, "GET", "/metrics/catalogue?device_type=jetson_orin").json()
    assert body["metrics"][1] == {"name": "gpu_power", "devices": 2, "enabled": 2}


def test_the_leaders_reconcile_heals_a_profile_change_a_crash_cut_short(api, anon):
    from datetime import timedelta

    from django.utils import timezone

    from devices.models import Profile
    from devices.reconcile import ProfileReconcile

    send(anon, "PUT", "/config/edge-1", EXPORTER_PUT)
    put_profile(api, "slow", {"interval": 60})
    # As if the server died between storing the profile and re-layering its devices.
    Profile.objects.filter(name="slow").update(config={"interval": 90}, version=2)
    assert served(anon, "edge-1")["interval"] == 60
    reconcile = ProfileReconcile(interval=60)
    now = timezone.now()
    assert reconcile.tick(now) == ["edge-1"]
    assert served(anon, "edge-1")["interval"] == 90
    revision = DeviceRevision.objects.filter(device_id="edge-1").order_by("-version").first()
    assert revision.note == "layers reconciled"
    Profile.objects.filter(name="slow").update(config={"interval": 30})
    assert reconcile.tick(now + timedelta(seconds=10)) == []  # not due yet
    reconcile.still_leading = lambda: False
    assert reconcile.tick(now + timedelta(seconds=61)) == []  # not the leader
    reconcile.still_leading = lambda: True
    assert reconcile.tick(now + timedelta(seconds=122)) == ["edge-1"]
    assert reconcile.tick(now + timedelta(seconds=183)) == []  # nothing left to heal


def test_an_operator_patching_a_key_back_to_the_devices_value_overrides_the_profile(api, anon):
    send(anon, "PUT", "/config/edge-1", EXPORTER_PUT)  # gpu_power false, as reported
    put_profile(api, "gpu-on", {"metrics": {"gpu_power": True}, "interval": 5})
    assert served(anon, "edge-1")["metrics"]["gpu_power"] is True
    metrics = {"gpu_power": False, "cpu_temp": False}
    assert send(api, "PATCH", "/config/edge-1", {"metrics": metrics}).status_code == 200
    assert served(anon, "edge-1")["metrics"]["gpu_power"] is False
    # Only what the PATCH named is the operator's: the profile still sets the interval.
    put_profile(api, "gpu-on", {"metrics": {"gpu_power": True}, "interval": 6})
    assert served(anon, "edge-1")["interval"] == 6
    assert served(anon, "edge-1")["metrics"]["gpu_power"] is False


def test_the_dashboards_basic_patch_of_served_values_pins_nothing(api, anon):
    send(anon, "PUT", "/config/edge-1", EXPORTER_PUT)
    put_profile(api, "ports", {"port": 9300})
    basic = {"device_type": "jetson_orin", "ip_address": "127.0.0.9", "port": 9300,
             "reload_port": 9101}  # fmt: skip
    assert send(api, "PATCH", "/devices/edge-1", basic).status_code == 200
    put_profile(api, "ports", {"port": 9400})
    assert served(anon, "edge-1")["port"] == 9400


def test_a_label_change_brings_a_device_into_a_profile_and_out_again(api, anon):
    send(anon, "PUT", "/config/edge-1", EXPORTER_PUT)
    put_profile(api, "lab", {"interval": 5}, "site=lab")
    assert "interval" not in served(anon, "edge-1")
    answer = send(api, "PUT", "/devices/edge-1/labels", {"labels": {"site": "lab"}})
    assert answer.status_code == 200, answer.content
    assert served(anon, "edge-1")["interval"] == 5
    revision = DeviceRevision.objects.filter(device_id="edge-1").order_by("-version").first()
    assert (revision.action, revision.note) == ("profile", "labels changed")
    assert send(api, "GET", "/profiles/lab").json()["matched_devices"] == ["edge-1"]
    send(api, "PUT", "/devices/edge-1/labels", {"labels": {"site": "home"}})
    assert "interval" not in served(anon, "edge-1")


def test_config_selector_lists_what_profiles_serve(api, anon):
    send(anon, "PUT", "/config/edge-1", EXPORTER_PUT)
    send(anon, "PUT", "/config/edge-2", EXPORTER_PUT)
    send(api, "PUT", "/devices/edge-1/labels", {"labels": {"site": "lab"}})
    put_profile(api, "lab", {"interval": 5}, "site=lab")
    listed = send(api, "GET", "/config?selector=site%3Dlab").json()
    assert [(c["device_id"], c["interval"]) for c in listed["configs"]] == [("edge-1", 5)]


@pytest.mark.skipif(
    not settings.DATABASE_URL.startswith("postgres"),
    reason="on SQLite writers queue on the write lock (an in-memory test database has none)",
)
@pytest.mark.django_db(transaction=True)
def test_two_writers_creating_one_profile_at_once_both_succeed():
    """On PostgreSQL a missing row locks nothing: both writers find no profile, and the
    second's insert meets the first's. It is tried again, as an update."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from django.db import connection

    from devices.models import ProfileRevision
    from devices.profiles import profile_put
    from users.actors import Actor

    start = Barrier(2)

    def write(n: int):
        start.wait()
        try:
            return profile_put(
                name="race", selector="", priority=0, config={"n": n}, actor=Actor(name="t")
            )
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        written = list(pool.map(write, range(2)))
    assert sorted(w.created for w in written) == [False, True]
    versions = ProfileRevision.objects.filter(profile_name="race").values_list("version", flat=True)
    assert sorted(versions) == [1, 2]
