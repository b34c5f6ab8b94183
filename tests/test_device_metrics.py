"""Probe and reload counters on `GET /metrics`: they move when probes and reloads happen,
whoever makes them, and a probe made by the monitor process is seen by a scrape that a
gunicorn worker answers."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User

from devices.monitor import DeviceMonitor
from tests.helpers import register, send
from tests.support.exporters import Reply, closed_port
from tests.support.fleet import add_device
from tests.support.gunicorn import run_server
from tests.support.metrics import Scrapes, value

PROBES = "ems_device_probes_total"
PROBE_SECONDS = "ems_device_probe_duration_seconds"
RELOADS = "ems_device_reloads_total"


def scrape(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def fleet(api, exporters):
    """One device of each probe result: healthy, unhealthy (503), unreachable (nothing
    listens) and refused (a documentation address outside DEVICE_ALLOWED_NETWORKS, stored
    directly: the guard must keep the probe from leaving)."""
    healthy, sick = exporters(), exporters()
    sick.set("GET", "/health", Reply(503, {"status": "error"}))
    register(api, "ok", healthy.port)
    register(api, "sick", sick.port)
    register(api, "gone", closed_port())
    add_device("outside", ip="192.0.2.10")
    return healthy, sick


def probe_with_refresh(api, staff) -> None:
    assert api.get("/devices?refresh=true").status_code == 200


def probe_with_monitor(api, staff) -> None:
    DeviceMonitor().step()


def probe_with_admin(api, staff) -> None:
    response = staff.post(
        "/admin/devices/device/",
        {"action": "probe_devices", "_selected_action": ["ok", "sick", "gone", "outside"]},
    )
    assert response.status_code == 302


@pytest.mark.django_db
@pytest.mark.usefixtures("fast_devices")
@pytest.mark.parametrize("probe", [probe_with_refresh, probe_with_monitor, probe_with_admin])
def test_every_probe_is_counted_by_what_it_found(api, client, fleet, probe):
    staff = type(client)()
    staff.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw-for-tests"))
    before = scrape(client)
    probe(api, staff)
    scrapes = Scrapes(before, scrape(client))
    assert scrapes.delta(PROBES, result="healthy") == 1
    assert scrapes.delta(PROBES, result="unhealthy") == 1
    assert scrapes.delta(PROBES, result="unreachable") == 1
    assert scrapes.delta(PROBES, result="refused") == 1
    # The three probes that went out are timed; the refused one never left.
    assert scrapes.delta(f"{PROBE_SECONDS}_count") == 3
    assert scrapes.delta(f"{PROBE_SECONDS}_sum") > 0
    assert scrapes.delta(f"{PROBE_SECONDS}_bucket", le="+Inf") == 3


@pytest.mark.django_db
@pytest.mark.usefixtures("fast_devices")
def test_reloads_are_counted_by_result_on_every_path(api, client, exporters):
    good, broken = exporters(), exporters()
    broken.set("POST", "/reload", Reply(500))
    before = scrape(client)
    # The reload after a write: registering with an address announces the new config.
    register(api, "good", good.port)
    register(api, "broken", broken.port)
    send(api, "PUT", "/config/no-ip", {"device_type": "shelly"})  # nothing to announce to
    after_writes = scrape(client)
    writes = Scrapes(before, after_writes)
    assert writes.delta(RELOADS, result="reloaded") == 1
    assert writes.delta(RELOADS, result="failed") == 1
    assert writes.delta(RELOADS, result="skipped") == 0

    # Single reloads answer 200, 502 and 400 (no address: "failed" on this route).
    assert send(api, "POST", "/devices/good/reload").status_code == 200
    assert send(api, "POST", "/devices/broken/reload").status_code == 502
    assert send(api, "POST", "/devices/no-ip/reload").status_code == 400
    after_single = scrape(client)
    single = Scrapes(after_writes, after_single)
    assert single.delta(RELOADS, result="reloaded") == 1
    assert single.delta(RELOADS, result="failed") == 2

    # The bulk reload reports the device without an address as "skipped".
    body = send(api, "POST", "/devices/reload").json()
    assert sorted(r["status"] for r in body["results"]) == ["failed", "reloaded", "skipped"]
    bulk = Scrapes(after_single, scrape(client))
    assert bulk.delta(RELOADS, result="reloaded") == 1
    assert bulk.delta(RELOADS, result="failed") == 1
    assert bulk.delta(RELOADS, result="skipped") == 1


def wait_for(predicate, timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(interval)
    return predicate()


@pytest.mark.e2e
def test_monitor_probes_show_in_a_scrape_answered_by_a_worker(tmp_path, exporters):
    """The monitor is a separate process beside the gunicorn workers: its samples must
    reach the page through the shared multiprocess directory."""
    healthy = exporters()
    env = {"MONITOR_INTERVAL": "0.3", "PROBE_TIMEOUT": "1", "RELOAD_TIMEOUT": "1"}
    with run_server(tmp_path, env=env, workers=2) as server:
        body = {"device_type": "jetson_orin", "ip_address": "127.0.0.1"}
        put = server.request("PUT", "/config/ok", json={**body, "reload_port": healthy.port})
        assert put.json()["reload_triggered"] is True
        server.request("PUT", "/config/gone", json={**body, "reload_port": closed_port()})

        def page() -> str:
            return server.request("GET", "/metrics", auth=False).text

        def probed_both() -> str | None:
            text = page()
            found = value(text, PROBES, result="healthy") >= 2 and (
                value(text, PROBES, result="unreachable") >= 2
            )
            return text if found else None

        # Nothing in a worker probes (no ?refresh=true): every probe counted is the monitor's.
        text = wait_for(probed_both, 15)
        assert text, page()
        assert healthy.probes >= 2
        assert value(text, f"{PROBE_SECONDS}_count") >= 4
        # The worker that took the PUT counted its reload; any worker's scrape shows it.
        for _ in range(4):
            assert value(page(), RELOADS, result="reloaded") == 1
