"""The bridge's scenarios against a real cluster (EMS_TEST_KUBECONFIG; see README).

Devices use documentation addresses: the cluster accepts them as endpoints and nobody
ever contacts them.
"""

from __future__ import annotations

import pytest

from k8sbridge import services
from k8sbridge.client import kube_api
from k8sbridge.objects import (
    ENDPOINTS,
    ENDPOINTSLICE,
    MANAGED_SELECTOR,
    SERVICE,
    service_name,
)
from tests.helpers import send
from tests.support.fleet import add_device, set_status

pytestmark = pytest.mark.django_db


def managed(kind, namespace):
    return sorted(o["metadata"]["name"] for o in kube_api().list(kind, namespace, kind.selector))


def test_sync_is_level_based_on_a_real_cluster(cluster_namespace):
    ns = cluster_namespace
    add_device("edge-01", ip="192.0.2.1")
    add_device("Jetson_Lab.3", ip="2001:db8::3", port=9102)
    add_device("EDGE-01", ip="192.0.2.2")

    first = services.cluster_sync(namespace=ns)

    assert sorted(i.device_id for i in first.created) == ["Jetson_Lab.3", "edge-01"]
    assert [i.device_id for i in first.failed] == ["EDGE-01"]
    for kind in (SERVICE, ENDPOINTS, ENDPOINTSLICE):
        assert len(managed(kind, ns)) == 2
    service = kube_api().get(SERVICE, ns, "edge-device-edge-01")
    assert service["spec"]["clusterIP"] == "None"
    endpoint_slice = kube_api().get(ENDPOINTSLICE, ns, "edge-device-edge-01")
    assert endpoint_slice["metadata"]["ownerReferences"][0]["uid"] == service["metadata"]["uid"]

    versions = {o["metadata"]["name"]: o["metadata"]["resourceVersion"]
                for o in kube_api().list(SERVICE, ns, MANAGED_SELECTOR)}
    second = services.cluster_sync(namespace=ns)
    assert sorted(i.device_id for i in second.unchanged) == ["Jetson_Lab.3", "edge-01"]
    assert versions == {o["metadata"]["name"]: o["metadata"]["resourceVersion"]
                        for o in kube_api().list(SERVICE, ns, MANAGED_SELECTOR)}

    set_status("edge-01", "unreachable")
    third = services.cluster_sync(namespace=ns)
    assert [i.device_id for i in third.deleted] == ["edge-01"]
    assert managed(SERVICE, ns) == [service_name("Jetson_Lab.3")]

    cleaned = services.cluster_cleanup(namespace=ns)
    assert len(cleaned.deleted_services) == 1
    assert managed(SERVICE, ns) == []


def test_not_ready_policy_and_routes_on_a_real_cluster(cluster_namespace, api, settings):
    settings.K8S_UNHEALTHY_POLICY = "not-ready"
    ns = cluster_namespace
    add_device("edge-01", ip="192.0.2.1", status="unhealthy")

    body = send(api, "POST", "/kubernetes/sync", {"namespace": ns}).json()
    assert [r["device_id"] for r in body["created"]] == ["edge-01"]

    resources = api.get(f"/kubernetes/resources/edge-01?namespace={ns}").json()
    assert resources["endpoints"]["not_ready_addresses"] == ["192.0.2.1:9100"]
    assert resources["endpointslice"]["endpoints"] == [{"addresses": ["192.0.2.1"],
                                                        "ready": False}]
    health = api.get(f"/kubernetes/health?namespace={ns}").json()
    assert health["kubernetes_available"] is True
    assert health["rbac_permissions"]["services"] == "ok"


def test_unlabelled_objects_are_left_alone_on_a_real_cluster(cluster_namespace):
    from kubernetes import client as k8s

    ns = cluster_namespace
    core = k8s.CoreV1Api(kube_api().api_client)
    core.create_namespaced_service(ns, {
        "metadata": {"name": "edge-device-edge-01"},
        "spec": {"ports": [{"port": 80}]},
    })
    add_device("edge-01", ip="192.0.2.1")

    result = services.cluster_sync(namespace=ns)

    assert "not managed by edge-metrics-server" in result.failed[0].error
    assert core.read_namespaced_service("edge-device-edge-01", ns).metadata.labels is None
