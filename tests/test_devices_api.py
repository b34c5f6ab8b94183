"""Device status routes and the summary, answered from stored observations."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devices.models import Device, DeviceHealth, DeviceRevision
from tests.helpers import JETSON, send

pytestmark = pytest.mark.django_db

SEEN = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _observe(device_id: str, status: str, error: str = "", last_seen=None) -> None:
    DeviceHealth.objects.filter(device_id=device_id).update(
        status=status, error=error, last_seen=last_seen
    )


@pytest.fixture
def fleet(api, anon):
    send(anon, "PUT", "/config/a-healthy", JETSON)
    send(anon, "PUT", "/config/b-sick", {"device_type": "shelly"})
    send(anon, "PUT", "/config/c-gone", {"device_type": "shelly"})
    send(anon, "PUT", "/config/d-no-ip", {"device_type": "raspberry_pi"})
    for device_id, ip in [
        ("a-healthy", "127.0.0.1"),
        ("b-sick", "127.0.0.2"),
        ("c-gone", "127.0.0.3"),
    ]:
        Device.objects.filter(pk=device_id).update(ip_address=ip)
    _observe("a-healthy", "healthy", last_seen=SEEN)
    _observe("b-sick", "unhealthy", "HTTP 503", last_seen=SEEN)
    _observe("c-gone", "unreachable", "Connection refused")
    # An observation of a device that has since lost its address does not count.
    _observe("d-no-ip", "healthy", last_seen=SEEN)


def test_device_list(api, fleet):
    response = api.get("/devices")
    assert response.status_code == 200
    body = response.json()
    assert (body["total"], body["healthy"], body["unhealthy"]) == (4, 1, 3)
    items = {item["device_id"]: item for item in body["devices"]}
    # The fleet registered itself anonymously, like exporters, from the test client.
    assert items["a-healthy"].pop("last_contact").startswith("20")
    assert items["a-healthy"] == {
        "device_id": "a-healthy",
        "device_type": "jetson_orin",
        "ip_address": "127.0.0.1",
        "port": 9102,
        "reload_port": 9101,
        "status": "healthy",
        "last_seen": "2026-11-01T12:00:00Z",
        "last_checked": None,
        "observed_ip": "127.0.0.1",
        "config_in_sync": None,
        "reload_pending": False,
        "labels": {},
    }
    assert items["b-sick"]["status"] == "unhealthy"
    assert items["b-sick"]["error"] == "HTTP 503"
    assert items["c-gone"]["error"] == "Connection refused"
    assert "last_seen" not in items["c-gone"]
    assert items["d-no-ip"]["status"] == "unknown"
    assert items["d-no-ip"]["error"] == "No IP address registered"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=healthy", ["a-healthy"]),
        ("status=unknown", ["d-no-ip"]),
        ("status=unreachable", ["c-gone"]),
        ("device_type=shelly", ["b-sick", "c-gone"]),
        ("q=127.0.0.2", ["b-sick"]),
    ],
)
def test_device_list_filters(api, fleet, query, expected):
    body = api.get(f"/devices?{query}").json()
    assert [item["device_id"] for item in body["devices"]] == expected
    assert body["total"] == len(expected)


def test_device_list_refuses_bad_filter(api, fleet):
    response = api.get("/devices?status=sleeping")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_filter"


def test_device_status(api, fleet):
    response = api.get("/devices/b-sick/status")
    assert response.status_code == 200
    assert response.json()["status"] == "unhealthy"
    missing = api.get("/devices/ghost/status")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Device not found", "device_id": "ghost"}


def test_summary(api, fleet):
    response = api.get("/metrics/summary")
    assert response.status_code == 200
    assert response.json() == {
        "total": 4,
        "healthy": 1,
        "unhealthy": 3,
        "by_device_type": {"jetson_orin": 1, "raspberry_pi": 1, "shelly": 2},
        "by_status": {"healthy": 1, "unhealthy": 1, "unreachable": 1, "unknown": 1},
    }


def test_empty_fleet(api):
    assert api.get("/devices").json() == {"devices": [], "total": 0, "healthy": 0, "unhealthy": 0}
    assert api.get("/metrics/summary").json()["total"] == 0


def test_patch_device_changes_only_basic_fields(api, anon):
    send(anon, "PUT", "/config/e", JETSON)
    response = send(
        api,
        "PATCH",
        "/devices/e",
        {
            "device_type": "jetson_nano",
            "ip_address": "127.0.0.9",
            "port": 9300,
            "reload_port": 9301,
            "shelly": {"enabled": False},
            "enabled_metrics": ["x"],
        },
    )
    assert response.status_code == 200
    assert response.json() == {
        "status": "updated",
        "device_id": "e",
        "message": "Device basic information updated (reload not triggered)",
    }
    config = anon.get("/config/e").json()
    assert config == {**JETSON, "device_type": "jetson_nano", "port": 9300, "reload_port": 9301}
    assert Device.objects.get(pk="e").ip_address == "127.0.0.9"
    assert DeviceRevision.objects.filter(device_id="e").count() == 2


@pytest.mark.parametrize("ip", ["", "127.0.0.256", "host.local"])
def test_patch_device_refuses_empty_or_invalid_ip(api, anon, ip):
    send(anon, "PUT", "/config/e", JETSON)
    response = send(api, "PATCH", "/devices/e", {"ip_address": ip, "port": 9300})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_ip_address"
    assert Device.objects.get(pk="e").port == 9102


def test_patch_unknown_device_is_404(api):
    response = send(api, "PATCH", "/devices/ghost", {"port": 9300})
    assert response.status_code == 404
    assert response.json() == {"error": "Device not found", "device_id": "ghost"}


def test_patch_device_with_invalid_port(api, anon):
    send(anon, "PUT", "/config/e", JETSON)
    response = send(api, "PATCH", "/devices/e", {"port": "9300"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_port"
