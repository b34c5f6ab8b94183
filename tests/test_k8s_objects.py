"""The desired Kubernetes objects: names, labels and whole objects as literal dicts."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from devices.models import Device, DeviceHealth
from k8sbridge.objects import (
    ENDPOINTS,
    ENDPOINTSLICE,
    SERVICE,
    desired_endpoints,
    desired_endpointslice,
    desired_service,
    label_value,
    owned_fields,
    plan_devices,
    service_name,
)

RFC1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
T0 = datetime(2024, 1, 1, tzinfo=datetime.now().astimezone().tzinfo)

pytestmark = pytest.mark.usefixtures("doc_networks")


def device(device_id: str, *, ip: str = "192.0.2.10", port: int = 9100,
           device_type: str = "jetson_orin", status: str = "healthy",
           registered: int = 0) -> Device:
    """An unsaved device with its observation, as select_related would load it."""
    when = T0 + timedelta(seconds=registered)
    d = Device(device_id=device_id, device_type=device_type, ip_address=ip, port=port,
               created_at=when, updated_at=when)
    d.health = DeviceHealth(device=d, status=status)
    return d


def assert_valid_name(name: str) -> None:
    assert len(name) <= 63, name
    assert RFC1035.fullmatch(name), name


@pytest.mark.parametrize(
    ("device_id", "expected"),
    [
        ("edge-01", "edge-device-edge-01"),
        ("EDGE-01", "edge-device-edge-01"),
        ("orin-desktop", "edge-device-orin-desktop"),
        ("7pi", "edge-device-7pi"),
        ("007", "edge-device-007"),
    ],
)
def test_contract_name_when_lower_cased_id_is_a_valid_label(device_id, expected):
    assert service_name(device_id) == expected


@pytest.mark.parametrize("device_id", ["Edge_01", "edge.01", "Jetson_Lab.3", "edge-", "a" * 52])
def test_other_ids_get_a_slug_and_a_hash_of_the_exact_id(device_id):
    name = service_name(device_id)
    assert_valid_name(name)
    assert re.fullmatch(r"edge-device-[a-z0-9-]+-[0-9a-f]{8}", name), name
    assert service_name(device_id) == name  # deterministic


def test_sanitised_names_read_like_the_id():
    assert service_name("Edge_01").startswith("edge-device-edge-01-")
    assert service_name("Jetson_Lab.3").startswith("edge-device-jetson-lab-3-")


def test_ids_that_sanitise_alike_still_get_different_names():
    names = {service_name(i) for i in ("Edge_01", "edge.01", "edge_01", "EDGE.01")}
    assert len(names) == 4


def test_a_200_character_id_fits_in_63_characters():
    long_id = "x" * 200
    name = service_name(long_id)
    assert_valid_name(name)
    assert len(name) == 63


def test_ids_differing_only_after_the_63rd_character_get_different_names():
    base = "lab-" + "a" * 70
    first, second = service_name(base + "1"), service_name(base + "2")
    assert first != second
    assert_valid_name(first)
    assert_valid_name(second)


def test_label_values_are_kept_when_valid_and_sanitised_otherwise():
    assert label_value("Edge_01") == "Edge_01"
    assert label_value("edge.01") == "edge.01"
    assert label_value("jetson orin") != "jetson orin"
    for value in ("jetson orin", "x" * 200, "___", "a/b"):
        sanitised = label_value(value)
        assert len(sanitised) <= 63
        assert LABEL_VALUE.fullmatch(sanitised), sanitised
    assert label_value("x" * 200) != label_value("x" * 199)


def test_desired_service_is_headless_without_selector():
    assert desired_service(device("Edge_01", port=9102), "monitoring") == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name("Edge_01"),
            "namespace": "monitoring",
            "labels": {
                "app": "edge-exporter",
                "device_id": "Edge_01",
                "device_type": "jetson_orin",
                "managed_by": "edge-metrics-server",
            },
            "annotations": {"edge-metrics-server/device-id": "Edge_01"},
        },
        "spec": {
            "clusterIP": "None",
            "ports": [{"name": "metrics", "port": 9102, "targetPort": 9102, "protocol": "TCP"}],
        },
    }


def test_desired_endpoints_ready_and_skipping_the_mirror():
    assert desired_endpoints(device("edge-01"), "monitoring", skip_mirror=True) == {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": "edge-device-edge-01",
            "namespace": "monitoring",
            "labels": {
                "app": "edge-exporter",
                "device_id": "edge-01",
                "device_type": "jetson_orin",
                "managed_by": "edge-metrics-server",
                "endpointslice.kubernetes.io/skip-mirror": "true",
            },
            "annotations": {"edge-metrics-server/device-id": "edge-01"},
        },
        "subsets": [
            {
                "addresses": [{"ip": "192.0.2.10"}],
                "ports": [{"name": "metrics", "port": 9100, "protocol": "TCP"}],
            }
        ],
    }


def test_desired_endpoints_not_ready():
    body = desired_endpoints(device("edge-01"), "ns1", ready=False)
    assert body["subsets"] == [
        {
            "notReadyAddresses": [{"ip": "192.0.2.10"}],
            "ports": [{"name": "metrics", "port": 9100, "protocol": "TCP"}],
        }
    ]
    assert "endpointslice.kubernetes.io/skip-mirror" not in body["metadata"]["labels"]


def test_desired_endpointslice_ipv6_owned_by_its_service():
    body = desired_endpointslice(
        device("pi-6", ip="2001:db8::6", port=9102), "monitoring", ready=False, service_uid="u-1"
    )
    assert body == {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "edge-device-pi-6",
            "namespace": "monitoring",
            "labels": {
                "app": "edge-exporter",
                "device_id": "pi-6",
                "device_type": "jetson_orin",
                "managed_by": "edge-metrics-server",
                "kubernetes.io/service-name": "edge-device-pi-6",
                "endpointslice.kubernetes.io/managed-by": "edge-metrics-server",
            },
            "annotations": {"edge-metrics-server/device-id": "pi-6"},
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "name": "edge-device-pi-6",
                    "uid": "u-1",
                    "controller": True,
                }
            ],
        },
        "addressType": "IPv6",
        "endpoints": [{"addresses": ["2001:db8::6"], "conditions": {"ready": False}}],
        "ports": [{"name": "metrics", "port": 9102, "protocol": "TCP"}],
    }


def test_endpointslice_without_service_uid_has_no_owner():
    body = desired_endpointslice(device("edge-01"), "monitoring")
    assert "ownerReferences" not in body["metadata"]
    assert body["addressType"] == "IPv4"
    assert body["endpoints"] == [{"addresses": ["192.0.2.10"], "conditions": {"ready": True}}]


def test_long_device_type_label_is_sanitised_but_the_annotation_keeps_the_exact_id():
    long_id = "Lab_" + "x" * 196
    body = desired_service(device(long_id, device_type="custom board v2"), "monitoring")
    labels = body["metadata"]["labels"]
    assert LABEL_VALUE.fullmatch(labels["device_id"]) and len(labels["device_id"]) <= 63
    assert LABEL_VALUE.fullmatch(labels["device_type"])
    assert body["metadata"]["annotations"] == {"edge-metrics-server/device-id": long_id}


def test_owned_fields_ignore_what_the_server_and_others_add():
    desired = desired_service(device("edge-01"), "monitoring")
    actual = {
        "metadata": {
            **desired["metadata"],
            "uid": "abc",
            "resourceVersion": "7",
            "labels": {**desired["metadata"]["labels"], "team": "ops"},
            "annotations": {**desired["metadata"]["annotations"], "note": "x"},
            "managedFields": [{"manager": "edge-metrics-server"}],
        },
        "spec": {**desired["spec"], "clusterIPs": ["None"], "type": "ClusterIP",
                 "ipFamilies": ["IPv4"], "sessionAffinity": "None"},
        "status": {"loadBalancer": {}},
    }
    assert owned_fields(SERVICE, desired) == owned_fields(SERVICE, actual)


def test_owned_fields_see_a_changed_port_address_or_readiness():
    d = device("edge-01")
    assert owned_fields(SERVICE, desired_service(d, "m")) != owned_fields(
        SERVICE, desired_service(device("edge-01", port=9200), "m"))
    assert owned_fields(ENDPOINTS, desired_endpoints(d, "m")) != owned_fields(
        ENDPOINTS, desired_endpoints(d, "m", ready=False))
    assert owned_fields(ENDPOINTSLICE, desired_endpointslice(d, "m")) != owned_fields(
        ENDPOINTSLICE, desired_endpointslice(device("edge-01", ip="192.0.2.11"), "m"))
    # A label we stopped setting (skip-mirror after a mode change) is a difference too.
    assert owned_fields(ENDPOINTS, desired_endpoints(d, "m", skip_mirror=True)) != owned_fields(
        ENDPOINTS, desired_endpoints(d, "m"))


def test_plan_gives_a_shared_name_to_the_device_registered_first():
    plans = {
        p.device_id: p
        for p in plan_devices(
            [device("edge-01", registered=5), device("EDGE-01", registered=1)], policy="delete"
        )
    }
    assert plans["EDGE-01"].publish and not plans["EDGE-01"].failed
    loser = plans["edge-01"]
    assert loser.failed and not loser.publish
    assert "edge-device-edge-01" in loser.problem and "EDGE-01" in loser.problem


def test_plan_keeps_the_name_with_the_first_device_even_when_it_is_unhealthy():
    plans = {
        p.device_id: p
        for p in plan_devices(
            [device("EDGE-01", status="unreachable", registered=1),
             device("edge-01", registered=2)],
            policy="delete",
        )
    }
    assert plans["edge-01"].failed
    assert not plans["EDGE-01"].publish and plans["EDGE-01"].problem == "device is not healthy"


@pytest.mark.parametrize(
    ("status", "ip", "policy", "publish", "ready", "problem"),
    [
        ("healthy", "192.0.2.1", "delete", True, True, ""),
        ("unhealthy", "192.0.2.1", "delete", False, False, "device is not healthy"),
        ("unreachable", "192.0.2.1", "not-ready", True, False, ""),
        ("unknown", "192.0.2.1", "not-ready", True, False, ""),
        ("healthy", "", "delete", False, False, "no IP address registered"),
        ("healthy", "", "not-ready", False, False, "no IP address registered"),
    ],
)
def test_plan_by_status_and_policy(status, ip, policy, publish, ready, problem):
    [plan] = plan_devices([device("d1", ip=ip, status=status)], policy=policy)
    assert (plan.publish, plan.ready, plan.problem, plan.failed) == (
        publish, ready, problem, False)
