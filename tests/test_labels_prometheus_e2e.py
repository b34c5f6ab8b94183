"""End to end with a real Prometheus: a device's labels reach the target labels of the
series scraped from it through http_sd (`GET /prometheus/targets`), names sanitised; a
label change reaches them at the next refresh; `?selector=` in the discovery URL picks
which devices Prometheus scrapes."""

from __future__ import annotations

import pytest

from tests.support.gunicorn import (
    fresh_database,
    migrate,
    server_env,
    start_gunicorn,
    stop_gunicorn,
    wait_ready,
)
from tests.support.prometheus import run_prometheus, tool
from tests.test_prometheus_e2e import SERVER_ENV, STEP_TIMEOUT, start_exporter

pytestmark = pytest.mark.e2e

POWER = "jetson_power_vdd_gpu_soc_watts"


def discovery(server, job: str, query: str = "") -> dict:
    return {
        "job_name": job,
        "http_sd_configs": [
            {
                "url": f"{server.url}/prometheus/targets{query}",
                "refresh_interval": "1s",
                "authorization": {"type": "Bearer", "credentials": server.token},
            }
        ],
    }


def series_labels(prometheus, job: str) -> dict[str, dict[str, str]]:
    """The labels of the power series of each device scraped by `job`."""
    found = prometheus.query(f'{POWER}{{job="{job}"}}')
    return {r["metric"]["device_id"]: r["metric"] for r in found}


def test_device_labels_become_target_labels_of_the_scraped_series(tmp_path):
    tool("prometheus")
    exporters = {name: start_exporter(name) for name in ("edge-a", "edge-b")}
    server = None
    try:
        with fresh_database(tmp_path) as db_env:
            env = server_env(db_env, workers=2, **SERVER_ENV)
            migrate(env)
            server = start_gunicorn(env, tmp_path / "server.log")
            wait_ready(server, 90)
            for name, exporter in exporters.items():
                body = {
                    "device_type": "jetson_orin",
                    "ip_address": "127.0.0.1",
                    "port": exporter.port,
                    "reload_port": exporter.port,
                }
                assert server.request("PUT", f"/config/{name}", json=body).status_code == 200
            labels = {"edge-a": {"site": "lab-3", "example.com/rack": "r2"}, "edge-b": {}}
            for name, wanted in labels.items():
                answer = server.request("PUT", f"/devices/{name}/labels", json={"labels": wanted})
                assert answer.status_code == 200, answer.text
            config = {
                "global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
                "scrape_configs": [
                    discovery(server, "all"),
                    discovery(server, "lab", "?selector=site%3Dlab-3"),
                ],
            }
            with run_prometheus(tmp_path, config, []) as prometheus:
                check_labels_on_series(prometheus)
                check_label_change_reaches_prometheus(prometheus, server)
    finally:
        if server is not None:
            stop_gunicorn(server)
        for exporter in exporters.values():
            exporter.close()


def check_labels_on_series(prometheus) -> None:
    def both_scraped():
        found = series_labels(prometheus, "all")
        return found if set(found) == {"edge-a", "edge-b"} else None

    found = prometheus.eventually(both_scraped, timeout=STEP_TIMEOUT, what="both scraped")
    assert found["edge-a"]["site"] == "lab-3"
    assert found["edge-a"]["example_com_rack"] == "r2"
    assert found["edge-a"]["device_type"] == "jetson_orin"
    assert "site" not in found["edge-b"]

    def only_lab_scraped():
        found = series_labels(prometheus, "lab")
        return found if set(found) == {"edge-a"} else None

    prometheus.eventually(
        only_lab_scraped, timeout=STEP_TIMEOUT, what="the selector's job scrapes edge-a only"
    )
    targets = prometheus.api("targets", state="active")["activeTargets"]
    lab = [t["labels"]["device_id"] for t in targets if t["labels"]["job"] == "lab"]
    assert lab == ["edge-a"]


def check_label_change_reaches_prometheus(prometheus, server) -> None:
    answer = server.request("PUT", "/devices/edge-b/labels", json={"labels": {"site": "lab-3"}})
    assert answer.status_code == 200

    def edge_b_labelled():
        found = series_labels(prometheus, "lab")
        if set(found) == {"edge-a", "edge-b"} and found["edge-b"].get("site") == "lab-3":
            return found
        return None

    prometheus.eventually(
        edge_b_labelled,
        timeout=STEP_TIMEOUT,
        what="edge-b's new label on its series, and in the selector's job",
    )
