"""Device labels in `GET /prometheus/targets` (http_sd): as target labels, names sanitised
to Prometheus label syntax, never over the server's own; `?selector=`; the ETag follows
label changes. Devices sit at documentation addresses and are never contacted."""

from __future__ import annotations

import pytest

from devices.labelling import device_labels_set
from tests.support.fleet import add_device
from tests.test_prometheus_sd import URL, discover
from users.actors import Actor

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("doc_networks")]

OPERATOR = Actor(name="tests")


def label(device_id: str, labels: dict[str, str]) -> None:
    device_labels_set(device_id=device_id, labels=labels, actor=OPERATOR)


def test_device_labels_are_target_labels_with_prometheus_names(api):
    add_device("edge-01", ip="192.0.2.10", port=9102)
    label("edge-01", {"site": "lab-3", "example.com/rack": "r2", "tier.zone-a": "", "9th": "x"})
    [group] = discover(api)
    assert group["labels"] == {
        "_9th": "x",
        "example_com_rack": "r2",
        "site": "lab-3",
        "tier_zone_a": "",
        "device_id": "edge-01",
        "device_type": "jetson_orin",
        "__meta_edge_status": "healthy",
        "__meta_edge_reload_port": "9101",
    }


def test_a_label_whose_name_meets_a_server_label_never_overrides_it(api):
    add_device("edge-01", ip="192.0.2.10")
    # Both sanitise to a name the server sets itself.
    label("edge-01", {"device-id": "spoofed", "Device_type": "kept", "device.type": "spoofed"})
    [group] = discover(api)
    labels = group["labels"]
    assert (labels["device_id"], labels["device_type"]) == ("edge-01", "jetson_orin")
    assert labels["Device_type"] == "kept"  # label names are case-sensitive


def test_two_keys_with_one_prometheus_name_give_the_last_in_sorted_order(api):
    add_device("edge-01", ip="192.0.2.10")
    label("edge-01", {"a.b": "dot", "a_b": "underscore", "a-b": "dash"})
    [group] = discover(api)
    # Sorted: a-b, a.b, a_b; the last wins.
    assert group["labels"]["a_b"] == "underscore"


def test_targets_take_a_selector(api):
    add_device("edge-01", ip="192.0.2.1")
    add_device("edge-02", ip="192.0.2.2", status="unreachable")
    add_device("edge-03", ip="192.0.2.3")
    label("edge-01", {"site": "lab-3"})
    label("edge-02", {"site": "lab-3"})
    ids = [g["labels"]["device_id"] for g in discover(api, "?selector=site%3Dlab-3")]
    assert ids == ["edge-01", "edge-02"]
    healthy = discover(api, "?selector=site%3Dlab-3,status%3Dhealthy")
    assert [g["labels"]["device_id"] for g in healthy] == ["edge-01"]
    assert [g["labels"]["device_id"] for g in discover(api, "?selector=!site")] == ["edge-03"]
    paged = api.get(URL + "?selector=site%3Dlab-3&limit=1")
    assert [g["labels"]["device_id"] for g in paged.json()] == ["edge-01"]
    assert paged["X-Next-Cursor"] == "edge-01"


def test_the_etag_changes_when_a_label_changes(api):
    add_device("edge-01", ip="192.0.2.10")
    first = api.get(URL)
    assert api.get(URL, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    label("edge-01", {"site": "lab-3"})
    second = api.get(URL, HTTP_IF_NONE_MATCH=first["ETag"])
    assert second.status_code == 200
    assert second["ETag"] != first["ETag"]
    assert second.json()[0]["labels"]["site"] == "lab-3"
    assert api.get(URL, HTTP_IF_NONE_MATCH=second["ETag"]).status_code == 304


def test_without_labels_a_target_is_as_it_always_was(api):
    add_device("edge-01", ip="192.0.2.10")
    [group] = discover(api)
    assert set(group["labels"]) == {
        "device_id",
        "device_type",
        "__meta_edge_status",
        "__meta_edge_reload_port",
    }
