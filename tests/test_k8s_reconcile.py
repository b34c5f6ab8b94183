"""The one diff of the bridge: literal desired and actual objects in, the changes out."""

from __future__ import annotations

from k8sbridge.objects import ENDPOINTS, ENDPOINTSLICE, SERVICE
from k8sbridge.reconcile import Action, Change, by_device, changes

OURS = {"app": "edge-exporter", "managed_by": "edge-metrics-server"}
OWNER = "edge-metrics-server/device-id"


def service(name, owner, *, port=9100, uid=None, labels=OURS):
    metadata = {"name": name, "labels": dict(labels), "annotations": {OWNER: owner}}
    if uid:
        metadata["uid"] = uid
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "clusterIP": "None",
            "ports": [{"name": "metrics", "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }


def endpoints(name, owner, *, ip="192.0.2.1", port=9100):
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name, "labels": dict(OURS), "annotations": {OWNER: owner}},
        "subsets": [
            {
                "addresses": [{"ip": ip}],
                "ports": [{"name": "metrics", "port": port, "protocol": "TCP"}],
            }
        ],
    }


def endpointslice(name, owner, *, ip="192.0.2.1", address_type="IPv4", service_uid=None):
    metadata = {"name": name, "labels": dict(OURS), "annotations": {OWNER: owner}}
    if service_uid:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "name": name,
                "uid": service_uid,
                "controller": True,
            }
        ]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": metadata,
        "addressType": address_type,
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
        "ports": [{"name": "metrics", "port": 9100, "protocol": "TCP"}],
    }


def device(name, owner, **kwargs):
    """The three objects of one device, as the bridge writes them (slice without owner)."""
    return {
        (SERVICE, name): service(name, owner, port=kwargs.get("port", 9100)),
        (ENDPOINTS, name): endpoints(
            name, owner, ip=kwargs.get("ip", "192.0.2.1"), port=kwargs.get("port", 9100)
        ),
        (ENDPOINTSLICE, name): endpointslice(name, owner, ip=kwargs.get("ip", "192.0.2.1")),
    }


def in_cluster(objects, uid="uid-1"):
    """The same objects as the API server holds them: the Service has a uid, the slice is
    owned by it."""
    held = dict(objects)
    for (kind, name), obj in objects.items():
        if kind is SERVICE:
            held[(kind, name)] = {**obj, "metadata": {**obj["metadata"], "uid": uid}}
        if kind is ENDPOINTSLICE:
            owner = obj["metadata"]["annotations"][OWNER]
            held[(kind, name)] = endpointslice(
                name, owner, ip=obj["endpoints"][0]["addresses"][0], service_uid=uid
            )
    return held


def summary(found):
    return [(c.action.value, c.kind.name, c.name, c.owner) for c in found]


def test_a_cluster_that_matches_needs_nothing():
    desired = device("edge-device-a", "a")
    assert changes(desired, in_cluster(desired)) == []


def test_missing_objects_are_created_service_first_with_their_bodies():
    desired = device("edge-device-a", "a")

    found = changes(desired, {})

    assert found == [
        Change(Action.CREATE, SERVICE, "edge-device-a", "a", desired[(SERVICE, "edge-device-a")]),
        Change(
            Action.CREATE, ENDPOINTS, "edge-device-a", "a", desired[(ENDPOINTS, "edge-device-a")]
        ),
        Change(
            Action.CREATE,
            ENDPOINTSLICE,
            "edge-device-a",
            "a",
            desired[(ENDPOINTSLICE, "edge-device-a")],
        ),
    ]
    assert str(found[0]) == "create Service edge-device-a"


def test_a_changed_address_updates_endpoints_and_slice_only():
    actual = in_cluster(device("edge-device-a", "a", ip="192.0.2.1"))
    desired = device("edge-device-a", "a", ip="192.0.2.9")

    found = changes(desired, actual)

    assert summary(found) == [
        ("update", "Endpoints", "edge-device-a", "a"),
        ("update", "EndpointSlice", "edge-device-a", "a"),
    ]
    # The slice keeps the Service it belongs to.
    assert found[1].body["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_a_slice_without_its_owner_gets_the_services_uid():
    desired = device("edge-device-a", "a")
    actual = {
        **in_cluster(desired),
        (ENDPOINTSLICE, "edge-device-a"): endpointslice("edge-device-a", "a"),
    }

    [change] = changes(desired, actual)

    assert (change.action, change.kind) == (Action.UPDATE, ENDPOINTSLICE)
    assert change.body == endpointslice("edge-device-a", "a", service_uid="uid-1")


def test_a_slice_whose_service_is_created_is_written_after_it():
    # Left from a Service deleted by hand: the new Service's uid must become its owner.
    desired = device("edge-device-a", "a")
    actual = {
        (ENDPOINTS, "edge-device-a"): endpoints("edge-device-a", "a"),
        (ENDPOINTSLICE, "edge-device-a"): endpointslice("edge-device-a", "a"),
    }

    assert summary(changes(desired, actual)) == [
        ("create", "Service", "edge-device-a", "a"),
        ("update", "EndpointSlice", "edge-device-a", "a"),
    ]


def test_an_address_family_change_replaces_the_slice():
    actual = in_cluster(device("edge-device-a", "a", ip="192.0.2.1"))
    desired = device("edge-device-a", "a", ip="2001:db8::1")
    desired[(ENDPOINTSLICE, "edge-device-a")]["addressType"] = "IPv6"

    assert summary(changes(desired, actual)) == [
        ("update", "Endpoints", "edge-device-a", "a"),
        ("replace", "EndpointSlice", "edge-device-a", "a"),
    ]


def test_orphans_are_deleted_dependents_first():
    actual = in_cluster(device("edge-device-gone", "gone"))

    found = changes({}, actual)

    assert summary(found) == [
        ("delete", "EndpointSlice", "edge-device-gone", "gone"),
        ("delete", "Endpoints", "edge-device-gone", "gone"),
        ("delete", "Service", "edge-device-gone", "gone"),
    ]
    assert all(c.body is None for c in found)


def test_an_object_without_annotation_belongs_to_its_label_or_name():
    old = service("edge-device-x", "x")
    del old["metadata"]["annotations"]
    old["metadata"]["labels"]["device_id"] = "x"
    bare = service("edge-device-y", "y")
    del bare["metadata"]["annotations"]

    found = changes({}, {(SERVICE, "edge-device-x"): old, (SERVICE, "edge-device-y"): bare})

    assert [c.owner for c in found] == ["edge-device-y", "x"]


def test_a_foreign_object_in_the_way_is_refused_and_never_deleted():
    desired = device("edge-device-a", "a")
    foreign = service("edge-device-a", "a", labels={"team": "ops"})
    unrelated = service("unrelated", "nobody", labels={"team": "ops"})
    actual = {(SERVICE, "edge-device-a"): foreign, (SERVICE, "unrelated"): unrelated}

    found = changes(desired, actual)

    assert summary(found)[0] == ("refuse", "Service", "edge-device-a", "a")
    assert found[0].body == desired[(SERVICE, "edge-device-a")]
    assert all(c.name != "unrelated" for c in found)
    # Cleanup (nothing desired) leaves both alone.
    assert changes({}, actual) == []


def test_a_stale_kind_is_deleted_after_the_devices_writes():
    # K8S_ENDPOINTS_MODE went from both to endpoints: slices are no longer desired.
    held = in_cluster(device("edge-device-a", "a"))
    desired = {
        key: obj
        for key, obj in device("edge-device-a", "a", port=9200).items()
        if key[0] is not ENDPOINTSLICE
    }

    assert summary(changes(desired, held)) == [
        ("update", "Service", "edge-device-a", "a"),
        ("update", "Endpoints", "edge-device-a", "a"),
        ("delete", "EndpointSlice", "edge-device-a", "a"),
    ]


def test_cleanup_is_every_managed_object_with_nothing_desired():
    actual = {
        **in_cluster(device("edge-device-a", "a")),
        **in_cluster(device("edge-device-b", "b"), uid="uid-2"),
    }

    found = changes({}, actual)

    assert [c.action for c in found] == [Action.DELETE] * 6
    assert [(c.owner, c.kind.name) for c in found][:3] == [
        ("a", "EndpointSlice"),
        ("a", "Endpoints"),
        ("a", "Service"),
    ]


def test_a_scope_limits_the_changes_to_those_devices():
    actual = {
        **in_cluster(device("edge-device-a", "a")),
        **in_cluster(device("edge-device-gone", "gone"), uid="uid-2"),
    }
    desired = {**device("edge-device-a", "a", ip="192.0.2.9"), **device("edge-device-b", "b")}

    found = changes(desired, actual, scope={"a"})

    # Neither b's creates nor the orphan's deletes: only a's updates.
    assert summary(found) == [
        ("update", "Endpoints", "edge-device-a", "a"),
        ("update", "EndpointSlice", "edge-device-a", "a"),
    ]


def test_a_scoped_loser_of_a_name_does_not_delete_the_winners_objects():
    # EDGE-01 once held the name; edge-01, registered first, now has it (and is out of scope).
    actual = in_cluster(device("edge-device-edge-01", "EDGE-01"))
    desired = device("edge-device-edge-01", "edge-01")

    assert changes(desired, actual, scope={"EDGE-01"}) == []
    assert {c.owner for c in changes(desired, actual)} == {"edge-01"}


def test_changes_group_by_device_and_name_in_apply_order():
    actual = {
        **in_cluster(device("edge-device-gone", "gone")),
        (ENDPOINTSLICE, "edge-device-a"): endpointslice("edge-device-a", "a"),
    }
    desired = device("edge-device-a", "a")

    groups = by_device(changes(desired, actual))

    assert list(groups) == [("a", "edge-device-a"), ("gone", "edge-device-gone")]
    assert [str(c) for c in groups[("a", "edge-device-a")]] == [
        "create Service edge-device-a",
        "create Endpoints edge-device-a",
        "update EndpointSlice edge-device-a",
    ]
