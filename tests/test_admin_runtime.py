"""The admin's device runtime: reload/probe/use-observed-IP actions, observation fields,
and the fleet overview on the admin home."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User

from devices.models import Device, DeviceHealth, DeviceRevision
from tests.helpers import JETSON, register, send
from tests.support.exporters import Reply

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_devices")]


@pytest.fixture
def staff(client):
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw-for-tests"))
    return client


def action(staff, name: str, *device_ids: str):
    return staff.post(
        "/admin/devices/device/",
        {"action": name, "_selected_action": list(device_ids)},
        follow=True,
    )


def text(response) -> str:
    """The page with whitespace collapsed and lower-cased (the admin capitalises messages)."""
    return re.sub(r"\s+", " ", response.content.decode()).lower()


def test_admin_save_that_changes_the_config_reloads_the_device(staff, api, exporters):
    exporter = exporters()
    register(api, "edge-01", exporter.port)
    form = {
        "device_id": "edge-01",
        "device_type": "jetson_orin",
        "ip_address": "127.0.0.1",
        "port": "9102",
        "reload_port": str(exporter.port),
        "enabled_metrics": "null",
        "extra_config": '{"interval": 30}',
        "version": "1",
    }
    response = staff.post("/admin/devices/device/edge-01/change/", form, follow=True)
    assert "the device reloaded its config" in text(response)
    assert exporter.reloads == 2
    response = staff.post("/admin/devices/device/edge-01/change/", {**form, "version": "2"})
    assert response.status_code == 302
    assert exporter.reloads == 2  # nothing changed: no reload


def test_reload_action(staff, api, exporters):
    good, bad = exporters(), exporters()
    bad.set("POST", "/reload", Reply(500))
    register(api, "a", good.port)
    register(api, "b", bad.port)
    response = action(staff, "reload_devices", "a", "b")
    page = text(response)
    # One message: the counts, the failures by id, a link to the list of those that failed.
    assert page.count('<li class="warning">') == 1
    assert (
        "reload of 2 devices: 1 reloaded, 1 failed. "
        "failed: <code>b</code> (device returned http 500)"
    ) in page
    assert (good.reloads, bad.reloads) == (2, 2)
    link = re.search(r'href="(/admin/devices/device/\?result=\w+)">show the 1 device that', page)
    failed = staff.get(link.group(1).replace("&amp;", "&")).content.decode()
    rows = failed.split('id="result_list"')[1]
    assert ">b</a>" in rows and ">a</a>" not in rows


def test_bulk_summary_names_only_a_few_failures(staff, api, settings):
    for n in range(6):
        dead = {**JETSON, "ip_address": "127.0.0.1", "reload_port": 9}
        send(api, "PUT", f"/config/Dead_{n}", dead)
    page = text(action(staff, "reload_devices", *[f"Dead_{n}" for n in range(6)]))
    assert "reload of 6 devices: 6 failed. failed: <code>dead_0</code>" in page
    assert "and 3 more. " in page and "show the 6 devices that failed" in page
    # Ids as stored: the message is not capitalised.
    assert "<code>Dead_0</code>" in action(staff, "reload_devices", "Dead_0").content.decode()


def test_probe_action_stores_fresh_status(staff, api, exporters):
    exporter = exporters()
    register(api, "a", exporter.port)
    page = text(action(staff, "probe_devices", "a"))
    assert "probe of 1 device: 1 healthy." in page
    assert DeviceHealth.objects.get(pk="a").status == "healthy"
    listing = text(staff.get("/admin/devices/device/"))
    assert "config in sync" in listing.lower()


def test_use_observed_ip_action(staff, anon):
    send(anon, "PUT", "/config/edge-01", JETSON, remote_addr="127.0.0.42")
    send(staff, "PUT", "/config/never-called", JETSON)  # a staff session is an operator
    page = text(action(staff, "use_observed_ip", "edge-01", "never-called"))
    assert "use observed ip of 2 devices: 1 ip set, 1 not changed" in page
    assert "<code>never-called</code> (the device has not called" in page
    assert Device.objects.get(pk="edge-01").ip_address == "127.0.0.42"
    revision = DeviceRevision.objects.filter(device_id="edge-01").order_by("-version").first()
    assert revision.note == "ip_address set to the address the device called from"
    assert revision.source == "admin"


def test_use_observed_ip_respects_the_guard(staff, anon, settings):
    send(anon, "PUT", "/config/edge-01", JETSON, remote_addr="127.0.0.42")
    settings.DEVICE_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    page = text(action(staff, "use_observed_ip", "edge-01"))
    assert "outside device_allowed_networks" in page
    assert Device.objects.get(pk="edge-01").ip_address == ""


def test_change_page_shows_the_observation(staff, api, anon, exporters):
    exporter = exporters()
    exporter.exporter_status = "degraded"
    register(api, "edge-01", exporter.port)
    anon.get("/config/edge-01", REMOTE_ADDR="127.0.0.9")
    api.get("/devices/edge-01/status?refresh=true")
    page = text(staff.get("/admin/devices/device/edge-01/change/"))
    for shown in ("exporter says", "degraded", "observed ip", "127.0.0.9", "drifted keys"):
        assert shown in page


def test_admin_home_shows_the_fleet_at_a_glance(staff, api, anon, exporters):
    healthy, sick = exporters(), exporters()
    sick.set("GET", "/health", Reply(503))
    register(api, "a-healthy", healthy.port)
    register(api, "b-sick", sick.port, device_type="shelly")
    send(anon, "PUT", "/config/c-no-ip", {"device_type": "shelly"})
    healthy.running_config = {"device_type": "jetson_orin", "port": 1}  # drifted
    api.get("/devices?refresh=true")
    page = text(staff.get("/admin/"))
    overview = page.split('id="fleet-overview"')[1].split("<!-- end of fleet overview -->")[0]
    assert "fleet: 3 devices" in overview
    tiles = overview.split('id="fleet-health"')[1].split('id="fleet-down"')[0]
    for name, count in [("healthy", 1), ("unhealthy", 1), ("unknown", 1), ("unreachable", 0)]:
        assert re.search(
            rf'href="/admin/devices/device/\?status={name}" data-status="{name}"> '
            rf'<span class="ems-tile-count">{count}</span>',
            tiles,
        ), name
    drift_tile = r'\?health__config_in_sync__exact=0"> <span class="ems-tile-count">1<'
    assert re.search(drift_tile, tiles)
    by_type = overview.split('id="fleet-types"')[1]
    assert re.search(r">shelly</a> .*?>2<", by_type)
    down = overview.split('id="fleet-down"')[1].split('id="fleet-recent"')[0]
    assert "b-sick" in down and "a-healthy" not in down and 'title="http 503"' in down
    # First probes are not changes that matter.
    recent = overview.split('id="fleet-recent"')[1].split('id="fleet-drifted"')[0]
    assert "a-healthy" not in recent and "b-sick" not in recent
    sick.overrides.clear()
    api.get("/devices?refresh=true")
    recent = text(staff.get("/admin/")).split('id="fleet-recent"')[1].split('id="fleet-drifted"')[0]
    assert "b-sick" in recent and "a-healthy" not in recent and "changed=24h" in recent
    drifted = overview.split('id="fleet-drifted"')[1]
    assert "a-healthy" in drifted and "port, reload_port" in drifted


def test_admin_home_without_devices(staff):
    page = text(staff.get("/admin/"))
    assert "fleet: 0 devices" in page and "no devices registered yet." in page
