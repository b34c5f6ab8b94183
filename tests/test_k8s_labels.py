"""A device's labels on its Kubernetes Service (for a ServiceMonitor's `targetLabels`):
the desired object, the diff that sees them, syncs and the automatic sync against a fake
Kubernetes API server, and the manifests."""

from __future__ import annotations

import pytest
import yaml

from devices.labelling import device_labels_set
from devices.models import Device
from k8sbridge.objects import (
    DEVICE_LABELS_ANNOTATION,
    ENDPOINTS,
    SERVICE,
    desired_endpoints,
    desired_endpointslice,
    desired_service,
)
from k8sbridge.reconcile import Action, changes
from k8sbridge.services import cluster_sync
from tests.support.fleet import add_device
from users.actors import Actor
from users.choices import ChangeSource

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("doc_networks")]

NS = "monitoring"
NAME = "edge-device-edge-01"
OPERATOR = Actor(name="tests", source=ChangeSource.API)


def labelled(device_id: str, labels: dict[str, str], **kwargs) -> Device:
    device = add_device(device_id, **kwargs)
    device.labels = labels
    device.save(update_fields=["labels"])
    return device


def service_labels(kube) -> dict[str, str]:
    return kube.get("services", NS, NAME)["metadata"]["labels"]


# ---- the desired Service ----------------------------------------------------------------


def test_the_service_carries_the_device_labels_and_names_them_in_an_annotation():
    device = labelled("edge-01", {"site": "lab-3", "example.com/rack": "r2"}, ip="192.0.2.1")
    metadata = desired_service(device, NS)["metadata"]
    assert metadata["labels"] == {
        "example.com/rack": "r2",
        "site": "lab-3",
        "app": "edge-exporter",
        "device_id": "edge-01",
        "device_type": "jetson_orin",
        "managed_by": "edge-metrics-server",
    }
    assert metadata["annotations"] == {
        "edge-metrics-server/device-id": "edge-01",
        DEVICE_LABELS_ANNOTATION: "example.com/rack,site",
    }


def test_reserved_keys_keep_the_bridges_values():
    device = labelled("edge-01", {"app": "mine", "managed_by": "me", "site": "a"}, ip="192.0.2.1")
    labels = desired_service(device, NS)["metadata"]["labels"]
    assert (labels["app"], labels["managed_by"], labels["site"]) == (
        "edge-exporter",
        "edge-metrics-server",
        "a",
    )
    assert desired_service(device, NS)["metadata"]["annotations"][DEVICE_LABELS_ANNOTATION] == (
        "site"
    )


def test_a_device_without_labels_has_the_service_it_always_had():
    device = add_device("edge-01", ip="192.0.2.1")
    service = desired_service(device, NS)
    assert DEVICE_LABELS_ANNOTATION not in service["metadata"]["annotations"]
    assert set(service["metadata"]["labels"]) == {"app", "device_id", "device_type", "managed_by"}


def test_endpoints_and_slices_do_not_carry_the_device_labels():
    device = labelled("edge-01", {"site": "lab-3"}, ip="192.0.2.1")
    for body in (desired_endpoints(device, NS), desired_endpointslice(device, NS)):
        assert "site" not in body["metadata"]["labels"]


# ---- the diff sees labels ---------------------------------------------------------------


def _diff(desired_device: Device, actual_device: Device, *, extra: dict | None = None):
    actual = desired_service(actual_device, NS)
    actual["metadata"]["labels"].update(extra or {})
    return changes(
        {(SERVICE, NAME): desired_service(desired_device, NS)}, {(SERVICE, NAME): actual}
    )


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({}, {"site": "lab-3"}),
        ({"site": "lab-3"}, {"site": "plant"}),
        ({"site": "lab-3", "rack": "r1"}, {"site": "lab-3"}),
        ({"site": "lab-3"}, {}),
    ],
)
def test_a_label_change_is_an_update_of_the_service(before, after):
    old = labelled("edge-01", before, ip="192.0.2.1")
    new = Device.objects.get(pk="edge-01")
    new.labels = after
    assert [(c.action, c.kind) for c in _diff(new, old)] == [(Action.UPDATE, SERVICE)]


def test_the_same_labels_and_labels_of_others_change_nothing():
    device = labelled("edge-01", {"site": "lab-3"}, ip="192.0.2.1")
    assert _diff(device, device) == []
    # Someone else's label on the Service (not named in the annotation) is left alone.
    assert _diff(device, device, extra={"team": "ops"}) == []


# ---- syncs against the fake API ---------------------------------------------------------


def test_a_sync_writes_labels_and_a_relabel_updates_the_service_only(kube):
    labelled("edge-01", {"site": "lab-3", "rack": "r1"}, ip="192.0.2.1")
    assert [i.device_id for i in cluster_sync(namespace=NS).created] == ["edge-01"]
    assert service_labels(kube)["site"] == "lab-3"
    assert "site" not in kube.get("endpoints", NS, NAME)["metadata"]["labels"]

    device_labels_set(device_id="edge-01", labels={"site": "plant"}, actor=OPERATOR)
    kube.clear_log()
    result = cluster_sync(namespace=NS)

    assert [i.device_id for i in result.updated] == ["edge-01"]
    assert [(c.verb, c.resource) for c in kube.writes()] == [("patch", "services")]
    labels = service_labels(kube)
    assert labels["site"] == "plant"
    assert "rack" not in labels  # the label the device lost is gone from its Service
    assert labels["managed_by"] == "edge-metrics-server"

    kube.clear_log()
    assert cluster_sync(namespace=NS).updated == []
    assert kube.writes() == []


def test_clearing_the_labels_removes_them_from_the_service(kube):
    labelled("edge-01", {"site": "lab-3"}, ip="192.0.2.1")
    cluster_sync(namespace=NS)
    device_labels_set(device_id="edge-01", labels={}, actor=OPERATOR)
    cluster_sync(namespace=NS)
    service = kube.get("services", NS, NAME)
    assert "site" not in service["metadata"]["labels"]
    assert DEVICE_LABELS_ANNOTATION not in service["metadata"].get("annotations", {})


def test_a_label_someone_else_put_on_the_service_survives_a_relabel(kube):
    labelled("edge-01", {"site": "lab-3"}, ip="192.0.2.1")
    cluster_sync(namespace=NS)
    with kube.lock:  # as `kubectl label` would: a label the bridge never applied
        kube.store[("services", NS, NAME)].obj["metadata"]["labels"]["team"] = "ops"
    device_labels_set(device_id="edge-01", labels={"site": "plant"}, actor=OPERATOR)
    cluster_sync(namespace=NS)
    assert service_labels(kube)["team"] == "ops"
    assert service_labels(kube)["site"] == "plant"


@pytest.mark.usefixtures("fast_devices")
def test_the_automatic_sync_picks_up_a_label_change_at_the_next_monitor_step(
    api, exporters, kube, settings
):
    """A label change asks the monitor to look at the device; the monitor reports it to
    the auto-sync, which updates the Service (the fake API refuses the loopback address of
    the exporter's Endpoints, as a cluster would, but the Service is written first)."""
    from devices.monitor import DeviceMonitor
    from k8sbridge.autosync import AutoSync
    from tests.helpers import register, send

    settings.K8S_AUTO_SYNC = True
    settings.MONITOR_INTERVAL = 3600
    register(api, "edge-01", exporters().port)
    monitor = DeviceMonitor(listeners=[AutoSync()])
    assert monitor.step() == ["edge-01"]
    assert "site" not in service_labels(kube)

    response = send(api, "PUT", "/devices/edge-01/labels", {"labels": {"site": "lab-3"}})
    assert response.status_code == 200
    assert monitor.step() == ["edge-01"]

    assert service_labels(kube)["site"] == "lab-3"
    # Nothing changed since: the next step reports nothing.
    assert monitor.step() == []


def test_manifests_carry_the_labels_on_the_service(api):
    labelled("edge-01", {"site": "lab-3"}, ip="192.0.2.1")
    documents = [d for d in yaml.safe_load_all(api.get("/kubernetes/manifests").content) if d]
    service, *others = documents
    assert service["kind"] == "Service"
    assert service["metadata"]["labels"]["site"] == "lab-3"
    assert service["metadata"]["annotations"][DEVICE_LABELS_ANNOTATION] == "site"
    assert all("site" not in d["metadata"]["labels"] for d in others)
    assert ENDPOINTS.name in {d["kind"] for d in others}
