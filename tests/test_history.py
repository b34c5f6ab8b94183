"""Revision history, rollback, ETag and If-Match."""

from __future__ import annotations

import pytest

from devices.models import Device, DeviceRevision
from tests.helpers import JETSON, send

pytestmark = pytest.mark.django_db


def test_every_change_writes_a_revision_newest_first(api, anon):
    send(anon, "PUT", "/config/e", JETSON)
    send(api, "PATCH", "/config/e", {"ip_address": "127.0.0.7"})
    send(api, "PATCH", "/devices/e", {"port": 9300})
    send(api, "DELETE", "/config/e")
    response = api.get("/config/e/history")
    assert response.status_code == 200
    body = response.json()
    assert body["device_id"] == "e"
    assert body["total"] == 4
    assert [r["version"] for r in body["revisions"]] == [4, 3, 2, 1]
    assert [r["action"] for r in body["revisions"]] == ["deleted", "patched", "patched", "created"]
    assert body["revisions"][1]["config"] == {
        "device_type": "jetson_orin",
        "port": 9300,
        "reload_port": 9101,
        "metrics": JETSON["metrics"],
        "shelly": JETSON["shelly"],
        "ip_address": "127.0.0.7",
    }
    assert body["revisions"][3]["config"]["ip_address"] == ""
    assert body["revisions"][0]["created_at"].endswith("Z")


def test_a_write_that_changes_nothing_writes_no_revision(anon):
    send(anon, "PUT", "/config/e", JETSON)
    again = send(anon, "PUT", "/config/e", JETSON)
    assert again.json()["status"] == "updated"
    assert again.json()["version"] == 1
    assert DeviceRevision.objects.filter(device_id="e").count() == 1


def test_history_of_unknown_device_is_404(api):
    response = api.get("/config/ghost/history")
    assert response.status_code == 404
    assert response.json() == {"error": "Device not found", "device_id": "ghost"}


def test_rollback_restores_a_version_as_a_new_revision(api, anon):
    send(anon, "PUT", "/config/e", JETSON)
    send(anon, "PUT", "/config/e", {"device_type": "shelly", "x": 1})
    response = send(api, "POST", "/config/e/rollback", {"version": 1})
    assert response.status_code == 200
    assert response.json() == {
        "status": "rolled_back",
        "device_id": "e",
        "version": 3,
        "restored_version": 1,
        "reload_triggered": False,
    }
    assert anon.get("/config/e").json() == {k: v for k, v in JETSON.items()}
    latest = DeviceRevision.objects.filter(device_id="e").order_by("-version").first()
    assert (latest.version, latest.action, latest.actor) == (3, "rolled_back", "token:tests")


def test_rollback_brings_back_a_deleted_device(api, anon):
    send(api, "POST", "/config/e", {**JETSON, "ip_address": "127.0.0.2"})
    send(api, "DELETE", "/config/e")
    response = send(api, "POST", "/config/e/rollback", {"version": 1})
    assert response.status_code == 200
    assert response.json()["version"] == 3
    assert Device.objects.get(pk="e").ip_address == "127.0.0.2"


@pytest.mark.parametrize(
    "body", [{}, {"version": "1"}, {"version": 0}, {"version": True}, {"version": 1.5}]
)
def test_rollback_needs_a_positive_integer_version(api, anon, body):
    send(anon, "PUT", "/config/e", JETSON)
    response = send(api, "POST", "/config/e/rollback", body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_version"


def test_rollback_to_missing_version_is_404(api, anon):
    send(anon, "PUT", "/config/e", JETSON)
    response = send(api, "POST", "/config/e/rollback", {"version": 7})
    assert response.status_code == 404
    assert response.json()["error"] == "Revision not found"
    missing = send(api, "POST", "/config/ghost/rollback", {"version": 1})
    assert missing.json() == {"error": "Device not found", "device_id": "ghost"}


def test_get_returns_etag_and_304(anon):
    send(anon, "PUT", "/config/e", JETSON)
    first = anon.get("/config/e")
    assert first["ETag"] == '"1"'
    cached = anon.get("/config/e", HTTP_IF_NONE_MATCH='"1"')
    assert cached.status_code == 304
    send(anon, "PUT", "/config/e", {**JETSON, "port": 1234})
    assert anon.get("/config/e", HTTP_IF_NONE_MATCH='"1"').status_code == 200
    assert anon.get("/config/e")["ETag"] == '"2"'


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/config/e", {"device_type": "shelly"}),
        ("PATCH", "/config/e", {"port": 9999}),
        ("DELETE", "/config/e", None),
        ("POST", "/config/e/rollback", {"version": 1}),
    ],
)
def test_stale_if_match_is_412_and_changes_nothing(api, anon, method, path, body):
    send(anon, "PUT", "/config/e", JETSON)
    send(anon, "PUT", "/config/e", {**JETSON, "port": 9200})
    response = send(api, method, path, body, **{"If-Match": '"1"'})
    assert response.status_code == 412
    assert response.json()["error"] == "precondition_failed"
    assert response.json()["device_id"] == "e"
    assert response.json()["etag"] == '"2"'
    assert Device.objects.get(pk="e").port == 9200
    assert DeviceRevision.objects.filter(device_id="e").count() == 2


def test_current_if_match_lets_the_write_through(api, anon):
    send(anon, "PUT", "/config/e", JETSON)
    etag = anon.get("/config/e")["ETag"]
    ok = send(api, "PATCH", "/config/e", {"port": 9999}, **{"If-Match": etag})
    assert ok.status_code == 200
    assert ok["ETag"] == '"2"'
    assert send(api, "PATCH", "/config/e", {"port": 1}, **{"If-Match": "*"}).status_code == 200


def test_if_match_on_a_missing_device_is_412(api):
    response = send(api, "PUT", "/config/new", {"device_type": "j"}, **{"If-Match": '"1"'})
    assert response.status_code == 412
    assert not Device.objects.exists()


def test_weak_etags_never_match(api, anon):
    send(anon, "PUT", "/config/e", JETSON)
    response = send(api, "PATCH", "/config/e", {"port": 9999}, **{"If-Match": 'W/"1"'})
    assert response.status_code == 412
