"""A fleet of FleetExporters registered with a real server, and bounded waits on what the
server reports about them and about rollouts (tests of staged rollouts)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.support.fleet_exporter import FleetExporter
from tests.support.gunicorn import RunningServer

# Server settings that make a fleet's life quick: a probe round every second.
FAST_MONITOR = {"MONITOR_INTERVAL": "1", "PROBE_TIMEOUT": "1", "RELOAD_TIMEOUT": "1"}
REPORTED = {"device_type": "jetson_orin", "port": 9102, "metrics": {"gpu_power": False}}


def wait_until(what: Callable[[], Any], timeout: float = 30, message: str = "") -> Any:
    """`what()` once it is truthy, polled every 0.1 s for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = what()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {message} (last: {last!r})")


class Fleet:
    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.exporters: dict[str, FleetExporter] = {}

    def add(self, device_id: str, **kwargs: Any) -> FleetExporter:
        exporter = FleetExporter(device_id, self.server.url, **kwargs)
        self.exporters[device_id] = exporter
        body = {**REPORTED, "ip_address": "127.0.0.1", "reload_port": exporter.port}
        answer = self.server.request("PUT", f"/config/{device_id}", json=body)
        assert answer.status_code == 200, answer.text
        exporter.start()
        return exporter

    def revive(self, device_id: str, **kwargs: Any) -> FleetExporter:
        """The device comes back on its port (and loads its config, as at any start)."""
        old = self.exporters[device_id]
        exporter = FleetExporter(device_id, self.server.url, port=old.port, **kwargs)
        self.exporters[device_id] = exporter
        exporter.start()
        return exporter

    def status(self, device_id: str) -> str:
        return self.server.request("GET", f"/devices/{device_id}/status").json()["status"]

    def wait_status(self, status: str, *ids: str, timeout: float = 30) -> None:
        for device_id in ids or list(self.exporters):
            wait_until(
                lambda d=device_id: self.status(d) == status, timeout, f"{device_id} {status}"
            )

    def served(self, device_id: str) -> dict[str, Any]:
        answer = self.server.request("GET", f"/config/{device_id}", auth=False)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def history(self, device_id: str) -> list[dict[str, Any]]:
        return self.server.request("GET", f"/config/{device_id}/history").json()["revisions"]

    def rollout_notes(self, device_id: str) -> list[str]:
        return [r["note"] for r in self.history(device_id) if "rollout" in r["note"]]

    def put_profile(self, name: str, config: dict[str, Any], selector: str = "") -> None:
        body = {"selector": selector, "config": config}
        answer = self.server.request("PUT", f"/profiles/{name}", json=body)
        assert answer.status_code in (200, 201), answer.text

    def start_rollout(self, name: str, config: dict[str, Any], **strategy: Any) -> dict:
        body = {"config": config, "strategy": strategy}
        answer = self.server.request("POST", f"/profiles/{name}/rollouts", json=body)
        assert answer.status_code == 201, answer.text
        return answer.json()

    def rollout(self, rollout_id: int) -> dict[str, Any]:
        answer = self.server.request("GET", f"/rollouts/{rollout_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def act(self, rollout_id: int, action: str) -> Any:
        return self.server.request("POST", f"/rollouts/{rollout_id}/{action}")

    def wait_rollout(
        self, rollout_id: int, check: Callable[[dict], bool], timeout: float = 60, what: str = ""
    ) -> dict[str, Any]:
        return wait_until(
            lambda: body if check(body := self.rollout(rollout_id)) else None, timeout, what
        )

    def states(self, body: dict[str, Any]) -> dict[str, str]:
        return {d["device_id"]: d["state"] for d in body["devices"]}

    def close(self) -> None:
        for exporter in self.exporters.values():
            exporter.stop()
