"""Health monitoring: probes of real exporters on loopback, stored observations, flap
damping, bounded concurrency, the monitor loop and its listeners."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

import pytest

from devices.models import Device, DeviceHealth
from devices.monitor import DeviceMonitor
from tests.helpers import make_devices, register, send
from tests.support.exporters import Reply, closed_port

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_devices")]

# Generous bound for "about PROBE_TIMEOUT": thread start-up and a loaded CI machine.
SLACK = 3.0


def status(api, device_id: str, *, refresh: bool = True) -> dict:
    response = api.get(f"/devices/{device_id}/status" + ("?refresh=true" if refresh else ""))
    assert response.status_code == 200, response.content
    return response.json()


def test_refresh_probes_a_running_exporter(api, exporters):
    exporter = exporters()
    register(api, "edge-01", exporter.port)
    assert status(api, "edge-01", refresh=False)["error"] == "Not checked yet"
    item = status(api, "edge-01")
    assert item["status"] == "healthy"
    assert "error" not in item
    assert item["exporter_status"] == "healthy"
    assert item["last_seen"] == item["last_checked"]
    assert exporter.probes == 1
    # Without refresh the stored observation is answered; the device is not asked again.
    assert status(api, "edge-01", refresh=False)["last_seen"] == item["last_seen"]
    assert exporter.probes == 1


@pytest.mark.parametrize("word", ["degraded", "starting"])
def test_degraded_exporter_is_healthy_with_its_own_word_kept(api, exporters, word):
    exporter = exporters()
    exporter.exporter_status = word
    register(api, "edge-01", exporter.port)
    item = status(api, "edge-01")
    assert (item["status"], item["exporter_status"]) == ("healthy", word)


def test_status_transitions(api, exporters):
    exporter = exporters()
    register(api, "edge-01", exporter.port)
    healthy = status(api, "edge-01")
    assert healthy["status"] == "healthy"

    exporter.set("GET", "/health", Reply(503, {"status": "error"}))
    item = status(api, "edge-01")
    assert (item["status"], item["error"]) == ("unhealthy", "HTTP 503")
    assert item["last_seen"] == healthy["last_seen"]  # the last healthy answer is kept
    assert "exporter_status" not in item

    exporter.set("GET", "/health", Reply(hang=True))
    item = status(api, "edge-01")
    assert (item["status"], item["error"]) == ("unreachable", "No answer within 0.5 s")

    exporter.overrides.clear()
    assert status(api, "edge-01")["status"] == "healthy"

    send(api, "PATCH", "/devices/edge-01", {"reload_port": closed_port()})
    item = status(api, "edge-01")
    assert (item["status"], item["error"]) == ("unreachable", "Connection refused")
    health = DeviceHealth.objects.get(pk="edge-01")
    assert health.consecutive_failures == 1
    assert health.status_changed_at is not None


def test_status_changes_are_logged_once(api, exporters, caplog):
    exporter = exporters()
    register(api, "edge-01", exporter.port)
    status(api, "edge-01")
    exporter.set("GET", "/health", Reply(503))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="devices.health"):
        for _ in range(3):
            status(api, "edge-01")
        exporter.overrides.clear()
        status(api, "edge-01")
        status(api, "edge-01")
    lines = [r.getMessage() for r in caplog.records if r.name == "devices.health"]
    assert lines == ["edge-01: healthy -> unhealthy (HTTP 503)", "edge-01: unhealthy -> healthy"]


def test_failure_threshold_damps_flapping(api, exporters, settings):
    settings.FAILURE_THRESHOLD = 3
    exporter = exporters()
    register(api, "edge-01", exporter.port)
    assert status(api, "edge-01")["status"] == "healthy"
    exporter.set("GET", "/health", Reply(503))
    assert status(api, "edge-01")["status"] == "healthy"
    assert status(api, "edge-01")["status"] == "healthy"
    assert DeviceHealth.objects.get(pk="edge-01").consecutive_failures == 2
    item = status(api, "edge-01")
    assert (item["status"], item["error"]) == ("unhealthy", "HTTP 503")
    exporter.overrides.clear()
    assert status(api, "edge-01")["status"] == "healthy"  # recovery is reported at once


def test_threshold_never_delays_a_device_that_was_not_healthy(api, settings):
    settings.FAILURE_THRESHOLD = 3
    register(api, "edge-01", closed_port())
    assert status(api, "edge-01")["status"] == "unreachable"


def test_threshold_does_not_keep_a_new_address_healthy(api, exporters, settings):
    settings.FAILURE_THRESHOLD = 3
    exporter = exporters()
    register(api, "edge-01", exporter.port)
    assert status(api, "edge-01")["status"] == "healthy"
    send(api, "PATCH", "/devices/edge-01", {"reload_port": closed_port()})
    assert status(api, "edge-01")["status"] == "unreachable"


def test_device_without_ip_is_unknown_and_not_probed(api, anon, outbound):
    send(anon, "PUT", "/config/edge-01", {"device_type": "jetson"})
    item = status(api, "edge-01")
    assert (item["status"], item["error"]) == ("unknown", "No IP address registered")
    assert outbound.attempts == []


def test_stored_device_outside_allowed_networks_is_never_contacted(
    api, exporters, settings, outbound
):
    exporter = exporters()
    register(api, "edge-01", exporter.port)
    assert status(api, "edge-01")["status"] == "healthy"
    reloads, attempts = exporter.reloads, len(outbound.attempts)

    settings.DEVICE_ALLOWED_NETWORKS = ["10.0.0.0/8"]  # the operator narrowed the setting
    stored = status(api, "edge-01", refresh=False)
    refreshed = status(api, "edge-01")
    for item in (stored, refreshed):
        assert item["status"] == "unreachable"
        assert "DEVICE_ALLOWED_NETWORKS" in item["error"]
    reload = api.post("/devices/edge-01/reload")
    assert reload.status_code == 503
    assert "DEVICE_ALLOWED_NETWORKS" in reload.json()["error"]
    bulk = api.post("/devices/reload").json()
    assert bulk["results"][0]["status"] == "failed"
    assert "DEVICE_ALLOWED_NETWORKS" in bulk["results"][0]["error"]
    local = api.get("/devices/edge-01/local-config")
    assert local.status_code == 503
    assert "DEVICE_ALLOWED_NETWORKS" in local.json()["message"]
    assert api.get("/metrics/summary").json()["by_status"]["unreachable"] == 1
    assert (exporter.reloads, len(outbound.attempts)) == (reloads, attempts)


@pytest.mark.parametrize("path", ["/devices", "/devices/edge-01/status", "/metrics/summary"])
@pytest.mark.parametrize("value", ["maybe", "", "2"])
def test_invalid_refresh_value_is_refused(api, exporters, path, value):
    register(api, "edge-01", exporters().port)
    response = api.get(f"{path}?refresh={value}")
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"
    assert "refresh" in response.json()["message"]


def test_summary_refresh_counts_fresh_results(api, exporters):
    healthy, sick = exporters(), exporters()
    sick.set("GET", "/health", Reply(500))
    register(api, "a", healthy.port)
    register(api, "b", sick.port)
    register(api, "c", closed_port(), device_type="shelly")
    assert api.get("/metrics/summary").json()["healthy"] == 0
    body = api.get("/metrics/summary?refresh=true").json()
    assert (body["total"], body["healthy"], body["unhealthy"]) == (3, 1, 2)
    assert body["by_status"] == {"healthy": 1, "unhealthy": 1, "unreachable": 1, "unknown": 0}
    assert body["by_device_type"] == {"jetson_orin": 2, "shelly": 1}


def test_list_refresh_probes_the_filtered_devices_only(api, exporters):
    jetson, shelly = exporters(), exporters()
    register(api, "a", jetson.port)
    register(api, "b", shelly.port, device_type="shelly")
    body = api.get("/devices?device_type=shelly&refresh=true").json()
    assert [(d["device_id"], d["status"]) for d in body["devices"]] == [("b", "healthy")]
    assert (jetson.probes, shelly.probes) == (0, 1)


def test_fleet_with_silent_devices_is_probed_in_about_one_timeout(api, exporters, settings):
    """200 devices of which 50 never answer: ~PROBE_TIMEOUT, not 50 x PROBE_TIMEOUT."""
    # All 200 calls start at once: on a loaded machine the one fake exporter (a thread per
    # connection) needs more than half a second to answer its 150.
    settings.PROBE_TIMEOUT = 1.5
    alive, silent = exporters(), exporters()
    silent.answer_everything(Reply(hang=True))
    make_devices("alive", 150, alive.port)
    make_devices("silent", 50, silent.port)
    started = time.monotonic()
    body = api.get("/devices?refresh=true").json()
    elapsed = time.monotonic() - started
    assert (body["total"], body["healthy"], body["unhealthy"]) == (200, 150, 50)
    assert {d["error"] for d in body["devices"] if d["status"] != "healthy"} == {
        "No answer within 1.5 s"
    }
    assert (alive.probes, silent.probes) == (150, 50)
    assert elapsed < 1.5 + SLACK, elapsed


def test_at_most_probe_concurrency_probes_are_in_flight(exporters, settings):
    from devices import runtime, selectors

    settings.PROBE_CONCURRENCY = 10
    settings.PROBE_TIMEOUT = 0.3
    silent = exporters()
    silent.set("GET", "/health", Reply(hang=True))
    make_devices("silent", 30, silent.port)
    started = time.monotonic()
    result = runtime.devices_probe(devices=list(selectors.device_list()))
    elapsed = time.monotonic() - started
    assert silent.connections() == 30
    # The exporter notices a hang-up a moment after it happens, and the ten calls of a wave
    # give up at the same instant, so some of the next wave's connections can be counted
    # before the first wave's close (unbounded probing would open all 30 at once).
    assert 10 <= silent.open_before_first_close() < 20
    # Three waves of ten, each held for the whole timeout.
    assert elapsed >= 3 * 0.3 * 0.9
    assert len(result.devices) == 30
    assert set(DeviceHealth.objects.values_list("status", flat=True)) == {"unreachable"}


# ---- the monitor loop ------------------------------------------------------------------


class RecordingListener:
    def __init__(self) -> None:
        self.changes: list[list[str]] = []
        self.ticks: list[datetime] = []

    def devices_changed(self, device_ids: list[str]) -> None:
        self.changes.append(device_ids)

    def tick(self, now: datetime) -> None:
        self.ticks.append(now)


@pytest.fixture
def monitor(settings):
    settings.MONITOR_INTERVAL = 3600  # only the first step is a round
    listener = RecordingListener()
    return DeviceMonitor(listeners=[listener]), listener


def test_monitor_round_probes_every_device_with_an_address(api, anon, exporters, monitor):
    monitor, listener = monitor
    exporter = exporters()
    register(api, "a", exporter.port)
    register(api, "b", exporter.port)
    send(anon, "PUT", "/config/no-ip", {"device_type": "shelly"})
    assert monitor.step() == ["a", "b", "no-ip"]  # the first round reports every device
    assert exporter.probes == 2
    assert set(DeviceHealth.objects.exclude(pk="no-ip").values_list("status", flat=True)) == {
        "healthy"
    }
    assert listener.changes == [["a", "b", "no-ip"]]
    assert len(listener.ticks) == 1
    # Probe requests made by those writes were served by the round.
    assert not DeviceHealth.objects.filter(probe_requested_at__isnull=False).exists()


def test_new_device_is_probed_at_once_not_at_the_next_round(api, exporters, monitor):
    monitor, listener = monitor
    monitor.step()  # the round; the next one is an hour away
    exporter = exporters()
    register(api, "edge-new", exporter.port)
    assert DeviceHealth.objects.get(pk="edge-new").probe_requested_at is not None
    assert monitor.step() == ["edge-new"]
    assert status(api, "edge-new", refresh=False)["status"] == "healthy"
    assert DeviceHealth.objects.get(pk="edge-new").probe_requested_at is None
    assert monitor.step() == []  # served once
    assert exporter.probes == 1
    assert listener.changes == [["edge-new"]]


def test_a_refresh_leaves_probe_requests_to_the_monitor(api, exporters, monitor):
    monitor, listener = monitor
    monitor.step()
    register(api, "edge-new", exporters().port)
    assert status(api, "edge-new")["status"] == "healthy"  # probed by ?refresh=true
    assert DeviceHealth.objects.get(pk="edge-new").probe_requested_at is not None
    # The monitor still looks at once, so its listeners hear of the new device now.
    assert monitor.step() == ["edge-new"]
    assert listener.changes == [["edge-new"]]


@pytest.mark.parametrize(
    ("change", "probed"),
    [
        ({"reload_port": "other"}, True),
        ({"ip_address": "127.0.0.2"}, True),
        ({"port": 9300}, True),
        ({"device_type": "jetson_nano"}, True),
        ({"interval": 30}, False),
    ],
)
def test_address_port_or_type_change_asks_for_a_probe(api, exporters, monitor, change, probed):
    monitor, _ = monitor
    first, second = exporters(), exporters(host="127.0.0.2")
    second_port = second.port
    register(api, "edge-01", first.port)
    monitor.step()
    if change.get("reload_port") == "other":
        change = {"reload_port": second_port}
    elif "ip_address" in change:
        send(api, "PATCH", "/config/edge-01", {"reload_port": second_port})
        monitor.step()
    send(api, "PATCH", "/config/edge-01", change)
    reported = monitor.step()
    assert reported == (["edge-01"] if probed else [])
    assert DeviceHealth.objects.get(pk="edge-01").probe_requested_at is None


def test_deleted_device_is_reported_at_the_next_round(api, exporters, monitor, settings):
    monitor, _ = monitor
    exporter = exporters()
    register(api, "a", exporter.port)
    register(api, "b", exporter.port)
    monitor.step()
    api.delete("/config/b")
    monitor._next_round = 0  # the round is due
    assert monitor.step() == ["b"]


def test_status_change_found_by_a_round_is_reported(api, exporters, monitor):
    monitor, _ = monitor
    exporter = exporters()
    register(api, "a", exporter.port)
    monitor.step()
    exporter.set("GET", "/health", Reply(503))
    monitor._next_round = 0
    assert monitor.step() == ["a"]
    monitor._next_round = 0
    assert monitor.step() == []  # still unhealthy: nothing new to report


def test_a_failing_listener_does_not_stop_the_monitor(api, exporters, settings):
    settings.MONITOR_INTERVAL = 3600

    class Broken:
        def devices_changed(self, device_ids):
            raise RuntimeError("boom")

        def tick(self, now):
            raise RuntimeError("boom")

    listener = RecordingListener()
    monitor = DeviceMonitor(listeners=[Broken(), listener])
    register(api, "a", exporters().port)
    assert monitor.step() == ["a"]
    assert listener.changes == [["a"]]


def test_run_loops_until_stopped(api, exporters, settings):
    settings.MONITOR_INTERVAL = 3600
    stop = threading.Event()

    class StopAfterThreeTicks(RecordingListener):
        def tick(self, now):
            super().tick(now)
            if len(self.ticks) == 3:
                stop.set()

    listener = StopAfterThreeTicks()
    exporter = exporters()
    register(api, "a", exporter.port)
    DeviceMonitor(listeners=[listener], poll_interval=0.01).run(stop)
    assert len(listener.ticks) == 3
    assert exporter.probes == 1  # one round, then only (empty) looks for requests


def test_run_survives_a_failing_iteration(settings, caplog):
    settings.MONITOR_INTERVAL = 3600
    stop = threading.Event()

    class FlakyMonitor(DeviceMonitor):
        calls = 0

        def step(self) -> list[str]:
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("the database went away")
            stop.set()
            return []

    monitor = FlakyMonitor(poll_interval=0.01)
    monitor.run(stop)
    assert monitor.calls == 2
    assert "Device monitor iteration failed" in caplog.text


def test_run_stops_when_its_parent_is_gone(settings):
    settings.MONITOR_INTERVAL = 3600
    listener = RecordingListener()
    DeviceMonitor(listeners=[listener]).run(threading.Event(), keep_running=lambda: False)
    assert listener.ticks == []


def test_listeners_are_the_registered_ones_and_those_the_settings_name(settings):
    from devices.monitor import load_listeners
    from devices.reconcile import ProfileReconcile
    from k8sbridge.autosync import AutoSync
    from rollouts.driver import RolloutDriver

    listeners = load_listeners(["tests.test_monitoring.RecordingListener"])
    assert [type(listener) for listener in listeners] == [RecordingListener]
    settings.MONITOR_LISTENERS = []
    registered = [ProfileReconcile, AutoSync, RolloutDriver]
    assert [type(listener) for listener in load_listeners()] == registered
    settings.MONITOR_LISTENERS = ["tests.test_monitoring.RecordingListener"]
    assert [type(listener) for listener in load_listeners()] == [*registered, RecordingListener]


def test_monitor_devices_once_command(api, exporters):
    from django.core.management import call_command

    exporter = exporters()
    register(api, "a", exporter.port)
    call_command("monitor_devices", "--once")
    assert Device.objects.get(pk="a").health.status == "healthy"
