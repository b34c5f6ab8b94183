"""Reload triggers after config writes, and the reload routes, against real exporters."""

from __future__ import annotations

import time

import pytest

from devices.models import Device
from tests.helpers import make_devices, register, send
from tests.support.exporters import Reply, closed_port

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_devices")]

SLACK = 3.0
# What the field exporter PUTs: its whole config, a `metrics` dict, no ip_address.
EXPORTER_BODY = {
    "device_type": "jetson_orin",
    "metrics": {"gpu_power": True, "cpu_temp": False},
    "port": 9102,
    "shelly": {"enabled": True, "server_url": "http://shelly.local"},
}


@pytest.fixture
def device(api, exporters):
    exporter = exporters()
    assert register(api, "edge-01", exporter.port)["reload_triggered"] is True
    assert exporter.reloads == 1
    return exporter


def test_exporter_putting_its_config_back_reloads_only_when_it_changed(anon, device):
    body = {**EXPORTER_BODY, "reload_port": device.port}
    first = send(anon, "PUT", "/config/edge-01", body).json()
    assert (first["status"], first["reload_triggered"]) == ("updated", True)
    assert device.reloads == 2
    # The exporter reloads, re-fetches, discovers nothing new and PUTs the same again.
    again = send(anon, "PUT", "/config/edge-01", body).json()
    assert again["reload_triggered"] is False
    assert again["version"] == first["version"]
    # It found a new metric name: that changes what it should load.
    grown = {**body, "metrics": {**body["metrics"], "ram_used": False}}
    assert send(anon, "PUT", "/config/edge-01", grown).json()["reload_triggered"] is True
    assert device.reloads == 3


def test_changing_only_the_address_does_not_reload(api, device):
    # The address is not part of what GET /config/{id} serves.
    response = send(
        api,
        "PUT",
        "/config/edge-01",
        {"device_type": "jetson_orin", "ip_address": "127.0.0.2", "reload_port": device.port},
    ).json()
    assert response["reload_triggered"] is False
    assert Device.objects.get(pk="edge-01").ip_address == "127.0.0.2"
    assert device.reloads == 1


def test_post_patch_and_rollback_reload(api, exporters):
    exporter = exporters()
    created = send(
        api,
        "POST",
        "/config/edge-01",
        {"device_type": "jetson", "ip_address": "127.0.0.1", "reload_port": exporter.port},
    )
    assert (created.status_code, created.json()["reload_triggered"]) == (201, True)
    patched = send(api, "PATCH", "/config/edge-01", {"interval": 30}).json()
    assert patched["reload_triggered"] is True
    unchanged = send(api, "PATCH", "/config/edge-01", {"interval": 30}).json()
    assert unchanged["reload_triggered"] is False
    rolled = send(api, "POST", "/config/edge-01/rollback", {"version": 1}).json()
    assert (rolled["status"], rolled["reload_triggered"]) == ("rolled_back", True)
    assert exporter.reloads == 3


def test_patch_devices_never_reloads(api, device):
    response = send(api, "PATCH", "/devices/edge-01", {"port": 9300, "device_type": "jetson"})
    assert response.status_code == 200
    assert response.json()["message"] == "Device basic information updated (reload not triggered)"
    assert device.reloads == 1


@pytest.mark.parametrize(
    "reply", [Reply(500, {"error": "boom"}), Reply(404), Reply(hang=True), "refused"]
)
def test_failed_reload_never_fails_or_undoes_the_write(api, exporters, reply):
    exporter = exporters()
    port = closed_port() if reply == "refused" else exporter.port
    if reply != "refused":
        exporter.set("POST", "/reload", reply)
    started = time.monotonic()
    response = register(api, "edge-01", port, interval=5)
    assert response["status"] == "registered"
    assert response["reload_triggered"] is False
    assert time.monotonic() - started < 0.5 + SLACK  # a silent device costs RELOAD_TIMEOUT
    assert Device.objects.get(pk="edge-01").extra_config == {"interval": 5}


def test_write_without_address_does_not_try_to_reload(anon, outbound):
    response = send(anon, "PUT", "/config/edge-01", EXPORTER_BODY).json()
    assert response["reload_triggered"] is False
    assert outbound.attempts == []


# ---- POST /devices/{id}/reload ------------------------------------------------------------


def test_reload_route_success(api, device):
    response = api.post("/devices/edge-01/reload")
    assert response.status_code == 200
    assert response.json() == {"status": "reloaded", "device_id": "edge-01"}
    assert device.reloads == 2


def test_reload_route_unknown_device(api):
    response = api.post("/devices/ghost/reload")
    assert response.status_code == 404
    assert response.json() == {"error": "Device not found", "device_id": "ghost"}


def test_reload_route_without_address(api, anon):
    send(anon, "PUT", "/config/edge-01", EXPORTER_BODY)
    response = api.post("/devices/edge-01/reload")
    assert response.status_code == 400
    assert response.json() == {
        "status": "failed",
        "device_id": "edge-01",
        "error": "Device has no IP address configured",
    }


@pytest.mark.parametrize(
    ("reply", "code", "error"),
    [
        (Reply(500, {"error": "boom"}), 502, "Device returned HTTP 500"),
        (
            Reply(301, "", headers={"Location": "http://169.254.169.254/"}),
            502,
            "Device returned HTTP 301",
        ),
        (Reply(hang=True), 503, "Failed to connect to device: No answer within 0.5 s"),
    ],
)
def test_reload_route_failures(api, device, outbound, reply, code, error):
    device.set("POST", "/reload", reply)
    response = api.post("/devices/edge-01/reload")
    assert response.status_code == code
    assert response.json() == {"status": "failed", "device_id": "edge-01", "error": error}
    assert outbound.hosts() == {"127.0.0.1"}


def test_reload_route_refused_connection(api):
    register(api, "edge-01", closed_port())
    response = api.post("/devices/edge-01/reload")
    assert response.status_code == 503
    assert response.json()["error"] == "Failed to connect to device: Connection refused"


# ---- POST /devices/reload -----------------------------------------------------------------


def test_bulk_reload_reports_each_device(api, anon, exporters):
    good, bad = exporters(), exporters()
    bad.set("POST", "/reload", Reply(503))
    register(api, "a-good", good.port)
    register(api, "b-bad", bad.port)
    register(api, "c-down", closed_port())
    send(anon, "PUT", "/config/d-no-ip", EXPORTER_BODY)
    response = api.post("/devices/reload")
    assert response.status_code == 200
    assert response.json() == {
        "results": [
            {"device_id": "a-good", "status": "reloaded"},
            {"device_id": "b-bad", "status": "failed", "error": "Device returned HTTP 503"},
            {
                "device_id": "c-down",
                "status": "failed",
                "error": "Failed to connect to device: Connection refused",
            },
            {
                "device_id": "d-no-ip",
                "status": "skipped",
                "error": "Device has no IP address configured",
            },
        ],
        "total": 4,
        "success": 1,
        "failed": 3,
    }


def test_bulk_reload_of_an_empty_fleet(api):
    assert api.post("/devices/reload").json() == {
        "results": [],
        "total": 0,
        "success": 0,
        "failed": 0,
    }


def test_bulk_reload_with_silent_devices_takes_about_one_timeout(api, exporters, settings):
    # Long enough for one in-process exporter to answer 150 calls at once while this
    # process's event loop makes them (at 0.5 s, the threads' turns at the GIL on a busy
    # machine left some of them unanswered); every silent device still costs a timeout.
    settings.RELOAD_TIMEOUT = 2.0
    alive, silent = exporters(), exporters()
    silent.set("POST", "/reload", Reply(hang=True))
    make_devices("alive", 150, alive.port)
    make_devices("silent", 50, silent.port)
    started = time.monotonic()
    body = api.post("/devices/reload").json()
    elapsed = time.monotonic() - started
    assert (body["total"], body["success"], body["failed"]) == (200, 150, 50)
    assert (alive.reloads, silent.reloads) == (150, 50)
    # All at once: less than a second timeout's worth, whatever the fleet's size.
    assert elapsed < 2 * settings.RELOAD_TIMEOUT, elapsed


def test_patch_of_a_device_named_reload_still_works(api, exporters):
    register(api, "reload", exporters().port)
    response = send(api, "PATCH", "/devices/reload", {"port": 9300})
    assert response.status_code == 200
    assert Device.objects.get(pk="reload").port == 9300


def test_a_device_known_unreachable_is_not_waited_for_and_gets_its_reload_later(
    api, anon, device
):
    from devices.monitor import DeviceMonitor

    # The device stops answering, and the monitor notices.
    device.answer_everything(Reply(hang=True))
    DeviceMonitor().run_round()
    assert api.get("/devices/edge-01/status").json()["status"] == "unreachable"
    reloads_before = device.reloads

    # A config change does not wait for it: no reload is even attempted.
    started = time.monotonic()
    response = send(api, "PATCH", "/config/edge-01", {"interval": 30}).json()
    assert time.monotonic() - started < 0.4  # RELOAD_TIMEOUT is 0.5 s in these tests
    assert response["reload_triggered"] is False
    item = api.get("/devices/edge-01/status").json()
    assert item["reload_pending"] is True
    assert device.reloads == reloads_before

    # It comes back: the next probe delivers the reload once.
    device.overrides.clear()
    DeviceMonitor().run_round()
    assert device.reloads == reloads_before + 1
    assert api.get("/devices/edge-01/status").json()["reload_pending"] is False
    DeviceMonitor().run_round()
    assert device.reloads == reloads_before + 1


def test_a_failed_reload_is_left_pending(api, device):
    device.set("POST", "/reload", Reply(500, "boom", content_type="text/plain"))
    response = send(api, "PATCH", "/config/edge-01", {"interval": 30}).json()
    assert response["reload_triggered"] is False
    assert api.get("/devices/edge-01/status").json()["reload_pending"] is True
    device.overrides.clear()
    from devices.monitor import DeviceMonitor

    DeviceMonitor().run_round()
    assert api.get("/devices/edge-01/status").json()["reload_pending"] is False


def test_a_deferred_reload_is_counted(api, device, client):
    from devices.monitor import DeviceMonitor
    from tests.test_observability import value

    device.answer_everything(Reply(hang=True))
    DeviceMonitor().run_round()
    before = client.get("/metrics").content.decode()
    send(api, "PATCH", "/config/edge-01", {"interval": 45})
    after = client.get("/metrics").content.decode()
    name = "ems_device_reloads_total"
    assert value(after, name, result="deferred") == value(before, name, result="deferred") + 1
