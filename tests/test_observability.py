"""The server's own metrics and logs: request ids, JSON lines, /metrics across workers."""

from __future__ import annotations

import json
import re

import pytest
import requests

from devices.models import Device, DeviceHealth
from tests.helpers import JETSON, send
from tests.support.gunicorn import run_server
from tests.support.metrics import value


@pytest.mark.django_db
def test_metrics_page_parses_and_counts_fleet_and_writes(anon, client):
    before = client.get("/metrics").content.decode()
    send(anon, "PUT", "/config/a", JETSON)
    send(anon, "PUT", "/config/b", {"device_type": "shelly"})
    Device.objects.filter(pk="a").update(ip_address="127.0.0.1")
    DeviceHealth.objects.filter(pk="a").update(status="healthy")
    page = client.get("/metrics")
    assert page.status_code == 200
    assert page["Content-Type"].startswith("text/plain")
    text = page.content.decode()
    assert value(text, "ems_devices", status="healthy", device_type="jetson_orin") == 1
    assert value(text, "ems_devices", status="unknown", device_type="shelly") == 1
    writes = "ems_config_writes_total"
    assert (
        value(text, writes, source="device", action="created")
        == value(before, writes, source="device", action="created") + 2
    )
    requests_total = "ems_http_requests_total"
    assert value(text, requests_total, route="config-detail", method="PUT", status="200") >= 2


@pytest.mark.django_db
def test_deletes_and_rollbacks_are_config_writes_too(api, client):
    send(api, "PUT", "/config/a", JETSON)
    before = client.get("/metrics").content.decode()
    assert send(api, "DELETE", "/config/a").status_code == 200
    assert send(api, "POST", "/config/a/rollback", {"version": 1}).status_code == 200
    after = client.get("/metrics").content.decode()
    writes = "ems_config_writes_total"
    for action in ("deleted", "rolled_back"):
        assert (
            value(after, writes, source="api", action=action)
            == value(before, writes, source="api", action=action) + 1
        )


@pytest.mark.django_db
def test_refused_writes_are_not_counted(anon, client):
    before = client.get("/metrics").content.decode()
    send(anon, "PUT", "/config/a", {"port": 1})
    after = client.get("/metrics").content.decode()
    key = ("ems_config_writes_total", "device", "created")
    assert value(after, key[0], source=key[1], action=key[2]) == value(
        before, key[0], source=key[1], action=key[2]
    )


@pytest.mark.django_db
def test_metrics_token(client, settings):
    settings.METRICS_TOKEN = "scrape-secret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert ok.status_code == 200


@pytest.mark.django_db
def test_every_response_carries_a_request_id(anon):
    first = anon.get("/health")
    assert re.fullmatch(r"[0-9a-f]{32}", first["X-Request-ID"])
    kept = anon.get("/health", HTTP_X_REQUEST_ID="from-proxy-42")
    assert kept["X-Request-ID"] == "from-proxy-42"
    replaced = anon.get("/health", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert replaced["X-Request-ID"] != "bad id\nwith newline"


@pytest.mark.e2e
def test_metrics_add_up_across_gunicorn_workers(tmp_path):
    with run_server(tmp_path, workers=3) as server:
        session = requests.Session()
        for i in range(60):
            # New connections spread the requests over the workers.
            requests.get(f"{server.url}/health", timeout=10, headers={"Connection": "close"})
        pids = set()
        for _ in range(6):
            text = requests.get(
                f"{server.url}/metrics", timeout=10, headers={"Connection": "close"}
            ).text
            count = value(
                text, "ems_http_requests_total", route="health", method="GET", status="200"
            )
            pids.add(count)
        # Every scrape, whichever worker answers, sees all 60 (plus readiness polls).
        assert len(pids) == 1
        assert pids.pop() >= 60
        session.close()


@pytest.mark.e2e
def test_json_logs_are_one_object_per_line_with_request_ids(tmp_path):
    with run_server(tmp_path, env={"LOG_FORMAT": "json"}) as server:
        response = requests.get(
            f"{server.url}/nope", timeout=10, headers={"X-Request-ID": "trace-123"}
        )
        assert response.status_code == 404
        requests.put(f"{server.url}/config/e", json={"device_type": "jetson"}, timeout=10)
        server.process.terminate()
        server.process.wait(timeout=30)
        lines = [line for line in server.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line parses
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    access = [r for r in records if r["logger"] == "gunicorn.access"]
    assert any(r["request_id"] == "trace-123" and "/nope" in r["message"] for r in access)
    assert any(r["logger"] == "django.request" and r["request_id"] == "trace-123" for r in records)


@pytest.mark.django_db
def test_kubernetes_sync_metrics_move(api, client, kube):
    from tests.support.fleet import add_device

    add_device("edge-01", ip="192.0.2.10")
    add_device("edge-02", ip="192.0.2.11")
    before = client.get("/metrics").content.decode()
    assert send(api, "POST", "/kubernetes/sync", {}).status_code == 200
    assert send(api, "POST", "/kubernetes/sync", {}).status_code == 200
    after = client.get("/metrics").content.decode()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("ems_kubernetes_sync_runs_total", action="sync", result="ok") == 2
    assert delta("ems_kubernetes_sync_items_total", result="created") == 2
    assert delta("ems_kubernetes_sync_items_total", result="unchanged") == 2
    assert delta("ems_kubernetes_sync_duration_seconds_count") == 2
