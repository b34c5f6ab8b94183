"""`GET /devices/{id}/local-config` (the device proxy) and config drift detection."""

from __future__ import annotations

import time

import pytest

from devices.models import DeviceHealth
from devices.monitor import DeviceMonitor
from devices.runtime import config_drift
from tests.helpers import register, send
from tests.support.exporters import Reply, closed_port

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_devices")]

SLACK = 3.0


@pytest.fixture
def device(api, exporters):
    exporter = exporters()
    register(api, "edge-01", exporter.port)
    return exporter


def test_local_config_relays_the_running_config(api, device):
    device.running_config = {"device_type": "jetson_orin", "metrics": {"a": True}, "x": [1, None]}
    response = api.get("/devices/edge-01/local-config")
    assert response.status_code == 200
    assert response.json() == device.running_config


def test_local_config_of_unknown_device(api):
    response = api.get("/devices/ghost/local-config")
    assert response.status_code == 404
    assert response.json() == {"error": "Device not found", "device_id": "ghost"}


def test_local_config_without_address(api, anon):
    send(anon, "PUT", "/config/edge-01", {"device_type": "jetson"})
    response = api.get("/devices/edge-01/local-config")
    assert response.status_code == 400
    assert response.json() == {
        "error": "No IP address",
        "device_id": "edge-01",
        "message": "Device has no IP address configured",
    }


def test_local_config_of_a_device_refusing_connections(api):
    register(api, "edge-01", closed_port())
    response = api.get("/devices/edge-01/local-config")
    assert response.status_code == 503
    assert response.json() == {
        "error": "Device unreachable",
        "device_id": "edge-01",
        "message": "Failed to connect to device: Connection refused",
    }


@pytest.mark.parametrize("reply", [Reply(hang=True), Reply(200, {"pad": "x" * 100}, trickle=0.1)])
def test_local_config_of_a_silent_or_trickling_device_gives_up_at_proxy_timeout(api, device, reply):
    device.set("GET", "/config", reply)
    started = time.monotonic()
    response = api.get("/devices/edge-01/local-config")
    assert response.status_code == 503
    assert response.json()["message"] == "Failed to connect to device: No answer within 0.5 s"
    assert time.monotonic() - started < 0.5 + SLACK


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(500, {"error": "boom"}), "Device returned HTTP 500"),
        (Reply(404, "Not Found", content_type="text/plain"), "Device returned HTTP 404"),
        (Reply(200, "up", content_type="text/plain"), "Device returned a body that is not JSON"),
        (Reply(200, ["a", "b"]), "Device returned JSON that is not an object (list)"),
        (Reply(200, {"pad": "x" * (1024 * 1024)}), "Device returned a config larger than 1 MiB"),
        (
            Reply(302, "", headers={"Location": "http://169.254.169.254/latest/meta-data/"}),
            "Device returned HTTP 302",
        ),
    ],
)
def test_local_config_bad_answers_are_device_errors(api, device, outbound, reply, message):
    device.set("GET", "/config", reply)
    response = api.get("/devices/edge-01/local-config")
    assert response.status_code == 502
    assert response.json() == {"error": "Device error", "device_id": "edge-01", "message": message}
    # A redirect is reported, never followed: only the device itself was contacted.
    assert outbound.hosts() == {"127.0.0.1"}


# ---- drift ---------------------------------------------------------------------------------


def item(api, device_id: str = "edge-01", refresh: bool = True) -> dict:
    return api.get(f"/devices/{device_id}/status" + ("?refresh=true" if refresh else "")).json()


def test_device_running_the_served_config_is_in_sync(api, anon, device):
    device.running_config = {**anon.get("/config/edge-01").json(), "device_only_key": 1}
    body = item(api)
    assert body["config_in_sync"] is True
    assert "drifted_keys" not in body


def test_device_running_another_config_has_drifted(api, anon, device):
    send(api, "PATCH", "/config/edge-01", {"interval": 30, "metrics": {"gpu": True}})
    served = anon.get("/config/edge-01").json()
    device.running_config = {**served, "metrics": {"gpu": False}}
    del device.running_config["interval"]
    body = item(api)
    assert body["config_in_sync"] is False
    assert body["drifted_keys"] == ["interval", "metrics"]
    health = DeviceHealth.objects.get(pk="edge-01")
    assert health.drift_checked_at is not None


def test_drift_is_unknown_until_checked_and_when_the_device_cannot_say(api, device):
    assert item(api, refresh=False)["config_in_sync"] is None
    device.set("GET", "/config", Reply(500))
    assert item(api)["config_in_sync"] is None


def test_unhealthy_device_is_not_asked_for_its_config(api, device):
    device.set("GET", "/health", Reply(503))
    assert item(api)["config_in_sync"] is None
    assert device.count("GET", "/config") == 0


def test_a_config_change_makes_the_last_comparison_unknown(api, anon, device):
    device.running_config = anon.get("/config/edge-01").json()
    assert item(api)["config_in_sync"] is True
    send(api, "PATCH", "/config/edge-01", {"interval": 60})
    assert item(api, refresh=False)["config_in_sync"] is None


def test_monitor_compares_configs_every_drift_check_interval(api, device, settings):
    settings.MONITOR_INTERVAL = 3600
    settings.DRIFT_CHECK_INTERVAL = 300
    monitor = DeviceMonitor()
    monitor.step()
    assert device.count("GET", "/config") == 1  # never compared: compared at once
    monitor._next_round = 0
    monitor.step()
    assert device.count("GET", "/config") == 1  # compared less than 300 s ago
    settings.DRIFT_CHECK_INTERVAL = 0.05
    time.sleep(0.1)
    monitor._next_round = 0
    monitor.step()
    assert device.count("GET", "/config") == 2
    assert device.probes == 3


@pytest.mark.parametrize(
    ("served", "running", "drifted"),
    [
        ({"a": 1, "b": {"c": [1, 2]}}, {"a": 1, "b": {"c": [1, 2]}, "z": 0}, []),
        ({"a": 1}, {"a": 1.0}, []),
        ({"a": True}, {"a": 1}, ["a"]),
        ({"a": 1}, {"a": True}, ["a"]),
        ({"a": [1, 2]}, {"a": [2, 1]}, ["a"]),
        ({"a": {"x": 1}}, {"a": {"x": 1, "y": 2}}, ["a"]),
        ({"a": None, "b": "s"}, {}, ["a", "b"]),
        ({"port": 9102}, {"port": "9102"}, ["port"]),
    ],
)
def test_config_drift_compares_served_keys_as_json(served, running, drifted):
    assert config_drift(served, running) == drifted
