"""A large fleet on one leader: probe rounds that store observations in batches, and the
fleet views paged for clients that ask (`?limit=&cursor=`), conditional for Prometheus."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from devices import runtime, selectors
from devices.models import DeviceHealth
from tests.helpers import make_devices
from tests.support.exporters import Reply

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_devices")]


def health_updates(queries: CaptureQueriesContext) -> list[str]:
    table = DeviceHealth._meta.db_table
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith(("UPDATE", "WITH")) and table in q["sql"]
    ]


def test_a_round_stores_its_observations_in_one_statement_per_batch(
    exporters, monkeypatch, settings
):
    monkeypatch.setattr(runtime, "_STORE_BATCH", 100)
    settings.PROBE_TIMEOUT = 2.0  # no answering device misses it on a loaded machine
    alive, silent = exporters(), exporters()
    silent.set("GET", "/health", Reply(hang=True))
    make_devices("alive", 250, alive.port)
    make_devices("silent", 50, silent.port)
    with CaptureQueriesContext(connection) as queries:
        runtime.devices_probe(devices=list(selectors.device_list()))
    # Two groups (the healthy ones, the silent ones) of 250 and 50 devices: 3 + 1 batches.
    assert len(health_updates(queries)) == 4
    statuses = dict(DeviceHealth.objects.values_list("device_id", "status"))
    assert {statuses[f"alive-{i:04d}"] for i in range(250)} == {"healthy"}
    assert {statuses[f"silent-{i:04d}"] for i in range(50)} == {"unreachable"}
    errors = set(DeviceHealth.objects.filter(status="unreachable").values_list("error", flat=True))
    assert errors == {"No answer within 2 s"}

    # The next round changes less (the time of the probe, the failure count): still one
    # statement per batch of each group.
    with CaptureQueriesContext(connection) as queries:
        runtime.devices_probe(devices=list(selectors.device_list()))
    assert len(health_updates(queries)) == 4
    silent_health = DeviceHealth.objects.get(device_id="silent-0000")
    assert silent_health.consecutive_failures == 2


def test_a_reload_left_pending_while_a_round_ran_is_kept(exporters):
    exporter = exporters()
    make_devices("edge", 3, exporter.port)
    devices = list(selectors.device_list())
    # A config write marks a reload pending after the round loaded its devices.
    DeviceHealth.objects.filter(device_id="edge-0001").update(reload_pending=True)
    runtime.devices_probe(devices=devices)
    assert DeviceHealth.objects.get(device_id="edge-0001").reload_pending is True
    assert DeviceHealth.objects.get(device_id="edge-0001").status == "healthy"


# ---- paged fleet views -------------------------------------------------------------------


def fleet(count: int) -> list[str]:
    """Devices at distinct documentation-free loopback addresses, never probed here."""
    from django.utils import timezone

    from devices.models import Device

    now = timezone.now()
    devices = Device.objects.bulk_create(
        Device(
            device_id=f"dev-{index:03d}",
            device_type="jetson_orin",
            ip_address=f"127.0.{index // 250}.{index % 250 + 1}",
            created_at=now,
            updated_at=now,
        )
        for index in range(count)
    )
    DeviceHealth.objects.bulk_create(
        DeviceHealth(device=device, status="healthy" if i % 3 else "unreachable")
        for i, device in enumerate(devices)
    )
    return [device.device_id for device in devices]


def walk(api, path: str, key: str, limit: int) -> tuple[list[str], list[dict]]:
    seen, bodies, cursor = [], [], None
    while True:
        query = f"limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        separator = "&" if "?" in path else "?"
        response = api.get(f"{path}{separator}{query}")
        assert response.status_code == 200, response.content
        body = response.json()
        bodies.append(body)
        seen += [item["device_id"] for item in body[key]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen, bodies


@pytest.mark.parametrize(("path", "key"), [("/devices", "devices"), ("/config", "configs")])
def test_fleet_lists_page_through_every_device_once_in_order(api, path, key):
    ids = fleet(25)
    seen, bodies = walk(api, path, key, 10)
    assert seen == ids
    assert [body["total"] for body in bodies] == [10, 10, 5]
    # Without a limit: the whole list, as the contract says, and no paging key.
    whole = api.get(path).json()
    assert [item["device_id"] for item in whole[key]] == ids
    assert whole["total"] == 25
    assert "next_cursor" not in whole


def test_a_device_page_counts_its_own_devices_and_keeps_filters(api):
    fleet(30)
    body = api.get("/devices?status=healthy&limit=5").json()
    assert body["total"] == body["healthy"] == 5
    assert body["unhealthy"] == 0
    seen, _ = walk(api, "/devices?status=healthy", "devices", 7)
    assert len(seen) == 20


def test_a_device_created_between_pages_is_neither_lost_nor_repeated(api):
    fleet(6)
    first = api.get("/config?limit=3").json()
    from tests.helpers import make_devices

    make_devices("dev-000a", 1, 9101)  # sorts after dev-000, inside the first page
    make_devices("dev-004a", 1, 9101)  # sorts into the second page
    rest = api.get(f"/config?limit=10&cursor={first['next_cursor']}").json()
    ids = [c["device_id"] for c in first["configs"] + rest["configs"]]
    assert ids == ["dev-000", "dev-001", "dev-002", "dev-003", "dev-004", "dev-004a-0000",
                   "dev-005"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "limit must be an integer from 1 to 1000"),
        ("limit=1001", "limit must be an integer from 1 to 1000"),
        ("limit=ten", "limit must be an integer from 1 to 1000"),
        ("limit=-1", "limit must be an integer from 1 to 1000"),
        ("limit=", "limit must be an integer from 1 to 1000"),
        ("limit=5&cursor=!!!", "cursor must be a device id"),
        ("limit=5&cursor=a..b", "cursor must be a device id"),
        ("cursor=", "cursor must be a device id"),
    ],
)
@pytest.mark.parametrize("path", ["/devices", "/config", "/prometheus/targets"])
def test_a_bad_page_is_a_400_in_the_error_shape(api, settings, path, query, message):
    settings.DEVICE_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    fleet(3)
    response = api.get(f"{path}?{query}")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid_page"
    assert message in body["message"]


def test_a_cursor_alone_lists_the_rest_after_that_device(api):
    fleet(5)
    body = api.get("/config?cursor=dev-002").json()
    assert [c["device_id"] for c in body["configs"]] == ["dev-003", "dev-004"]
    assert body["next_cursor"] is None


def test_targets_page_with_a_link_to_the_next_page(api, settings):
    settings.DEVICE_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    ids = fleet(12)
    seen, path = [], "/prometheus/targets?limit=5"
    pages = 0
    while path:
        response = api.get(path)
        assert response.status_code == 200
        seen += [group["labels"]["device_id"] for group in response.json()]
        pages += 1
        link = response.headers.get("Link")
        if link is None:
            assert "X-Next-Cursor" not in response.headers
            path = None
        else:
            assert link.endswith('>; rel="next"')
            path = link[1 : link.index(">")]
            assert response.headers["X-Next-Cursor"] in path
    assert seen == ids
    assert pages == 3


def test_targets_answer_304_to_the_etag_of_the_current_list(api, settings):
    settings.DEVICE_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    fleet(4)
    first = api.get("/prometheus/targets")
    etag = first.headers["ETag"]
    assert etag.startswith('"') and first.headers["Cache-Control"] == "no-cache"
    again = api.get("/prometheus/targets", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["ETag"] == etag
    assert api.get("/prometheus/targets", HTTP_IF_NONE_MATCH=f'"other", {etag}').status_code == 304
    assert api.get("/prometheus/targets", HTTP_IF_NONE_MATCH='"other"').status_code == 200
    # A status change changes the list, so the old ETag no longer matches.
    DeviceHealth.objects.filter(device_id="dev-001").update(status="unreachable")
    changed = api.get("/prometheus/targets", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    # Each status filter is its own list with its own tag.
    healthy = api.get("/prometheus/targets?status=healthy", HTTP_IF_NONE_MATCH=etag)
    assert healthy.status_code == 200
