"""Device labels (`PUT`/`GET /devices/{id}/labels`) and label selectors on the fleet
routes (`GET /devices`, `GET /config`, `POST /devices/reload`), over the API."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from devices.models import Device, DeviceHealth, DeviceRevision
from tests.helpers import make_devices, register, send

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_devices")]


def put_labels(client, device_id: str, labels, **extra):
    return send(client, "PUT", f"/devices/{device_id}/labels", {"labels": labels, **extra})


def observe(device_id: str, status: str) -> None:
    DeviceHealth.objects.update_or_create(
        device_id=device_id,
        defaults={"status": status, "error": "" if status == "healthy" else "HTTP 503"},
    )


@pytest.fixture
def labelled(api, exporters):
    """Four devices on real exporters, labelled by site and rack (one without labels)."""
    started = {}
    for device_id, labels, status in (
        ("lab-a", {"site": "lab-3", "rack": "r1"}, "healthy"),
        ("lab-b", {"site": "lab-3", "rack": "r2", "gpu": ""}, "unhealthy"),
        ("plant-a", {"site": "plant", "rack": "r1"}, "healthy"),
        ("spare", {}, "healthy"),
    ):
        started[device_id] = exporters()
        register(api, device_id, started[device_id].port)
        assert put_labels(api, device_id, labels).status_code == 200
        observe(device_id, status)
    return started


def listed(client, query: str) -> list[str]:
    response = client.get(f"/devices?{query}")
    assert response.status_code == 200, response.content
    return [item["device_id"] for item in response.json()["devices"]]


# ---- PUT / GET /devices/{id}/labels ----------------------------------------------------


def test_put_labels_replaces_the_whole_label_set(api, exporters):
    register(api, "edge-01", exporters().port)
    first = put_labels(api, "edge-01", {"site": "lab-3", "rack": "r2"})
    assert first.status_code == 200
    assert first.json() == {"device_id": "edge-01", "labels": {"rack": "r2", "site": "lab-3"}}
    second = put_labels(api, "edge-01", {"site": "plant"})
    assert second.json() == {"device_id": "edge-01", "labels": {"site": "plant"}}
    assert api.get("/devices/edge-01/labels").json() == second.json()


def test_empty_labels_clear_them(api, exporters):
    register(api, "edge-01", exporters().port)
    put_labels(api, "edge-01", {"site": "lab-3"})
    assert put_labels(api, "edge-01", {}).json() == {"device_id": "edge-01", "labels": {}}
    assert Device.objects.get(pk="edge-01").labels == {}


def test_labels_are_not_served_config_no_version_no_revision_no_reload(api, anon, exporters):
    exporter = exporters()
    register(api, "edge-01", exporter.port)
    before = anon.get("/config/edge-01")
    reloads, revisions = exporter.reloads, DeviceRevision.objects.count()

    assert put_labels(api, "edge-01", {"site": "lab-3"}).status_code == 200

    after = anon.get("/config/edge-01")
    assert (after.content, after["ETag"]) == (before.content, before["ETag"])
    assert "labels" not in after.json()
    assert exporter.reloads == reloads
    assert DeviceRevision.objects.count() == revisions


def test_a_label_change_asks_the_monitor_to_look_at_the_device(api, exporters):
    register(api, "edge-01", exporters().port)
    DeviceHealth.objects.filter(pk="edge-01").update(probe_requested_at=None)
    put_labels(api, "edge-01", {"site": "lab-3"})
    assert DeviceHealth.objects.get(pk="edge-01").probe_requested_at is not None
    # The same labels again change nothing and ask for nothing.
    DeviceHealth.objects.filter(pk="edge-01").update(probe_requested_at=None)
    put_labels(api, "edge-01", {"site": "lab-3"})
    assert DeviceHealth.objects.get(pk="edge-01").probe_requested_at is None


def test_labels_with_a_prefix_and_an_empty_value_are_accepted(api, exporters):
    register(api, "edge-01", exporters().port)
    labels = {"example.com/rack": "r2", "gpu": "", "Tier_1.a": "A-b_c.9"}
    assert put_labels(api, "edge-01", labels).json()["labels"] == labels


@pytest.mark.parametrize(
    ("labels", "named"),
    [
        ({"site": "lab 3"}, "'lab 3'"),
        ({"-site": "x"}, "'-site'"),
        ({"site": "x" * 64}, "'site'"),
        ({"Example.com/rack": "r"}, "prefix"),
        ({"device_type": "jetson"}, "reserved"),
        ({"status": "healthy"}, "reserved"),
        ({"device_id": "x"}, "reserved"),
        ({"site": 3}, "must be a string"),
        ({"site": None}, "must be a string"),
        (["site"], "must be an object"),
        ("site=lab-3", "must be an object"),
        ({f"k{i}": "v" for i in range(65)}, "at most 64"),
    ],
)
def test_a_bad_label_is_refused_naming_it_and_changes_nothing(api, exporters, labels, named):
    register(api, "edge-01", exporters().port)
    put_labels(api, "edge-01", {"site": "lab-3"})
    response = put_labels(api, "edge-01", labels)
    assert response.status_code == 400
    body = response.json()
    assert (body["error"], body["device_id"]) == ("invalid_label", "edge-01")
    assert named in body["message"]
    assert Device.objects.get(pk="edge-01").labels == {"site": "lab-3"}


def test_a_body_without_labels_is_refused(api, exporters):
    register(api, "edge-01", exporters().port)
    response = send(api, "PUT", "/devices/edge-01/labels", {"site": "lab-3"})
    assert response.status_code == 400
    assert response.json()["error"] == "Missing required field"
    assert response.json()["message"] == "labels is required"
    for raw in (b"[]", b"{", b"null"):
        refused = send(api, "PUT", "/devices/edge-01/labels", raw)
        assert (refused.status_code, refused.json()["error"]) == (400, "Invalid request body")
    assert Device.objects.get(pk="edge-01").labels == {}


def test_labels_of_an_unknown_device_are_not_found(api):
    for response in (put_labels(api, "ghost", {"site": "x"}), api.get("/devices/ghost/labels")):
        assert response.status_code == 404
        assert response.json() == {"error": "Device not found", "device_id": "ghost"}
    assert not Device.objects.exists()


def test_labels_need_an_operator(anon, api, exporters):
    register(api, "edge-01", exporters().port)
    assert put_labels(anon, "edge-01", {"site": "x"}).status_code == 401
    assert anon.get("/devices/edge-01/labels").status_code == 401
    assert Device.objects.get(pk="edge-01").labels == {}


def test_a_bad_device_id_in_the_labels_path_is_refused(api):
    response = put_labels(api, "bad..id", {"site": "x"})
    assert (response.status_code, response.json()["error"]) == (400, "invalid_device_id")


# ---- device items carry labels ---------------------------------------------------------


def test_device_items_carry_their_labels(api, labelled):
    items = {item["device_id"]: item for item in api.get("/devices").json()["devices"]}
    assert items["lab-a"]["labels"] == {"rack": "r1", "site": "lab-3"}
    assert items["spare"]["labels"] == {}
    status = api.get("/devices/lab-b/status").json()
    assert status["labels"] == {"gpu": "", "rack": "r2", "site": "lab-3"}
    # Every key a status item had is still there.
    assert {"device_id", "device_type", "ip_address", "port", "reload_port", "status"} <= set(
        status
    )


# ---- selectors on GET /devices ---------------------------------------------------------


@pytest.mark.usefixtures("labelled")
@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("site=lab-3", ["lab-a", "lab-b"]),
        ("site==lab-3", ["lab-a", "lab-b"]),
        ("site=lab-3,rack=r2", ["lab-b"]),
        ("rack!=r1", ["lab-b", "spare"]),
        ("site in (plant, lab-3)", ["lab-a", "lab-b", "plant-a"]),
        ("site notin (lab-3)", ["plant-a", "spare"]),
        ("gpu", ["lab-b"]),
        ("!gpu", ["lab-a", "plant-a", "spare"]),
        ("gpu=", ["lab-b"]),
        ("status=healthy,site=lab-3", ["lab-a"]),
        ("status!=healthy", ["lab-b"]),
        ("device_type=jetson_orin,!site", ["spare"]),
        ("device_type=raspberry_pi", []),
        ("", ["lab-a", "lab-b", "plant-a", "spare"]),
    ],
)
def test_selectors_pick_devices_by_label_type_and_status(api, selector, expected):
    assert listed(api, f"selector={selector}") == expected


@pytest.mark.usefixtures("labelled")
def test_selector_notin_matches_devices_without_the_key(api):
    assert listed(api, "selector=rack notin (r1,r2)") == ["spare"]


@pytest.mark.usefixtures("labelled")
def test_selector_combines_with_the_other_filters(api):
    assert listed(api, "selector=rack=r1&status=healthy") == ["lab-a", "plant-a"]
    assert listed(api, "selector=rack=r1&q=plant") == ["plant-a"]
    assert listed(api, "selector=site=lab-3&status=unhealthy") == ["lab-b"]
    body = api.get("/devices?selector=site=lab-3").json()
    assert (body["total"], body["healthy"], body["unhealthy"]) == (2, 1, 1)


def test_selector_pages_hold_limit_matching_devices(api):
    ids = make_devices("edge", 30, 9)
    for device_id in ids[::3]:
        Device.objects.filter(pk=device_id).update(labels={"site": "lab-3"})
    wanted = ids[::3]
    seen, cursor, pages = [], "", 0
    while True:
        query = f"selector=site%3Dlab-3&limit=4{f'&cursor={cursor}' if cursor else ''}"
        body = api.get(f"/devices?{query}").json()
        seen += [item["device_id"] for item in body["devices"]]
        pages += 1
        assert len(body["devices"]) <= 4
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == wanted
    assert pages == 3  # 10 matching devices: 4 + 4 + 2


def test_a_selector_reads_the_fleet_in_a_bounded_number_of_queries(api, settings):
    ids = make_devices("edge", 5000, 9)
    Device.objects.filter(pk=ids[-1]).update(labels={"site": "far"})
    with CaptureQueriesContext(connection) as queries:
        body = api.get("/devices?selector=site=far&limit=10").json()
    assert [item["device_id"] for item in body["devices"]] == [ids[-1]]
    # Authentication, the chunked read of the rows, the shared addresses: not a query
    # per device.
    assert len(queries) < 20


@pytest.mark.parametrize(
    "selector",
    ["=lab", "site in ()", "site in (a", "site=a b", "site=a,", "a,,b", "x" * 64, "s=" + "v" * 64],
)
def test_a_bad_selector_is_refused_on_every_fleet_route(api, exporters, selector):
    exporter = exporters()
    register(api, "edge-01", exporter.port)
    reloads = exporter.reloads
    query = urlencode({"selector": selector})
    for response in (
        api.get(f"/devices?{query}"),
        api.get(f"/config?{query}"),
        api.get(f"/prometheus/targets?{query}"),
        send(api, "POST", f"/devices/reload?{query}"),
    ):
        assert response.status_code == 400, response.content
        assert response.json()["error"] == "invalid_selector"
        assert response.json()["message"].startswith("selector ")
    assert exporter.reloads == reloads


@pytest.mark.parametrize("separator", ["\t", "\n", "\x1d", "\u00a0"])
def test_whitespace_other_than_spaces_in_a_selector_is_refused(api, separator):
    for selector in (f"site=a{separator}", f"site=a,{separator}rack=b"):
        response = api.get("/devices", {"selector": selector})
        assert (response.status_code, response.json()["error"]) == (400, "invalid_selector")
    assert api.get("/devices", {"selector": " site = a , rack in ( b ) "}).status_code == 200


def test_an_overlong_selector_is_refused(api):
    response = api.get("/devices", {"selector": "a," * 2100 + "a"})
    assert (response.status_code, response.json()["error"]) == (400, "invalid_selector")


# ---- GET /config?selector= --------------------------------------------------------------


@pytest.mark.usefixtures("labelled")
def test_config_list_takes_a_selector(api):
    body = api.get("/config?selector=rack=r1").json()
    assert [c["device_id"] for c in body["configs"]] == ["lab-a", "plant-a"]
    assert body["total"] == 2
    assert "labels" not in body["configs"][0]
    everything = api.get("/config").json()
    assert [c for c in everything["configs"] if c["device_id"] in ("lab-a", "plant-a")] == (
        body["configs"]
    )
    paged = api.get("/config?selector=status=healthy&limit=2").json()
    assert [c["device_id"] for c in paged["configs"]] == ["lab-a", "plant-a"]
    assert paged["next_cursor"] == "plant-a"
    rest = api.get("/config?selector=status=healthy&limit=2&cursor=plant-a").json()
    assert ([c["device_id"] for c in rest["configs"]], rest["next_cursor"]) == (["spare"], None)


# ---- POST /devices/reload?selector= -------------------------------------------------------


def test_bulk_reload_with_a_selector_reloads_only_matching_devices(api, labelled):
    before = {device_id: exporter.reloads for device_id, exporter in labelled.items()}
    response = send(api, "POST", "/devices/reload?selector=site%3Dlab-3")
    assert response.status_code == 200
    assert response.json() == {
        "results": [
            {"device_id": "lab-a", "status": "reloaded"},
            {"device_id": "lab-b", "status": "reloaded"},
        ],
        "total": 2,
        "success": 2,
        "failed": 0,
    }
    after = {device_id: exporter.reloads for device_id, exporter in labelled.items()}
    assert {d: after[d] - before[d] for d in after} == {
        "lab-a": 1,
        "lab-b": 1,
        "plant-a": 0,
        "spare": 0,
    }


def test_bulk_reload_with_a_selector_matching_nothing(api, labelled):
    body = send(api, "POST", "/devices/reload?selector=site%3Dnowhere").json()
    assert body == {"results": [], "total": 0, "success": 0, "failed": 0}


def test_a_label_change_does_not_touch_updated_at(api, exporters):
    register(api, "edge-01", exporters().port)
    Device.objects.filter(pk="edge-01").update(updated_at=timezone.now().replace(year=2025))
    before = Device.objects.get(pk="edge-01").updated_at
    put_labels(api, "edge-01", {"site": "x"})
    assert Device.objects.get(pk="edge-01").updated_at == before
