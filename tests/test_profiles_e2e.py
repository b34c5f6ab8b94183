"""Profiles against a real server and exporters that behave like the real one: told to
reload, they fetch their config and PUT it back whole, with the metric names they found."""

from __future__ import annotations

import requests

from tests.support.exporters import FakeExporter
from tests.support.gunicorn import run_server

FAST = {"PROBE_TIMEOUT": "1", "RELOAD_TIMEOUT": "2", "PROXY_TIMEOUT": "1"}


def exporter_like(server, exporters, device_id: str, device_type: str) -> FakeExporter:
    """Re-fetches on `POST /reload` (before answering, so a test needs no wait), runs what
    it fetched, and PUTs it back with a metric it just discovered set to false."""
    exporter = exporters(device_type=device_type)
    exporter.running_config = {
        "device_type": device_type,
        "metrics": {"power": True},
        "port": 9102,
        "reload_port": exporter.port,
    }

    def on_request(method: str, path: str) -> None:
        if (method, path) != ("POST", "/reload"):
            return
        fetched = requests.get(f"{server.url}/config/{device_id}", timeout=5).json()
        exporter.running_config = fetched
        found = {**fetched, "metrics": {**(fetched.get("metrics") or {}), "found_later": False}}
        requests.put(f"{server.url}/config/{device_id}", json=found, timeout=5)

    exporter.on_request = on_request
    body = {**exporter.running_config, "ip_address": "127.0.0.1"}
    answer = server.request("PUT", f"/config/{device_id}", json=body)
    assert answer.status_code == 200, answer.text
    return exporter


def test_a_profile_reaches_the_matching_exporters_and_survives_their_put_back(
    tmp_path, exporters
):
    with run_server(tmp_path, env=FAST) as server:
        orin_1 = exporter_like(server, exporters, "orin-1", "jetson_orin")
        orin_2 = exporter_like(server, exporters, "orin-2", "jetson_orin")
        plug = exporter_like(server, exporters, "plug-1", "shelly")
        reloads_before = {e: e.reloads for e in (orin_1, orin_2, plug)}

        body = {
            "selector": "device_type=jetson_orin",
            "priority": 10,
            "config": {"metrics": {"gpu_power": True}, "interval": 5},
        }
        answer = server.request("PUT", "/profiles/gpu", json=body)
        assert answer.status_code == 201, answer.text
        assert sorted(answer.json()["devices_changed"]) == ["orin-1", "orin-2"]
        for exporter in (orin_1, orin_2):
            assert exporter.reloads == reloads_before[exporter] + 1
            # What the exporter runs now: the profile's keys, and its own.
            assert exporter.running_config["interval"] == 5
            assert exporter.running_config["metrics"] == {
                "power": True, "found_later": False, "gpu_power": True,
            }  # fmt: skip
        assert plug.reloads == reloads_before[plug]
        assert "interval" not in plug.running_config

        # Its PUT back kept the profile's keys and the name it found.
        served = requests.get(f"{server.url}/config/orin-1", timeout=5).json()
        assert served["metrics"] == {"power": True, "gpu_power": True, "found_later": False}
        assert served["interval"] == 5

        # An operator's value for one device wins over the profile's next version.
        server.request("PATCH", "/config/orin-1", json={"interval": 9})
        body["config"] = {"metrics": {"gpu_power": True}, "interval": 7}
        server.request("PUT", "/profiles/gpu", json=body)
        assert orin_1.running_config["interval"] == 9
        assert orin_2.running_config["interval"] == 7

        explained = server.request("GET", "/config/orin-2?explain=true").json()
        assert explained["keys"]["interval"] == {"layer": "profile", "profile": "gpu", "version": 2}
        assert explained["keys"]["metrics.found_later"] == {"layer": "device"}
