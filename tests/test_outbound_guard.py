"""The outbound guard on writes: an address the server would not contact is refused with
400 ip_not_allowed on every write path, and nothing is stored."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from devices.models import Device, DeviceRevision
from tests.helpers import JETSON, send

pytestmark = pytest.mark.django_db

# Link-local (cloud metadata), private but not listed in the test settings, IPv4-mapped
# metadata, IPv6 link-local, multicast, unspecified.
REFUSED = [
    "169.254.169.254",
    "10.0.0.1",
    "::ffff:169.254.169.254",
    "fe80::1",
    "224.0.0.251",
    "0.0.0.0",
]


def assert_refused(response, ip: str, device_id: str = "edge-01") -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "ip_not_allowed"
    assert body["device_id"] == device_id
    assert "DEVICE_ALLOWED_NETWORKS" in body["message"]
    assert ip.split(":")[-1] in body["message"]


@pytest.fixture
def stored(api):
    send(api, "PUT", "/config/edge-01", {**JETSON, "ip_address": "127.0.0.5"})
    return Device.objects.get(pk="edge-01")


@pytest.mark.parametrize("ip", REFUSED)
def test_put_is_refused_and_stores_nothing(api, anon, ip):
    assert_refused(send(api, "PUT", "/config/edge-01", {**JETSON, "ip_address": ip}), ip)
    assert_refused(send(anon, "PUT", "/config/edge-01", {**JETSON, "ip_address": ip}), ip)
    assert not Device.objects.exists()
    assert not DeviceRevision.objects.exists()


@pytest.mark.parametrize("ip", REFUSED)
def test_post_is_refused(api, ip):
    assert_refused(send(api, "POST", "/config/edge-01", {**JETSON, "ip_address": ip}), ip)
    assert not Device.objects.exists()


@pytest.mark.parametrize("ip", REFUSED)
@pytest.mark.parametrize("path", ["/config/edge-01", "/devices/edge-01"])
def test_patch_is_refused(api, stored, ip, path):
    assert_refused(send(api, "PATCH", path, {"ip_address": ip, "port": 9555}), ip)
    device = Device.objects.get(pk="edge-01")
    assert (device.ip_address, device.port, device.version) == ("127.0.0.5", 9102, 1)


def test_rollback_to_an_address_no_longer_allowed_is_refused(api, stored, settings):
    send(api, "PATCH", "/devices/edge-01", {"ip_address": "127.0.0.6"})
    settings.DEVICE_ALLOWED_NETWORKS = ["127.0.0.6/32"]
    response = send(api, "POST", "/config/edge-01/rollback", {"version": 1})
    assert_refused(response, "127.0.0.5")
    assert Device.objects.get(pk="edge-01").version == 2


def test_rollback_keeping_the_current_address_is_allowed(api, stored, settings):
    send(api, "PATCH", "/config/edge-01", {"interval": 5})
    settings.DEVICE_ALLOWED_NETWORKS = ["127.0.0.6/32"]  # the stored address itself is now outside
    response = send(api, "POST", "/config/edge-01/rollback", {"version": 1})
    assert response.status_code == 200
    assert response.json()["status"] == "rolled_back"


def test_loopback_is_refused_under_the_production_default(api, settings):
    settings.DEVICE_ALLOWED_NETWORKS = [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "fc00::/7",
    ]
    for ip in ("127.0.0.1", "::1", "8.8.8.8", "169.254.169.254"):
        assert_refused(send(api, "PUT", "/config/edge-01", {**JETSON, "ip_address": ip}), ip)
    send(api, "PUT", "/config/edge-01", JETSON)
    # PATCH /devices never contacts the device, so accepting a LAN address costs no traffic.
    accepted = send(api, "PATCH", "/devices/edge-01", {"ip_address": "192.168.1.57"})
    assert accepted.status_code == 200
    assert Device.objects.get(pk="edge-01").ip_address == "192.168.1.57"


def test_admin_form_refuses_a_disallowed_address(client):
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    response = client.post(
        "/admin/devices/device/add/",
        {
            "device_id": "edge-01",
            "device_type": "jetson_orin",
            "ip_address": "169.254.169.254",
            "port": "9102",
            "reload_port": "9101",
            "enabled_metrics": "null",
            "extra_config": "{}",
        },
    )
    assert response.status_code == 200
    assert "outside DEVICE_ALLOWED_NETWORKS" in response.content.decode()
    assert not Device.objects.exists()
