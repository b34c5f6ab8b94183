"""The contract's Kubernetes routes through HTTP (DRF test client), against the fake API."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from django.db.models.signals import post_init
from django.utils import timezone

from devices.models import Device, DeviceHealth
from k8sbridge.objects import (
    desired_endpoints,
    desired_endpointslice,
    desired_service,
    service_name,
)
from tests.helpers import send
from tests.support.fleet import add_device, set_status

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("doc_networks")]

NS = "monitoring"
NO_CLIENT = {
    "error": "Kubernetes client not initialized",
    "message": "Server not running in Kubernetes environment or kubeconfig not found",
}
CLIENT_ROUTES = [
    ("POST", "/kubernetes/sync"),
    ("POST", "/kubernetes/sync/edge-01"),
    ("GET", "/kubernetes/status"),
    ("GET", "/kubernetes/resources/edge-01"),
    ("DELETE", "/kubernetes/resources/edge-01"),
    ("DELETE", "/kubernetes/cleanup"),
]


@pytest.mark.parametrize(("method", "path"), CLIENT_ROUTES)
def test_routes_answer_503_without_a_client(api, method, path):
    add_device("edge-01")
    response = send(api, method, path)
    assert response.status_code == 503
    # The shared error renderer adds the device id of the path, as on every device route.
    expected = {**NO_CLIENT, "device_id": "edge-01"} if path.endswith("edge-01") else NO_CLIENT
    assert response.json() == expected


def test_health_without_a_client_is_503_with_everything_false(api):
    response = api.get("/kubernetes/health")
    assert response.status_code == 503
    assert response.json() == {
        **NO_CLIENT,
        "kubernetes_available": False,
        "client_initialized": False,
        "namespace_accessible": False,
        "rbac_permissions": {},
    }


@pytest.mark.parametrize(("method", "path"), [*CLIENT_ROUTES, ("GET", "/kubernetes/health"),
                                              ("GET", "/kubernetes/manifests")])
def test_kubernetes_routes_are_operator_routes(anon, method, path):
    assert send(anon, method, path).status_code == 401


def test_manifests_need_no_cluster_and_match_the_desired_objects(api):
    first = add_device("edge-01", ip="192.0.2.1", port=9102)
    second = add_device("Jetson_Lab.3", ip="2001:db8::3")
    add_device("sick", ip="192.0.2.9", status="unhealthy")

    response = api.get("/kubernetes/manifests?namespace=edge")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/yaml")
    text = response.content.decode()
    assert "# Namespace: edge" in text.splitlines()
    assert [d for d in yaml.safe_load_all(text) if d] == [
        desired_service(second, "edge"),
        desired_endpoints(second, "edge", skip_mirror=True),
        desired_endpointslice(second, "edge"),
        desired_service(first, "edge"),
        desired_endpoints(first, "edge", skip_mirror=True),
        desired_endpointslice(first, "edge"),
    ]
    assert text.count("\n---\n") == 6  # every document starts with ---


def test_manifests_in_endpoints_mode_are_service_and_endpoints(api, settings):
    settings.K8S_ENDPOINTS_MODE = "endpoints"
    add_device("edge-01")
    documents = list(yaml.safe_load_all(api.get("/kubernetes/manifests").content))
    assert [d["kind"] for d in documents] == ["Service", "Endpoints"]
    assert documents[0]["metadata"]["namespace"] == "monitoring"


def test_manifests_without_healthy_devices_say_so(api):
    add_device("sick", status="unreachable")
    text = api.get("/kubernetes/manifests").content.decode()
    assert "# No healthy devices: there is nothing to apply." in text
    assert [d for d in yaml.safe_load_all(text) if d] == []


@pytest.mark.parametrize("namespace", ["Monitoring", "-ns", "a" * 64, "ns_1", "ns.1"])
def test_invalid_namespace_is_400(api, namespace):
    response = api.get("/kubernetes/manifests", {"namespace": namespace})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_namespace"


def test_sync_body_namespace_is_validated(api, kube):
    response = send(api, "POST", "/kubernetes/sync", {"namespace": "Bad_NS"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_namespace"
    assert send(api, "POST", "/kubernetes/sync", {"namespace": 5}).status_code == 400
    assert send(api, "POST", "/kubernetes/sync", [1]).json()["error"] == "Invalid request body"
    assert kube.calls == []


def test_sync_route_answers_the_contract(api, kube):
    add_device("edge-01", ip="192.0.2.1")
    add_device("EDGE-01", ip="192.0.2.2")

    response = send(api, "POST", "/kubernetes/sync")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "synced"
    assert body["total_healthy"] == 2
    assert body["created"] == [
        {
            "device_id": "edge-01",
            "service": "edge-device-edge-01",
            "status": "created",
            "actions": [
                "create Service edge-device-edge-01",
                "create Endpoints edge-device-edge-01",
                "create EndpointSlice edge-device-edge-01",
            ],
        }
    ]
    assert body["failed"] == [
        {
            "device_id": "EDGE-01",
            "service": "edge-device-edge-01",
            "status": "failed",
            "error": "name collision: edge-device-edge-01 is already used by device edge-01, "
            "which was registered first",
            "actions": [],
        }
    ]
    assert body["updated"] == body["deleted"] == body["unchanged"] == []
    second = send(api, "POST", "/kubernetes/sync/").json()
    assert [r["device_id"] for r in second["unchanged"]] == ["edge-01"]


def test_sync_takes_the_namespace_from_the_body(api, kube):
    kube.add_namespace("edge")
    add_device("edge-01")
    body = send(api, "POST", "/kubernetes/sync", {"namespace": "edge"}).json()
    assert body["namespace"] == "edge"
    assert kube.names("services", "edge") == ["edge-device-edge-01"]
    assert kube.names("services", "monitoring") == []


def test_sync_dry_run_writes_nothing(api, kube):
    add_device("edge-01")
    body = send(api, "POST", "/kubernetes/sync", {"dry_run": True}).json()
    assert body["dry_run"] is True
    assert [r["device_id"] for r in body["created"]] == ["edge-01"]
    assert kube.writes() == []


def test_sync_of_one_device(api, kube):
    add_device("edge-01")
    add_device("other", ip="192.0.2.2")

    created = send(api, "POST", "/kubernetes/sync/edge-01")
    again = send(api, "POST", "/kubernetes/sync/edge-01")

    assert created.status_code == 200
    assert created.json() == {
        "device_id": "edge-01",
        "service": "edge-device-edge-01",
        "status": "created",
        "changed": True,
        "actions": [
            "create Service edge-device-edge-01",
            "create Endpoints edge-device-edge-01",
            "create EndpointSlice edge-device-edge-01",
        ],
    }
    assert again.json() == {"device_id": "edge-01", "service": "edge-device-edge-01",
                            "status": "updated", "changed": False, "actions": []}
    assert kube.names("services", NS) == ["edge-device-edge-01"]


def test_sync_of_an_unhealthy_device_fails_and_removes_its_objects(api, kube):
    add_device("edge-01")
    send(api, "POST", "/kubernetes/sync/edge-01")
    set_status("edge-01", "unhealthy")

    body = send(api, "POST", "/kubernetes/sync/edge-01").json()

    assert body["status"] == "failed"
    assert body["error"] == "device is not healthy"
    assert body["device_id"] == "edge-01"
    assert kube.names("services", NS) == []


def test_sync_of_a_device_without_ip(api, kube):
    add_device("edge-01", ip="", status="unknown")
    body = send(api, "POST", "/kubernetes/sync/edge-01").json()
    assert (body["status"], body["error"]) == ("failed", "no IP address registered")


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/kubernetes/sync/ghost"), ("GET", "/kubernetes/resources/ghost"),
     ("DELETE", "/kubernetes/resources/ghost")],
)
def test_unknown_device_is_404(api, kube, method, path):
    response = send(api, method, path)
    assert response.status_code == 404
    assert response.json() == {"error": "Device not found", "device_id": "ghost"}


def test_invalid_device_id_is_400(api, kube):
    response = send(api, "POST", "/kubernetes/sync/bad..id")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_device_id"


def test_status_route(api, kube):
    add_device("edge-01", ip="192.0.2.1")
    add_device("ill", ip="192.0.2.2", status="unhealthy")
    add_device("late", ip="192.0.2.3")
    send(api, "POST", "/kubernetes/sync")
    kube.put("services", NS, {"metadata": {"name": "edge-device-gone", "labels": {
        "managed_by": "edge-metrics-server", "device_id": "gone"}},
        "spec": {"clusterIP": "None", "ports": [{"name": "metrics", "port": 9100}]}})
    set_status("late", "healthy", port=9300)

    response = api.get("/kubernetes/status")

    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("kubernetes_enabled", "namespace", "total_k8s_resources",
                                 "total_registered_devices", "synced", "unsynced")} == {
        "kubernetes_enabled": True,
        "namespace": "monitoring",
        "total_k8s_resources": 3,
        "total_registered_devices": 3,
        "synced": 2,
        # "late" needs a write, and the orphan of "gone" a delete: neither is in sync.
        "unsynced": 2,
    }
    rows = {r["device_id"]: r for r in body["resources"]}
    assert rows["edge-01"] == {
        "device_id": "edge-01",
        "service": "edge-device-edge-01",
        "service_exists": True,
        "endpoints_exists": True,
        "endpointslice_exists": True,
        "registered": True,
        "device_status": "healthy",
        "published": True,
        "in_sync": True,
    }
    assert (rows["ill"]["service_exists"], rows["ill"]["in_sync"]) == (False, True)
    assert (rows["late"]["service_exists"], rows["late"]["in_sync"]) == (True, False)
    assert rows["gone"]["registered"] is False
    assert rows["gone"]["service_exists"] is True


def test_status_counts_objects_of_unregistered_devices_as_unsynced(api, kube):
    add_device("edge-01", ip="192.0.2.1")
    send(api, "POST", "/kubernetes/sync")
    kube.put("services", NS, {"metadata": {"name": "edge-device-gone", "labels": {
        "managed_by": "edge-metrics-server", "device_id": "gone"}},
        "spec": {"clusterIP": "None", "ports": [{"name": "metrics", "port": 9100}]}})

    body = api.get("/kubernetes/status").json()

    # A sync would delete the orphan: the cluster is not in sync, and the counts say so.
    assert [(r["device_id"], r["in_sync"]) for r in body["resources"]] == [
        ("edge-01", True), ("gone", False)]
    assert (body["synced"], body["unsynced"]) == (1, 1)
    assert body["synced"] + body["unsynced"] == len(body["resources"])


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/kubernetes/resources/dev-0007"), ("DELETE", "/kubernetes/resources/dev-0007"),
     ("POST", "/kubernetes/sync/dev-0007")],
)
def test_a_per_device_route_does_not_read_the_fleet(api, kube, method, path,
                                                   django_assert_max_num_queries):
    now = timezone.now()
    Device.objects.bulk_create(
        Device(device_id=f"dev-{i:04d}", device_type="jetson_orin", ip_address="192.0.2.7",
               created_at=now, updated_at=now)
        for i in range(400)
    )
    DeviceHealth.objects.bulk_create(
        DeviceHealth(device_id=f"dev-{i:04d}", status="healthy") for i in range(400))
    loaded = []

    def count(sender, instance, **kwargs):
        loaded.append(instance.device_id)

    post_init.connect(count, sender=Device)
    try:
        with django_assert_max_num_queries(8):
            response = send(api, method, path)
    finally:
        post_init.disconnect(count, sender=Device)

    assert response.status_code == 200, response.content
    assert set(loaded) == {"dev-0007"}


def test_health_route_reports_each_permission(api, kube):
    body = api.get("/kubernetes/health").json()
    assert body["kubernetes_available"] is True
    assert body["client_initialized"] is True
    assert body["namespace_accessible"] is True
    assert body["ready"] is True
    assert body["rbac_permissions"] == {
        "namespace": "ok", "services": "ok", "endpoints": "ok", "endpointslices": "ok",
    }


def test_health_with_a_namespaced_role_reports_the_namespace_without_failing(api, kube):
    kube.fail("get", "namespaces", code=403)
    kube.fail("delete", "endpoints", code=403)

    response = api.get("/kubernetes/health")

    assert response.status_code == 200
    body = response.json()
    assert body["kubernetes_available"] is True
    assert body["namespace_accessible"] is False
    assert body["rbac_permissions"]["namespace"].startswith("error: get namespaces/monitoring:"
                                                            " 403 Forbidden")
    assert body["rbac_permissions"]["services"] == "ok"
    assert body["rbac_permissions"]["endpoints"] == (
        "error: cannot delete endpoints in namespace monitoring")
    assert body["ready"] is False


def test_health_in_endpointslice_mode_does_not_require_endpoints(api, kube, settings):
    settings.K8S_ENDPOINTS_MODE = "endpointslice"
    for verb in ("list", "delete"):
        kube.fail(verb, "endpoints", code=403)
    body = api.get("/kubernetes/health").json()
    assert body["ready"] is True
    assert body["rbac_permissions"]["endpoints"].startswith("not required")


def test_resources_route(api, kube):
    add_device("Edge_01", ip="192.0.2.7", port=9102)
    send(api, "POST", "/kubernetes/sync")
    name = service_name("Edge_01")

    response = api.get("/kubernetes/resources/Edge_01")

    assert response.status_code == 200
    assert response.json() == {
        "device_id": "Edge_01",
        "service": {"name": name, "exists": True, "managed": True, "owner": "Edge_01",
                    "cluster_ip": "None", "ports": [{"name": "metrics", "port": 9102}]},
        "endpoints": {"name": name, "exists": True, "managed": True, "owner": "Edge_01",
                      "ready_addresses": ["192.0.2.7:9102"], "not_ready_addresses": []},
        "endpointslice": {"name": name, "exists": True, "managed": True, "owner": "Edge_01",
                          "address_type": "IPv4",
                          "endpoints": [{"addresses": ["192.0.2.7"], "ready": True}]},
        "prometheus_target": f"http://{name}.monitoring.svc:9102/metrics",
    }


def test_resources_of_a_device_not_in_the_cluster(api, kube):
    add_device("edge-01", port=9105)
    body = api.get("/kubernetes/resources/edge-01?namespace=monitoring").json()
    assert body["service"] == {"name": "edge-device-edge-01", "exists": False, "managed": False,
                               "owner": None, "cluster_ip": None, "ports": []}
    assert body["endpoints"]["exists"] is False
    assert body["prometheus_target"] == "http://edge-device-edge-01.monitoring.svc:9105/metrics"


def test_delete_resources_route(api, kube):
    add_device("edge-01")
    add_device("edge-02", ip="192.0.2.2")
    send(api, "POST", "/kubernetes/sync")

    response = send(api, "DELETE", "/kubernetes/resources/edge-01")

    assert response.status_code == 200
    assert response.json() == {
        "device_id": "edge-01",
        "service": "edge-device-edge-01",
        "status": "deleted",
        "actions": [
            "delete EndpointSlice edge-device-edge-01",
            "delete Endpoints edge-device-edge-01",
            "delete Service edge-device-edge-01",
        ],
    }
    assert kube.names("services", NS) == ["edge-device-edge-02"]


def test_delete_resources_leaves_foreign_objects(api, kube):
    kube.put("services", NS, {"metadata": {"name": "edge-device-edge-01"},
                              "spec": {"ports": [{"port": 80}]}})
    add_device("edge-01")
    body = send(api, "DELETE", "/kubernetes/resources/edge-01").json()
    assert body["status"] == "failed"
    assert "not managed by edge-metrics-server" in body["error"]
    assert kube.names("services", NS) == ["edge-device-edge-01"]
    assert kube.requests("delete") == []


def test_delete_resources_of_a_collision_loser_leaves_the_winners_objects(api, kube):
    add_device("edge-01", ip="192.0.2.1")
    add_device("EDGE-01", ip="192.0.2.2")
    send(api, "POST", "/kubernetes/sync")
    body = send(api, "DELETE", "/kubernetes/resources/EDGE-01").json()
    assert body["status"] == "failed"
    assert "belongs to device edge-01" in body["error"]
    assert kube.names("services", NS) == ["edge-device-edge-01"]


def test_delete_resources_forbidden_is_reported(api, kube):
    add_device("edge-01")
    send(api, "POST", "/kubernetes/sync")
    kube.fail("delete", "services", code=403)
    body = send(api, "DELETE", "/kubernetes/resources/edge-01").json()
    assert body["status"] == "failed"
    assert body["error"].startswith("delete services/edge-device-edge-01")
    assert "403 Forbidden" in body["error"]


def test_cleanup_route_deletes_all_three_kinds_and_nothing_else(api, kube):
    add_device("a", ip="192.0.2.1")
    add_device("b", ip="192.0.2.2")
    send(api, "POST", "/kubernetes/sync")
    kube.put("services", NS, {"metadata": {"name": "keep-me", "labels": {"app": "edge-exporter"}},
                              "spec": {"ports": [{"port": 80}]}})

    response = send(api, "DELETE", "/kubernetes/cleanup")

    assert response.status_code == 200
    assert response.json() == {
        "status": "cleaned",
        "namespace": "monitoring",
        "dry_run": False,
        "deleted_services": ["edge-device-a", "edge-device-b"],
        "deleted_endpoints": ["edge-device-a", "edge-device-b"],
        "deleted_endpointslices": ["edge-device-a", "edge-device-b"],
        "failed": [],
        "errors": [],
    }
    assert kube.names("services", NS) == ["keep-me"]
    assert kube.names("endpoints", NS) == kube.names("endpointslices", NS) == []


def test_unreachable_api_server_is_503(api, settings, tmp_path):
    from tests.support.kube_api import serve

    with serve() as kube:
        settings.KUBECONFIG = str(kube.write_kubeconfig(tmp_path / "kubeconfig"))
    response = send(api, "POST", "/kubernetes/sync")
    assert response.status_code == 503
    assert response.json()["error"] == "Kubernetes API unreachable"
    health = api.get("/kubernetes/health")
    assert health.status_code == 200
    assert health.json()["kubernetes_available"] is False


def test_trailing_slashes_are_accepted(api, kube):
    add_device("edge-01")
    assert send(api, "POST", "/kubernetes/sync/edge-01/").status_code == 200
    assert api.get("/kubernetes/status/").status_code == 200
    assert api.get("/kubernetes/resources/edge-01/").status_code == 200
    assert api.get("/kubernetes/manifests/").status_code == 200


def test_the_error_table_loads_without_the_kubernetes_client():
    """ready() registers the bridge's errors in every process; that must not load the
    (heavy) Kubernetes client."""
    code = (
        "import sys, django; from django.conf import settings; settings.configure(); "
        "import k8sbridge.api.errors; "
        "sys.exit('kubernetes' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
