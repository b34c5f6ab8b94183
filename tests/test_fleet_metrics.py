"""Per-device series and the last Kubernetes sync on `GET /metrics`: what the shipped
alerts read, one series per device, from the database at scrape time."""

from __future__ import annotations

import pytest

from devices.models import DeviceHealth
from tests.helpers import register, send
from tests.support.exporters import Reply
from tests.support.metrics import samples, value

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_devices")]

PER_DEVICE = (
    "ems_device_up",
    "ems_device_last_seen_timestamp_seconds",
    "ems_device_config_in_sync",
    "ems_device_reload_pending",
)


def scrape(client) -> str:
    page = client.get("/metrics")
    assert page.status_code == 200
    return page.content.decode()


def series(text: str, name: str) -> dict[str, float]:
    """Each device's sample of `name`, by device id (and checks: only these two labels)."""
    found = {}
    for (sample, labels), sample_value in samples(text).items():
        if sample == name:
            assert [key for key, _ in labels] == ["device_id", "device_type"], labels
            found[dict(labels)["device_id"]] = sample_value
    return found


def test_each_device_has_one_up_series_from_its_last_probe(api, anon, client, exporters):
    alive, sick = exporters(), exporters()
    sick.set("GET", "/health", Reply(503))
    register(api, "alive", alive.port)
    register(api, "sick", sick.port, device_type="shelly")
    send(anon, "PUT", "/config/no-ip", {"device_type": "raspberry_pi"})
    assert series(scrape(client), "ems_device_up") == {"alive": 0, "sick": 0, "no-ip": 0}

    api.get("/devices?refresh=true")
    text = scrape(client)
    assert series(text, "ems_device_up") == {"alive": 1, "sick": 0, "no-ip": 0}
    assert value(text, "ems_device_up", device_id="sick", device_type="shelly") == 0
    # Never healthy: no last-seen series rather than a made-up time.
    last_seen = series(text, "ems_device_last_seen_timestamp_seconds")
    health = DeviceHealth.objects.get(pk="alive")
    assert last_seen == {"alive": health.last_seen.timestamp()}

    alive.set("GET", "/health", Reply(hang=True))
    api.get("/devices?refresh=true")
    text = scrape(client)
    assert series(text, "ems_device_up")["alive"] == 0
    # The last healthy answer is kept while the device is down: "down since".
    assert series(text, "ems_device_last_seen_timestamp_seconds") == last_seen


def test_config_in_sync_is_absent_until_checked_then_says_drift(api, anon, client, exporters):
    exporter = exporters()
    register(api, "edge-01", exporter.port)
    assert series(scrape(client), "ems_device_config_in_sync") == {}

    exporter.running_config = anon.get("/config/edge-01").json()
    api.get("/devices/edge-01/status?refresh=true")
    assert series(scrape(client), "ems_device_config_in_sync") == {"edge-01": 1}

    exporter.running_config = {**exporter.running_config, "port": 9999}
    api.get("/devices/edge-01/status?refresh=true")
    assert series(scrape(client), "ems_device_config_in_sync") == {"edge-01": 0}

    # The served config changes: the last comparison says nothing of it any more.
    send(api, "PATCH", "/config/edge-01", {"interval": 30})
    assert series(scrape(client), "ems_device_config_in_sync") == {}


def test_reload_pending_while_a_change_waits_for_the_device(api, client, exporters):
    exporter = exporters()
    register(api, "edge-01", exporter.port)
    api.get("/devices?refresh=true")
    assert series(scrape(client), "ems_device_reload_pending") == {"edge-01": 0}

    exporter.set("POST", "/reload", Reply(500))
    body = send(api, "PATCH", "/config/edge-01", {"interval": 30}).json()
    assert body["reload_triggered"] is False
    assert series(scrape(client), "ems_device_reload_pending") == {"edge-01": 1}


def test_a_large_fleet_is_one_series_per_device_per_metric(client, exporters):
    from tests.helpers import make_devices

    ids = make_devices("edge", 300, exporters().port)
    text = scrape(client)
    assert sorted(series(text, "ems_device_up")) == ids
    assert sorted(series(text, "ems_device_reload_pending")) == ids
    for name in PER_DEVICE:
        assert text.count(f"\n{name}{{") <= len(ids)


def test_last_full_sync_says_when_and_how_it_ended(api, client, kube):
    from k8sbridge.models import SyncRun
    from tests.support.fleet import add_device

    def last_sync(text: str) -> dict[tuple, float]:
        return {
            labels: sample_value
            for (name, labels), sample_value in samples(text).items()
            if name == "ems_kubernetes_last_sync_timestamp_seconds"
        }

    # Never synced (the bridge is not used): no series, so nothing to alert on.
    assert last_sync(scrape(client)) == {}

    add_device("edge-01", ip="192.0.2.10")
    assert send(api, "POST", "/kubernetes/sync", {}).status_code == 200
    run = SyncRun.objects.get()
    ok = (("namespace", "monitoring"), ("result", "ok"))
    assert last_sync(scrape(client)) == {ok: run.finished_at.timestamp()}

    # One device's sync is not the periodic full reconcile the alert watches.
    assert send(api, "POST", "/kubernetes/sync/edge-01", {}).status_code == 200
    assert last_sync(scrape(client)) == {ok: run.finished_at.timestamp()}

    # A sync into another namespace is not the server's own.
    kube.add_namespace("other")
    assert send(api, "POST", "/kubernetes/sync", {"namespace": "other"}).status_code == 200
    assert last_sync(scrape(client)) == {ok: run.finished_at.timestamp()}

    kube.fail("patch", "services", code=500)
    add_device("edge-02", ip="192.0.2.11")
    assert send(api, "POST", "/kubernetes/sync", {}).json()["failed"]
    failed = SyncRun.objects.filter(namespace="monitoring", scope="").first()
    assert failed.outcome == "failed"
    assert last_sync(scrape(client)) == {
        (("namespace", "monitoring"), ("result", "failed")): failed.finished_at.timestamp()
    }


def test_label_values_are_escaped_for_the_text_format(anon, client):
    odd = 'lab "B"\\ line\nnext'
    assert send(anon, "PUT", "/config/edge-01", {"device_type": odd}).status_code == 200
    text = scrape(client)
    found = samples(text)
    assert found[("ems_device_up", (("device_id", "edge-01"), ("device_type", odd)))] == 0
    assert value(text, "ems_devices", status="unknown", device_type=odd) == 1
    assert series(text, "ems_device_reload_pending") == {"edge-01": 0}


def test_the_whole_page_passes_promtools_metrics_lint(api, anon, client, exporters):
    import subprocess

    from tests.support.prometheus import tool

    register(api, "edge-01", exporters().port)
    send(anon, "PUT", "/config/edge-02", {"device_type": 'lab "B"\\ line\nnext'})
    api.get("/devices?refresh=true")
    done = subprocess.run(
        [tool("promtool"), "check", "metrics"],
        input=scrape(client),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
