"""End to end with a real Prometheus: it discovers fake exporters through the server's
`GET /prometheus/targets` (http_sd, with an operator token), scrapes them and the server
(real gunicorn with two workers, its real monitor probing the exporters), loads the
shipped rules (with short `for:`), and the device-down alert goes pending then firing
when an exporter dies. The dashboard's queries run against it too.

On PostgreSQL two replicas serve one database and both are scraped, as in a cluster:
the per-device series come twice, the alerts once per device.
"""

from __future__ import annotations

import pytest
from django.conf import settings

from tests.support.exporters import FakeExporter, Reply
from tests.support.gunicorn import (
    fresh_database,
    migrate,
    server_env,
    start_gunicorn,
    stop_gunicorn,
    wait_ready,
)
from tests.support.prometheus import (
    dashboard,
    panel_queries,
    rendered_rule,
    rules_of,
    run_prometheus,
    tool,
    write_rule_file,
)

pytestmark = pytest.mark.e2e

# Generous bounds for a loaded 2-core machine; Prometheus scrapes and evaluates every
# second, the monitor probes every second, so each step normally takes a few seconds.
STEP_TIMEOUT = 60
SHORT_FOR = "3s"
SERVER_ENV = {
    "MONITOR_INTERVAL": "1",
    "PROBE_TIMEOUT": "0.5",
    "RELOAD_TIMEOUT": "0.5",
}


def exporter_metrics(hostname: str) -> str:
    """What the field exporter serves on its metrics port, labelled as it labels them."""
    labels = f'device_type="jetson_orin",hostname="{hostname}"'
    return (
        "# TYPE jetson_power_vdd_gpu_soc_watts gauge\n"
        f"jetson_power_vdd_gpu_soc_watts{{{labels}}} 3.176\n"
        "# TYPE jetson_temp_cpu_celsius gauge\n"
        f"jetson_temp_cpu_celsius{{{labels}}} 45.25\n"
    )


def start_exporter(hostname: str) -> FakeExporter:
    """One port for everything: the server probes /health on it (reload_port) and
    Prometheus scrapes /metrics on it (port)."""
    exporter = FakeExporter()
    exporter.set(
        "GET",
        "/metrics",
        Reply(200, exporter_metrics(hostname), content_type="text/plain; version=0.0.4"),
    )
    return exporter


def firing_or_pending(prometheus, alertname: str) -> list[dict]:
    return [
        alert
        for alert in prometheus.api("alerts")["alerts"]
        if alert["labels"]["alertname"] == alertname
    ]


def test_prometheus_discovers_scrapes_and_alerts_on_a_dead_exporter(tmp_path):
    tool("prometheus")
    replicas = 2 if settings.DATABASE_URL.startswith("postgres") else 1
    exporters = {name: start_exporter(name) for name in ("edge-a", "edge-b")}
    servers = []
    try:
        with fresh_database(tmp_path) as db_env:
            env = server_env(db_env, workers=2, **SERVER_ENV)
            migrate(env)
            for index in range(replicas):
                servers.append(start_gunicorn(env, tmp_path / f"replica-{index}.log"))
            for server in servers:
                wait_ready(server, 90)
            server = servers[0]
            for name, exporter in exporters.items():
                body = {
                    "device_type": "jetson_orin",
                    "ip_address": "127.0.0.1",
                    "port": exporter.port,
                    "reload_port": exporter.port,
                }
                # It runs what it is served: no drift.
                exporter.running_config = {k: v for k, v in body.items() if k != "ip_address"}
                assert server.request("PUT", f"/config/{name}", json=body).status_code == 200

            rule = rendered_rule(tmp_path)
            for each in rules_of(rule):
                each["for"] = SHORT_FOR
            rules = write_rule_file(rule, tmp_path / "edge-metrics.rules.yml")
            config = {
                "global": {
                    "scrape_interval": "1s",
                    "scrape_timeout": "900ms",
                    "evaluation_interval": "1s",
                },
                "scrape_configs": [
                    {
                        "job_name": "edge-exporter",
                        "http_sd_configs": [
                            {
                                "url": f"{server.url}/prometheus/targets",
                                "refresh_interval": "1s",
                                "authorization": {"type": "Bearer", "credentials": server.token},
                            }
                        ],
                    },
                    {
                        "job_name": "edge-metrics-server",
                        "static_configs": [
                            {"targets": [s.url.removeprefix("http://") for s in servers]}
                        ],
                    },
                ],
            }
            with run_prometheus(tmp_path, config, [rules]) as prometheus:
                check_discovery_and_scrapes(prometheus, replicas)
                check_rules_loaded(prometheus, rule)
                exporters["edge-b"].close()
                check_dead_exporter_alerts(prometheus)
                check_dashboard_queries(prometheus)
                check_server_alerts_silent(prometheus)
    finally:
        for server in servers:
            stop_gunicorn(server)
        for exporter in exporters.values():
            exporter.close()


def check_discovery_and_scrapes(prometheus, replicas: int) -> None:
    def targets_up():
        found = {
            r["metric"]["device_id"]: r["value"][1]
            for r in prometheus.query('up{job="edge-exporter"}')
        }
        return found if found == {"edge-a": "1", "edge-b": "1"} else None

    prometheus.eventually(
        targets_up, timeout=STEP_TIMEOUT, what="both exporters discovered and scraped"
    )
    # The exporters' own series, with the target labels of the discovery.
    (power,) = prometheus.query('jetson_power_vdd_gpu_soc_watts{device_id="edge-a"}')
    assert power["metric"]["hostname"] == "edge-a"
    assert power["metric"]["job"] == "edge-exporter"

    def server_sees_both_healthy():
        found = prometheus.query("ems_device_up == 1")
        ids = sorted(r["metric"]["device_id"] for r in found)
        return ids if ids == ["edge-a"] * replicas + ["edge-b"] * replicas else None

    prometheus.eventually(
        server_sees_both_healthy,
        timeout=STEP_TIMEOUT,
        what=f"ems_device_up 1 for both devices from {replicas} replica(s)",
    )

    def one_leader():
        result = prometheus.query('sum(ems_leader{job="edge-metrics-server"})')
        return result and result[0]["value"][1] == "1"

    prometheus.eventually(one_leader, timeout=STEP_TIMEOUT, what="exactly one leader")


def check_rules_loaded(prometheus, rule: dict) -> None:
    expected = {each["alert"] for each in rules_of(rule)}

    def evaluated():
        loaded = [r for group in prometheus.api("rules")["groups"] for r in group["rules"]]
        names = {r["name"] for r in loaded}
        healthy = all(r["health"] == "ok" for r in loaded)
        return names == expected and healthy and loaded

    loaded = prometheus.eventually(
        evaluated, timeout=STEP_TIMEOUT, what="every shipped rule loaded and evaluated"
    )
    assert all(not r.get("lastError") for r in loaded), loaded


def check_dead_exporter_alerts(prometheus) -> None:
    prometheus.eventually(
        lambda: prometheus.query('up{job="edge-exporter", device_id="edge-b"} == 0'),
        timeout=STEP_TIMEOUT,
        what="the dead exporter's target up == 0",
    )
    prometheus.eventually(
        lambda: prometheus.query('max by (device_id) (ems_device_up{device_id="edge-b"}) == 0'),
        timeout=STEP_TIMEOUT,
        what="the server's probe finding the dead exporter",
    )
    prometheus.eventually(
        lambda: firing_or_pending(prometheus, "EdgeDeviceDown"),
        timeout=STEP_TIMEOUT,
        what="EdgeDeviceDown pending or firing",
    )

    def firing():
        alerts = firing_or_pending(prometheus, "EdgeDeviceDown")
        return alerts if [a["state"] for a in alerts] == ["firing"] else None

    (alert,) = prometheus.eventually(
        firing, timeout=STEP_TIMEOUT, what="EdgeDeviceDown firing, once"
    )
    assert alert["labels"] == {
        "alertname": "EdgeDeviceDown",
        "device_id": "edge-b",
        "device_type": "jetson_orin",
        "severity": "warning",
    }
    assert alert["annotations"]["summary"] == "Edge device edge-b (jetson_orin) is down"
    assert "GET /devices/edge-b/status" in alert["annotations"]["description"]
    assert alert["annotations"]["runbook_url"].endswith("/docs/runbooks.md#edgedevicedown")

    # One of the two jetson_orin devices is down: 50 % > 10 %.
    def degraded():
        alerts = firing_or_pending(prometheus, "EdgeFleetDegraded")
        return alerts if [a["state"] for a in alerts] == ["firing"] else None

    (fleet,) = prometheus.eventually(
        degraded, timeout=STEP_TIMEOUT, what="EdgeFleetDegraded firing for jetson_orin"
    )
    assert fleet["labels"]["device_type"] == "jetson_orin"
    assert fleet["annotations"]["summary"] == "50% of the jetson_orin devices are down"


def check_dashboard_queries(prometheus) -> None:
    """Every panel's query is accepted by Prometheus (a query it cannot parse is a 400),
    and the ones about this fleet find it."""
    results = {title: prometheus.query(expr) for title, expr in panel_queries(dashboard())}
    down = results["Down devices (down since = last seen healthy) / A"]
    assert [r["metric"]["device_id"] for r in down] == ["edge-b"]
    (since,) = results["Down devices (down since = last seen healthy) / B"]
    assert since["metric"]["device_id"] == "edge-b"
    assert {r["metric"]["hostname"] for r in results["Power / A"]} == {"edge-a"}
    assert {r["metric"]["hostname"] for r in results["Temperature / A"]} == {"edge-a"}
    assert results["Devices / A"][0]["value"][1] == "2"
    assert results["Down / A"][0]["value"][1] == "1"
    assert results["Leading replicas / A"][0]["value"][1] == "1"


def check_server_alerts_silent(prometheus) -> None:
    firing = {a["labels"]["alertname"] for a in prometheus.api("alerts")["alerts"]}
    assert firing.isdisjoint(
        {
            "EdgeMetricsServerAbsent",
            "EdgeMetricsServerLeadership",
            "EdgeKubernetesSyncStale",
            "EdgeKubernetesSyncFailing",
            "EdgeDeviceConfigDrift",
        }
    ), firing
