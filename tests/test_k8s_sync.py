"""The reconcile against a fake Kubernetes API server that the official client talks to."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from k8sbridge import client as client_module
from k8sbridge import services
from k8sbridge.api.serializers import SyncResponseSerializer
from k8sbridge.client import kube_api
from k8sbridge.exceptions import ClientUnavailable, ClusterUnreachable
from k8sbridge.models import SyncRun
from k8sbridge.objects import service_name
from k8sbridge.services import cluster_sync
from tests.support.fleet import add_device, set_status
from tests.support.kube_api import serve

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("doc_networks")]

NS = "monitoring"
KINDS = ("services", "endpoints", "endpointslices")


def sync(**kwargs):
    return cluster_sync(namespace=NS, **kwargs)


def ids(items):
    return sorted(item.device_id for item in items)


def objects(kube, resource="services"):
    return kube.names(resource, NS)


def test_first_sync_creates_all_three_kinds_per_healthy_device(kube):
    add_device("edge-01", ip="192.0.2.1")
    add_device("pi-6", ip="2001:db8::6", port=9102)
    add_device("sick", ip="192.0.2.3", status="unhealthy")
    add_device("no-ip", ip="", status="unknown")

    result = sync()

    assert ids(result.created) == ["edge-01", "pi-6"]
    assert result.failed == [] and result.updated == [] and result.deleted == []
    assert result.total_healthy == 2
    for resource in KINDS:
        assert objects(kube, resource) == ["edge-device-edge-01", "edge-device-pi-6"]
    service = kube.get("services", NS, "edge-device-pi-6")
    endpoint_slice = kube.get("endpointslices", NS, "edge-device-pi-6")
    assert endpoint_slice["addressType"] == "IPv6"
    assert endpoint_slice["metadata"]["ownerReferences"][0]["uid"] == service["metadata"]["uid"]
    assert kube.get("endpoints", NS, "edge-device-pi-6")["subsets"][0]["ports"][0]["port"] == 9102
    # Every write is a server-side apply by our field manager, forced.
    patches = kube.requests("patch")
    assert len(patches) == 6
    assert {(c.content_type, c.query["fieldManager"], c.query["force"]) for c in patches} == {
        ("application/apply-patch+yaml", "edge-metrics-server", "true")
    }


def test_second_sync_writes_nothing_and_lists_once_per_kind(kube):
    for i in range(5):
        add_device(f"edge-{i}", ip=f"192.0.2.{i + 1}")
    sync()
    kube.clear_log()

    result = sync()

    assert kube.writes() == []
    # The kinds are listed at once: in no particular order.
    assert sorted((c.verb, c.resource) for c in kube.calls) == sorted(("list", r) for r in KINDS)
    assert all(
        c.query["labelSelector"].startswith("managed_by=edge-metrics-server") for c in kube.calls
    )
    assert ids(result.unchanged) == [f"edge-{i}" for i in range(5)]
    assert result.created == result.updated == result.deleted == result.failed == []
    assert SyncResponseSerializer(result).data["unchanged"][0] == {
        "device_id": "edge-0", "service": "edge-device-edge-0", "status": "unchanged",
        "actions": [],
    }


def test_ten_changed_devices_make_exactly_their_writes(kube):
    for i in range(30):
        add_device(f"d{i:02}", ip=f"192.0.2.{i + 1}")
    sync()
    kube.clear_log()
    changed = [f"d{i:02}" for i in range(0, 30, 3)]
    for device_id in changed:
        set_status(device_id, "healthy", ip=f"192.0.2.{100 + int(device_id[1:])}")

    result = sync()

    assert ids(result.updated) == changed
    assert len(result.unchanged) == 20
    # The address is in Endpoints and EndpointSlice; the Service does not change.
    assert sorted((c.resource, c.name) for c in kube.writes()) == sorted(
        (resource, f"edge-device-{d}") for d in changed for resource in ("endpoints",
                                                                          "endpointslices")
    )
    assert len(kube.requests("list")) == 3


def test_port_change_rewrites_all_three_objects(kube):
    add_device("edge-01")
    sync()
    kube.clear_log()
    set_status("edge-01", "healthy", port=9200)

    result = sync()

    assert [i.actions for i in result.updated] == [[
        "update Service edge-device-edge-01",
        "update Endpoints edge-device-edge-01",
        "update EndpointSlice edge-device-edge-01",
    ]]
    assert kube.get("services", NS, "edge-device-edge-01")["spec"]["ports"][0]["port"] == 9200


def test_devices_no_longer_healthy_or_registered_lose_their_objects(kube):
    add_device("stays", ip="192.0.2.1")
    add_device("falls-ill", ip="192.0.2.2")
    gone = add_device("removed", ip="192.0.2.3")
    sync()
    set_status("falls-ill", "unreachable")
    gone.delete()

    result = sync()

    assert [(i.device_id, i.service, i.status) for i in result.deleted] == [
        ("falls-ill", "edge-device-falls-ill", "deleted"),
        ("removed", "edge-device-removed", "deleted"),
    ]
    for resource in KINDS:
        assert objects(kube, resource) == ["edge-device-stays"]
    assert SyncResponseSerializer(result).data["deleted"][0] == {
        "device_id": "falls-ill",
        "service": "edge-device-falls-ill",
        "status": "deleted",
        "actions": [
            "delete EndpointSlice edge-device-falls-ill",
            "delete Endpoints edge-device-falls-ill",
            "delete Service edge-device-falls-ill",
        ],
    }


def test_objects_without_our_label_are_never_touched(kube):
    foreign_service = {"metadata": {"name": "edge-device-edge-01", "labels": {"team": "ops"}},
                       "spec": {"clusterIP": "None", "ports": [{"name": "web", "port": 80}]}}
    kube.put("services", NS, foreign_service)
    kube.put("services", NS, {"metadata": {"name": "unrelated", "labels": {"app": "edge-exporter"}},
                              "spec": {"ports": [{"port": 80}]}})
    add_device("edge-01")
    add_device("edge-02", ip="192.0.2.2")
    before = kube.get("services", NS, "edge-device-edge-01")

    result = sync()

    assert ids(result.created) == ["edge-02"]
    [failure] = result.failed
    assert failure.device_id == "edge-01"
    assert "not managed by edge-metrics-server" in failure.error
    assert kube.get("services", NS, "edge-device-edge-01") == before
    assert "unrelated" in objects(kube)
    assert not [c for c in kube.writes() if c.name in ("edge-device-edge-01", "unrelated")]
    # The cleanup also leaves them alone.
    cleaned = services.cluster_cleanup(namespace=NS)
    assert cleaned.deleted_services == ["edge-device-edge-02"]
    assert objects(kube) == ["edge-device-edge-01", "unrelated"]


def test_name_collision_keeps_the_first_registered_device(kube):
    add_device("EDGE-01", ip="192.0.2.1")
    add_device("edge-01", ip="192.0.2.2")

    result = sync()

    assert ids(result.created) == ["EDGE-01"]
    [failure] = result.failed
    assert failure.device_id == "edge-01"
    assert failure.error == (
        "name collision: edge-device-edge-01 is already used by device EDGE-01, "
        "which was registered first"
    )
    endpoints = kube.get("endpoints", NS, "edge-device-edge-01")
    assert endpoints["subsets"][0]["addresses"] == [{"ip": "192.0.2.1"}]
    assert endpoints["metadata"]["annotations"] == {"edge-metrics-server/device-id": "EDGE-01"}
    # A second sync does not let the other device overwrite it either.
    kube.clear_log()
    assert [i.device_id for i in sync().failed] == ["edge-01"]
    assert kube.writes() == []


def test_tricky_ids_all_sync_under_valid_distinct_names(kube):
    tricky = ["Edge_01", "edge.01", "7-eleven", "lab-" + "a" * 70 + "1", "lab-" + "a" * 70 + "2",
              "Z" * 200]
    for n, device_id in enumerate(tricky):
        add_device(device_id, ip=f"192.0.2.{n + 1}")

    result = sync()

    assert ids(result.created) == sorted(tricky)
    assert objects(kube) == sorted(service_name(i) for i in tricky)
    assert len(set(objects(kube))) == len(tricky)
    owners = {
        s["metadata"]["annotations"]["edge-metrics-server/device-id"]
        for s in kube.objects("services")
    }
    assert owners == set(tricky)


def test_forbidden_write_fails_that_device_and_names_verb_and_resource(kube):
    add_device("a", ip="192.0.2.1")
    add_device("b", ip="192.0.2.2")
    kube.fail("patch", "endpointslices", "edge-device-a", code=403)

    result = sync()

    assert ids(result.created) == ["b"]
    [failure] = result.failed
    assert failure.device_id == "a"
    assert failure.error.startswith("patch endpointslices/edge-device-a in namespace monitoring:"
                                    " 403 Forbidden:")
    assert 'cannot patch resource "endpointslices"' in failure.error


def test_invalid_object_fails_with_the_servers_message_and_the_rest_goes_on(kube):
    # Kubernetes refuses loopback addresses in Endpoints (this one is never contacted).
    add_device("loop", ip="127.0.0.1")
    add_device("fine", ip="192.0.2.2")

    result = sync()

    assert ids(result.created) == ["fine"]
    [failure] = result.failed
    assert "422 Invalid" in failure.error
    assert "may not be in the loopback range" in failure.error


def test_a_server_error_is_retried_and_the_sync_succeeds(kube):
    add_device("a", ip="192.0.2.1")
    add_device("b", ip="192.0.2.2")
    kube.fail("patch", "endpoints", "edge-device-b", code=500, times=1)

    result = sync()

    assert result.failed == []
    assert ids(result.created) == ["a", "b"]
    patches = [c.status for c in kube.requests("patch", "endpoints") if c.name == "edge-device-b"]
    assert patches == [500, 201]
    assert objects(kube, "endpoints") == ["edge-device-a", "edge-device-b"]


def test_too_many_requests_waits_as_long_as_the_server_asks(kube):
    add_device("a", ip="192.0.2.1")
    kube.fail("patch", "services", "edge-device-a", code=429, times=1)

    started = time.monotonic()
    result = sync()

    assert ids(result.created) == ["a"]
    # The fake answers 429 with Retry-After: 1.
    assert time.monotonic() - started >= 0.8
    assert [c.status for c in kube.requests("patch", "services")] == [429, 201]


def test_a_device_whose_writes_keep_failing_fails_alone_and_the_next_sync_repairs_it(
    kube, monkeypatch
):
    monkeypatch.setattr(client_module, "BUSY_BACKOFF", 0.01)
    add_device("a", ip="192.0.2.1")
    add_device("b", ip="192.0.2.2")
    add_device("c", ip="192.0.2.3")
    kube.fail("patch", "endpoints", "edge-device-b", code=503, times=client_module.BUSY_ATTEMPTS)

    first = sync()
    second = sync()

    assert [i.device_id for i in first.failed] == ["b"]
    assert "503 InternalError" in first.failed[0].error
    assert ids(first.created) == ["a", "c"]
    assert [i.device_id for i in second.updated] == ["b"]
    assert second.updated[0].actions == ["create Endpoints edge-device-b",
                                         "create EndpointSlice edge-device-b"]
    assert objects(kube, "endpointslices") == ["edge-device-a", "edge-device-b", "edge-device-c"]


def test_timed_out_write_fails_that_device_only(kube, settings):
    settings.K8S_REQUEST_TIMEOUT = 0.5
    add_device("slow", ip="192.0.2.1")
    add_device("quick", ip="192.0.2.2")
    kube.stall("patch", "services", "edge-device-slow", seconds=5)

    result = sync()

    assert ids(result.created) == ["quick"]
    [failure] = result.failed
    assert failure.error == ("patch services/edge-device-slow in namespace monitoring: "
                             "timed out after 0.5s")


def test_after_three_unanswered_devices_the_rest_is_not_attempted(kube, settings):
    settings.K8S_REQUEST_TIMEOUT = 0.3
    settings.K8S_WRITE_CONCURRENCY = 1
    for i in range(6):
        add_device(f"d{i}", ip=f"192.0.2.{i + 1}")
    kube.stall("patch", "services", seconds=5)

    result = sync()

    assert len(result.failed) == 6
    assert len(kube.requests("patch", "services")) == 3
    assert [i.error for i in result.failed[3:]] == [
        "not attempted: the Kubernetes API server stopped answering"] * 3


def test_concurrent_writers_stop_starting_devices_once_the_server_stopped_answering(
    kube, settings
):
    settings.K8S_REQUEST_TIMEOUT = 0.3
    settings.K8S_WRITE_CONCURRENCY = 3
    for i in range(12):
        add_device(f"d{i:02}", ip=f"192.0.2.{i + 1}")
    kube.stall("patch", "services", seconds=5)

    result = sync()

    assert len(result.failed) == 12
    attempted = len(kube.requests("patch", "services"))
    # Three in a row unanswered; the writers already under way finish their device.
    assert 3 <= attempted <= 3 + 3 - 1
    not_attempted = [i for i in result.failed if i.error.startswith("not attempted")]
    assert len(not_attempted) == 12 - attempted


def test_writes_run_side_by_side_up_to_the_limit(kube, settings):
    settings.K8S_WRITE_CONCURRENCY = 4
    kube.latency = 0.05
    for i in range(12):
        add_device(f"d{i:02}", ip=f"192.0.2.{i + 1}")
    in_flight = peak = 0
    lock = threading.Lock()
    original = kube._handle

    def counting(handler):
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        try:
            return original(handler)
        finally:
            with lock:
                in_flight -= 1

    kube._handle = counting
    result = sync()

    assert ids(result.created) == [f"d{i:02}" for i in range(12)]
    assert peak == 4
    # One write per object, each device's Service before its endpoints.
    assert len(kube.writes()) == 36
    for i in range(12):
        name = f"edge-device-d{i:02}"
        order = [c.resource for c in kube.writes() if c.name == name]
        assert order == ["services", "endpoints", "endpointslices"]


def test_first_sync_looks_up_names_in_pages_not_one_get_per_object(kube, monkeypatch):
    monkeypatch.setattr(client_module, "LIST_PAGE_SIZE", 4)
    for i in range(10):
        add_device(f"d{i:02}", ip=f"192.0.2.{i + 1}")
    kube.put("services", "monitoring", {
        "metadata": {"name": "edge-device-d03"}, "spec": {"ports": [{"port": 80}]}})

    result = sync()

    # Someone else's Service holds d03's name: refused, nothing of it written.
    assert [i.device_id for i in result.failed] == ["d03"]
    assert "is not managed by edge-metrics-server" in result.failed[0].error
    assert len(result.created) == 9
    # The one name in the way was read; no other get, every list paged.
    assert [(c.resource, c.name) for c in kube.requests("get")] == [
        ("services", "edge-device-d03")]
    assert all(c.query.get("limit") == "4" for c in kube.requests("list"))
    assert len(kube.writes()) == 9 * 3


def test_conflicts_are_retried(kube):
    add_device("edge-01")
    kube.fail("patch", "services", "edge-device-edge-01", code=409, times=2)

    result = sync()

    assert ids(result.created) == ["edge-01"]
    assert len(kube.requests("patch", "services")) == 3
    assert objects(kube) == ["edge-device-edge-01"]


def test_conflicts_that_persist_fail_the_device(kube):
    add_device("edge-01")
    kube.fail("patch", "services", code=409)

    result = sync()

    assert "409 Conflict" in result.failed[0].error
    assert len(kube.requests("patch", "services")) == 3


def test_nothing_is_written_or_deleted_when_a_list_fails(kube):
    add_device("keep", ip="192.0.2.1")
    add_device("ill", ip="192.0.2.2")
    sync()
    set_status("ill", "unhealthy")
    add_device("new", ip="192.0.2.3")
    kube.clear_log()
    kube.fail("list", "endpoints", code=500)

    result = sync()

    assert kube.writes() == []
    assert result.deleted == []
    assert ids(result.failed) == ["keep", "new"]
    assert result.errors and result.errors[0].startswith("could not list endpoints:")
    assert objects(kube) == ["edge-device-ill", "edge-device-keep"]


def test_unreachable_cluster_raises_and_is_recorded(settings, tmp_path):
    with serve() as kube:
        settings.KUBECONFIG = str(kube.write_kubeconfig(tmp_path / "kubeconfig"))
    # The server is gone: nothing answers on its port any more.
    add_device("edge-01")
    with pytest.raises(ClusterUnreachable, match="no answer from the API server"):
        sync()
    run = SyncRun.objects.get()
    assert run.outcome == "unreachable"


def test_no_configuration_raises_client_unavailable(settings, tmp_path):
    settings.KUBECONFIG = str(tmp_path / "missing")
    with pytest.raises(ClientUnavailable):
        sync()


def test_a_kubeconfig_that_appears_later_is_used_without_restart(settings, tmp_path):
    path = tmp_path / "kubeconfig"
    settings.KUBECONFIG = str(path)
    add_device("edge-01")
    with pytest.raises(ClientUnavailable):
        kube_api()
    with serve() as kube:
        kube.write_kubeconfig(path)
        assert ids(sync().created) == ["edge-01"]
        assert objects(kube) == ["edge-device-edge-01"]


def test_dry_run_plans_and_writes_nothing(kube):
    add_device("old", ip="192.0.2.1")
    sync()
    set_status("old", "unhealthy")
    add_device("new", ip="192.0.2.2")
    kube.clear_log()

    result = sync(dry_run=True)

    assert kube.writes() == []
    assert result.dry_run
    assert [(i.device_id, i.actions) for i in result.created] == [
        ("new", ["create Service edge-device-new", "create Endpoints edge-device-new",
                 "create EndpointSlice edge-device-new"])]
    assert ids(result.deleted) == ["old"]
    assert objects(kube) == ["edge-device-old"]
    assert SyncRun.objects.count() == 1  # the real sync only


@pytest.mark.parametrize(
    ("mode", "resources", "skip_mirror"),
    [
        ("both", {"services", "endpoints", "endpointslices"}, True),
        ("endpoints", {"services", "endpoints"}, False),
        ("endpointslice", {"services", "endpointslices"}, False),
    ],
)
def test_endpoints_modes(kube, settings, mode, resources, skip_mirror):
    settings.K8S_ENDPOINTS_MODE = mode
    add_device("edge-01")

    sync()

    present = {r for r in KINDS if objects(kube, r)}
    assert present == resources
    if "endpoints" in resources:
        labels = kube.get("endpoints", NS, "edge-device-edge-01")["metadata"]["labels"]
        assert ("endpointslice.kubernetes.io/skip-mirror" in labels) is skip_mirror


def test_switching_mode_removes_the_kind_no_longer_written(kube, settings):
    add_device("edge-01")
    sync()
    settings.K8S_ENDPOINTS_MODE = "endpoints"
    kube.clear_log()

    result = sync()

    assert [i.actions for i in result.updated] == [[
        "update Endpoints edge-device-edge-01",
        "delete EndpointSlice edge-device-edge-01",
    ]]
    assert objects(kube, "endpointslices") == []
    labels = kube.get("endpoints", NS, "edge-device-edge-01")["metadata"]["labels"]
    assert "endpointslice.kubernetes.io/skip-mirror" not in labels


def test_mirrored_slices_of_the_cluster_are_not_ours(kube, settings):
    settings.K8S_ENDPOINTS_MODE = "endpoints"
    add_device("edge-01")
    sync()
    # What the EndpointSlice mirroring controller makes: our labels copied, its own manager.
    kube.put("endpointslices", NS, {
        "metadata": {
            "name": "edge-device-edge-01-x7k2p",
            "labels": {"app": "edge-exporter", "managed_by": "edge-metrics-server",
                       "kubernetes.io/service-name": "edge-device-edge-01",
                       "endpointslice.kubernetes.io/managed-by":
                           "endpointslicemirroring-controller.k8s.io"},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["192.0.2.10"]}],
    }, manager="endpointslicemirroring-controller")
    kube.clear_log()

    assert sync().deleted == []
    assert kube.writes() == []
    assert services.cluster_cleanup(namespace=NS).deleted_endpointslices == []


def test_not_ready_policy_keeps_unhealthy_devices_as_not_ready(kube, settings):
    settings.K8S_UNHEALTHY_POLICY = "not-ready"
    add_device("edge-01", ip="192.0.2.1")
    sync()
    set_status("edge-01", "unreachable")

    result = sync()

    assert ids(result.updated) == ["edge-01"]
    assert result.deleted == []
    endpoints = kube.get("endpoints", NS, "edge-device-edge-01")
    assert endpoints["subsets"][0] == {
        "notReadyAddresses": [{"ip": "192.0.2.1"}],
        "ports": [{"name": "metrics", "port": 9100, "protocol": "TCP"}],
    }
    endpoint_slice = kube.get("endpointslices", NS, "edge-device-edge-01")
    assert endpoint_slice["endpoints"][0]["conditions"] == {"ready": False}
    assert result.total_healthy == 0


def test_delete_policy_removes_unhealthy_devices(kube, settings):
    settings.K8S_UNHEALTHY_POLICY = "delete"
    add_device("edge-01")
    sync()
    set_status("edge-01", "unhealthy")
    assert ids(sync().deleted) == ["edge-01"]
    assert objects(kube) == []


def test_address_family_change_replaces_the_endpointslice(kube):
    add_device("edge-01", ip="192.0.2.1")
    sync()
    set_status("edge-01", "healthy", ip="2001:db8::1")

    result = sync()

    assert result.failed == []
    assert "replace EndpointSlice edge-device-edge-01" in result.updated[0].actions
    assert kube.get("endpointslices", NS, "edge-device-edge-01")["addressType"] == "IPv6"


def test_scoped_sync_touches_only_those_devices(kube):
    add_device("a", ip="192.0.2.1")
    add_device("b", ip="192.0.2.2")
    sync()
    set_status("a", "unhealthy")
    set_status("b", "unhealthy")
    add_device("c", ip="192.0.2.3")

    result = sync(device_ids=["a"])

    assert ids(result.deleted) == ["a"]
    assert result.created == []
    assert objects(kube) == ["edge-device-b"]


def test_objects_of_the_original_server_are_adopted(kube):
    # Written before the annotation existed: our labels, the raw id in device_id.
    kube.put("services", NS, {
        "metadata": {"name": "edge-device-edge-01",
                     "labels": {"app": "edge-exporter", "device_id": "edge-01",
                                "device_type": "jetson_orin",
                                "managed_by": "edge-metrics-server"}},
        "spec": {"clusterIP": "None", "ports": [{"name": "metrics", "port": 9100,
                                                  "targetPort": 9100, "protocol": "TCP"}]},
    }, manager="python-kubernetes")
    add_device("edge-01")

    result = sync()

    assert ids(result.updated) == ["edge-01"]
    service = kube.get("services", NS, "edge-device-edge-01")
    assert service["metadata"]["annotations"] == {"edge-metrics-server/device-id": "edge-01"}


def test_sync_into_a_missing_namespace_fails_each_device(kube):
    add_device("edge-01")
    result = cluster_sync(namespace="nowhere")
    assert "404 NotFound" in result.failed[0].error
    assert 'namespaces "nowhere" not found' in result.failed[0].error


def test_sync_runs_are_recorded(kube):
    add_device("a", ip="192.0.2.1")
    add_device("EDGE-X", ip="192.0.2.2")
    add_device("edge-x", ip="192.0.2.3")
    sync()
    run = SyncRun.objects.get()
    assert (run.action, run.trigger, run.outcome, run.created, run.failed, run.total_healthy) == (
        "sync", "api", "failed", 2, 1, 3)
    assert run.errors == [
        "edge-x (edge-device-edge-x): name collision: edge-device-edge-x is already used by "
        "device EDGE-X, which was registered first"
    ]


def test_closed_port_kubeconfig_is_unreachable(settings, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    settings.KUBECONFIG = str(path)
    with pytest.raises(ClusterUnreachable):
        services.cluster_status(namespace=NS)


def test_a_sync_stops_writing_once_its_replica_no_longer_leads(kube, settings):
    """The leader's automatic sync asks before each device is written: after the answer
    turns to no, nothing more is written (another replica may be leading by then)."""
    settings.K8S_WRITE_CONCURRENCY = 1
    for n in range(6):
        add_device(f"edge-{n}", ip=f"192.0.2.{n + 1}")
    answers = iter([True, True])

    result = sync(still_leading=lambda: next(answers, False))

    assert len(result.created) == 2
    assert len(result.failed) == 4
    assert {item.error for item in result.failed} == {services.NOT_LEADING}
    assert len(objects(kube)) == 2
    assert len(kube.requests("patch")) == 6  # three kinds for each of the two


def test_the_auto_sync_asks_the_monitors_leadership(kube, settings):
    from devices.monitor import DeviceMonitor
    from k8sbridge.autosync import AutoSync

    settings.K8S_AUTO_SYNC = True
    add_device("edge-01", ip="192.0.2.1")
    leading = [True]
    auto = AutoSync()
    DeviceMonitor(listeners=[auto], is_leader=lambda: leading[0])
    leading[0] = False
    result = auto.tick()
    assert result is not None and result.created == []
    assert [item.error for item in result.failed] == [services.NOT_LEADING]
    assert objects(kube) == []
