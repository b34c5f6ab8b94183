"""End to end: gunicorn as a real process syncing into the fake Kubernetes API server."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.support.gunicorn import run_server
from tests.support.kube_api import serve

pytestmark = pytest.mark.e2e

# Devices are written through the ORM in the server's own database, never through the API:
# their documentation addresses must never be contacted.
ARRANGE = """
from datetime import datetime, timedelta, timezone
from devices.models import Device, DeviceHealth
t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
for n, (device_id, ip, status) in enumerate([
    ("edge-01", "192.0.2.1", "healthy"),
    ("Jetson_Lab.3", "2001:db8::3", "healthy"),
    ("sick", "192.0.2.9", "unreachable"),
]):
    d = Device.objects.create(device_id=device_id, device_type="jetson_orin", ip_address=ip,
                              port=9102, created_at=t0 + timedelta(seconds=n),
                              updated_at=t0 + timedelta(seconds=n))
    DeviceHealth.objects.create(device=d, status=status)
"""

# The documentation addresses count as device networks, and no monitor runs: nothing may
# ever contact them.
CLUSTER_ENV = {
    "DEVICE_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128,192.0.2.0/24,2001:db8::/32",
    "MONITOR_ENABLED": "false",
}


def test_server_syncs_into_a_cluster_that_appears_after_it_started(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    env = CLUSTER_ENV | {"KUBECONFIG": str(kubeconfig)}
    with serve() as kube, run_server(tmp_path, env=env) as server:
        arranged = server.manage("shell", "-c", ARRANGE)
        assert arranged.returncode == 0, arranged.stderr

        # No kubeconfig yet: the contract's 503, and the manifests still work.
        before = server.request("POST", "/kubernetes/sync")
        assert before.status_code == 503
        assert before.json()["error"] == "Kubernetes client not initialized"
        manifests = server.request("GET", "/kubernetes/manifests")
        assert manifests.status_code == 200
        assert len([d for d in yaml.safe_load_all(manifests.text) if d]) == 6

        kube.write_kubeconfig(kubeconfig)
        first = server.request("POST", "/kubernetes/sync", json={"namespace": "monitoring"})
        assert first.status_code == 200, first.text
        assert sorted(r["device_id"] for r in first.json()["created"]) == [
            "Jetson_Lab.3", "edge-01"]
        assert len(kube.names("services")) == 2
        assert kube.get("endpoints", "monitoring", "edge-device-edge-01")["subsets"][0][
            "addresses"] == [{"ip": "192.0.2.1"}]

        kube.clear_log()
        second = server.request("POST", "/kubernetes/sync")
        assert sorted(r["device_id"] for r in second.json()["unchanged"]) == [
            "Jetson_Lab.3", "edge-01"]
        assert kube.writes() == []

        status = server.request("GET", "/kubernetes/status").json()
        assert (status["synced"], status["unsynced"]) == (3, 0)
        resources = server.request("GET", "/kubernetes/resources/edge-01").json()
        assert resources["prometheus_target"] == (
            "http://edge-device-edge-01.monitoring.svc:9102/metrics")
        assert server.request("GET", "/kubernetes/health").json()["ready"] is True

        command = server.manage("sync_kubernetes", "--output", "json")
        assert command.returncode == 0, command.stderr
        assert len(json.loads(command.stdout)["unchanged"]) == 2

        cleaned = server.request("DELETE", "/kubernetes/cleanup").json()
        assert len(cleaned["deleted_endpointslices"]) == 2
        assert kube.names("services") == []
