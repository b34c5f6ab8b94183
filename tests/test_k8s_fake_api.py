"""The fake Kubernetes API server answers the official client as the real one would.

The bridge's tests are only as good as this fake, so its behaviour is pinned here.
"""

from __future__ import annotations

import time

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from k8sbridge.client import kube_api
from k8sbridge.exceptions import KubeError
from k8sbridge.objects import ENDPOINTS, ENDPOINTSLICE, SERVICE

NS = "monitoring"


def service(name: str, labels: dict | None = None, port: int = 9100) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS, "labels": labels or {}},
        "spec": {"clusterIP": "None", "ports": [{"name": "metrics", "port": port}]},
    }


def endpoints(name: str, ip: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name, "namespace": NS},
        "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "metrics", "port": 9100}]}],
    }


def test_apply_creates_then_bumps_resource_version_only_on_change(kube):
    api = kube_api()
    created = api.apply(SERVICE, service("a"))
    again = api.apply(SERVICE, service("a"))
    changed = api.apply(SERVICE, service("a", port=9200))
    assert created["metadata"]["resourceVersion"] == again["metadata"]["resourceVersion"]
    assert int(changed["metadata"]["resourceVersion"]) > int(
        created["metadata"]["resourceVersion"])
    assert changed["metadata"]["uid"] == created["metadata"]["uid"]
    # Server defaults, as a real API server fills them in.
    assert changed["spec"]["type"] == "ClusterIP"
    assert changed["spec"]["ports"][0] == {"name": "metrics", "port": 9200, "targetPort": 9200,
                                           "protocol": "TCP"}


def test_apply_removes_labels_the_manager_stopped_applying_and_keeps_others(kube):
    api = kube_api()
    api.apply(SERVICE, service("a", {"app": "x", "old": "1"}))
    kube.put("services", NS, service("b"))
    stored = kube.store[("services", NS, "a")]
    stored.obj["metadata"]["labels"]["team"] = "ops"  # someone else's label
    result = api.apply(SERVICE, service("a", {"app": "x"}))
    assert result["metadata"]["labels"] == {"app": "x", "team": "ops"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("managed_by=edge-metrics-server", ["m1", "m2"]),
        ("managed_by==edge-metrics-server,tier=a", ["m1"]),
        ("managed_by", ["m1", "m2", "other"]),
        ("!managed_by", ["plain"]),
        ("tier!=a", ["m2", "other", "plain"]),
        ("tier in (a, b)", ["m1", "m2"]),
        ("tier notin (a)", ["m2", "other", "plain"]),
        ("", ["m1", "m2", "other", "plain"]),
    ],
)
def test_list_honours_label_selectors(kube, selector, expected):
    kube.put("services", NS, service("m1", {"managed_by": "edge-metrics-server", "tier": "a"}))
    kube.put("services", NS, service("m2", {"managed_by": "edge-metrics-server", "tier": "b"}))
    kube.put("services", NS, service("other", {"managed_by": "someone-else"}))
    kube.put("services", NS, service("plain"))
    items = kube_api().list(SERVICE, NS, selector)
    assert [i["metadata"]["name"] for i in items] == expected
    assert all("kind" not in i for i in items)  # like the real server's list items


def test_missing_and_duplicate_objects_are_status_objects(kube):
    core = k8s.CoreV1Api(kube_api().api_client)
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_service("nope", NS)
    assert missing.value.status == 404
    assert '"reason":"NotFound"' in missing.value.body.replace(" ", "")
    core.create_namespaced_service(NS, service("dup"))
    with pytest.raises(ApiException) as duplicate:
        core.create_namespaced_service(NS, service("dup"))
    assert duplicate.value.status == 409
    assert "AlreadyExists" in duplicate.value.body
    assert kube_api().get(SERVICE, NS, "nope") is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (service("Edge_01"), "a DNS-1035 label must consist"),
        (service("1abc"), "a DNS-1035 label must consist"),
        (service("a" * 64), "must be no more than 63 characters"),
        (service("ok", {"device_id": "x" * 64}), "must be no more than 63 characters"),
        (service("ok", {"device_type": "jetson orin"}), "a valid label must be"),
        (endpoints("ok", "127.0.0.1"), "may not be in the loopback range"),
        (endpoints("ok", "::1"), "may not be in the loopback range"),
        (endpoints("ok", "169.254.1.1"), "may not be in the link-local range"),
        (endpoints("ok", "fe80::1"), "may not be in the link-local range"),
        (endpoints("ok", "0.0.0.0"), "may not be unspecified"),
        (endpoints("ok", "224.0.0.1"), "link-local multicast"),
    ],
)
def test_validation_the_bridge_could_trip_on_is_422(kube, body, message):
    kind = SERVICE if body["kind"] == "Service" else ENDPOINTS
    with pytest.raises(KubeError) as failure:
        kube_api().apply(kind, body)
    assert failure.value.status == 422
    assert failure.value.reason == "Invalid"
    assert message in failure.value.message


def test_documentation_addresses_are_accepted(kube):
    kube_api().apply(ENDPOINTS, endpoints("v4", "192.0.2.1"))
    kube_api().apply(ENDPOINTS, endpoints("v6", "2001:db8::1"))
    assert kube.names("endpoints") == ["v4", "v6"]


def test_endpointslice_address_type_is_immutable_and_checked(kube):
    body = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "s", "namespace": NS},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["192.0.2.1"], "conditions": {"ready": True}}],
        "ports": [{"name": "metrics", "port": 9100}],
    }
    kube_api().apply(ENDPOINTSLICE, body)
    with pytest.raises(KubeError, match="field is immutable"):
        kube_api().apply(ENDPOINTSLICE, {**body, "addressType": "IPv6",
                                         "endpoints": [{"addresses": ["2001:db8::1"]}]})
    with pytest.raises(KubeError, match="must be a valid IPv4 address"):
        kube_api().apply(ENDPOINTSLICE, {**body, "endpoints": [{"addresses": ["2001:db8::1"]}]})


def test_apply_into_a_missing_namespace_is_404(kube):
    body = service("a")
    body["metadata"]["namespace"] = "nowhere"
    with pytest.raises(KubeError) as failure:
        kube_api().apply(SERVICE, body)
    assert failure.value.status == 404
    assert 'namespaces "nowhere" not found' in failure.value.message


def test_apply_without_force_conflicts_with_another_manager(kube):
    kube.put("services", NS, service("a"), manager="kubectl")
    core = k8s.CoreV1Api(kube_api().api_client)
    with pytest.raises(ApiException) as conflict:
        core.patch_namespaced_service("a", NS, service("a", port=9300),
                                      field_manager="edge-metrics-server",
                                      _content_type="application/apply-patch+yaml")
    assert conflict.value.status == 409


def test_injected_failures_and_the_request_log(kube):
    kube.fail("delete", "services", "a", code=403, times=1)
    kube_api().apply(SERVICE, service("a"))
    with pytest.raises(KubeError, match="403 Forbidden"):
        kube_api().delete(SERVICE, NS, "a")
    assert kube_api().delete(SERVICE, NS, "a") is True
    assert kube_api().delete(SERVICE, NS, "a") is False  # already gone: 404
    assert [(c.verb, c.status) for c in kube.calls] == [
        ("patch", 201), ("delete", 403), ("delete", 200), ("delete", 404)]
    assert len(kube.writes()) == 4


def test_a_busy_server_is_asked_again_until_the_client_gives_up(kube, monkeypatch):
    from k8sbridge import client as client_module

    monkeypatch.setattr(client_module, "BUSY_BACKOFF", 0.01)
    kube_api().apply(SERVICE, service("a"))
    kube.fail("delete", "services", "a", code=500, times=client_module.BUSY_ATTEMPTS)
    with pytest.raises(KubeError, match="500 InternalError"):
        kube_api().delete(SERVICE, NS, "a")
    kube.fail("delete", "services", "a", code=503, times=client_module.BUSY_ATTEMPTS - 1)
    assert kube_api().delete(SERVICE, NS, "a") is True
    deletes = [c.status for c in kube.requests("delete")]
    assert deletes == [500] * 4 + [503] * 3 + [200]


def test_lists_come_in_pages_that_continue_where_the_last_ended(kube, monkeypatch):
    from k8sbridge import client as client_module

    monkeypatch.setattr(client_module, "LIST_PAGE_SIZE", 2)
    for name in ("e", "a", "d", "b", "c"):
        kube.put("services", NS, service(name, {"app": "edge-exporter"}))
    kube.put("services", NS, {"metadata": {"name": "other"}, "spec": {"ports": [{"port": 1}]}})
    names = [item["metadata"]["name"] for item in kube_api().list(SERVICE, NS, "app=edge-exporter")]
    assert names == ["a", "b", "c", "d", "e"]
    pages = kube.requests("list", "services")
    assert [c.query.get("limit") for c in pages] == ["2", "2", "2"]
    assert "continue" not in pages[0].query and all("continue" in c.query for c in pages[1:])
    assert kube_api().names(SERVICE, NS) == {"a", "b", "c", "d", "e", "other"}


def test_a_page_says_how_many_items_remain_and_a_foreign_token_is_refused(kube):
    for name in ("a", "b", "c"):
        kube.put("services", NS, service(name))
    core = k8s.CoreV1Api(kube_api().api_client)
    first = core.list_namespaced_service(NS, limit=2)
    assert [s.metadata.name for s in first.items] == ["a", "b"]
    assert first.metadata.remaining_item_count == 1
    rest = core.list_namespaced_service(NS, limit=2, _continue=first.metadata._continue)
    assert [s.metadata.name for s in rest.items] == ["c"]
    assert rest.metadata._continue is None
    with pytest.raises(ApiException) as refused:
        k8s.CoreV1Api(kube_api().api_client).list_namespaced_endpoints(
            NS, limit=2, _continue=first.metadata._continue
        )
    assert refused.value.status == 400


def test_latency_delays_every_answer(kube):
    kube.latency = 0.2
    started = time.monotonic()
    kube_api().list(SERVICE, NS, "app=edge-exporter")
    assert time.monotonic() - started >= 0.2


def test_requests_without_the_token_are_401(kube):
    configuration = k8s.Configuration(host=kube.url)
    core = k8s.CoreV1Api(k8s.ApiClient(configuration))
    with pytest.raises(ApiException) as failure:
        core.list_namespaced_service(NS)
    assert failure.value.status == 401


def test_deleting_a_service_removes_its_slices(kube):
    api = kube_api()
    owner = api.apply(SERVICE, service("a"))
    api.apply(ENDPOINTSLICE, {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "a", "namespace": NS, "ownerReferences": [
            {"apiVersion": "v1", "kind": "Service", "name": "a",
             "uid": owner["metadata"]["uid"]}]},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["192.0.2.1"]}],
    })
    api.delete(SERVICE, NS, "a")
    assert kube.names("endpointslices") == []
