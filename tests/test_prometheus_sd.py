"""`GET /prometheus/targets`: Prometheus HTTP service discovery.

Bodies are checked against the shape Prometheus documents for http_sd
(https://prometheus.io/docs/prometheus/latest/http_sd/), written down here independently
of the server's own OpenAPI description. Devices sit at documentation addresses, stored
directly in the database: nothing here may contact them (the `outbound` fixture fails any
attempt).
"""

from __future__ import annotations

import ipaddress
import re

import jsonschema
import pytest
from django.utils import timezone

from devices.choices import DeviceStatus
from devices.models import Device, DeviceHealth
from devices.selectors import scrape_targets
from tests.support.fleet import add_device
from users.choices import TokenKind
from users.tokens import api_token_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("doc_networks")]

URL = "/prometheus/targets"
LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
# host:port, the host an IPv4 literal, a bracketed IPv6 literal or a name.
HOST_PORT = r"^(\[[0-9A-Fa-f:.]+\]|[^\[\]:/]+):[0-9]{1,5}$"

# Prometheus's http_sd format: a JSON list of target groups, each with a required list of
# "host:port" targets and optional labels whose names are Prometheus label names and whose
# values are strings.
HTTP_SD_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["targets"],
        "properties": {
            "targets": {"type": "array", "items": {"type": "string", "pattern": HOST_PORT}},
            "labels": {
                "type": "object",
                "propertyNames": {"pattern": LABEL_NAME},
                "additionalProperties": {"type": "string"},
            },
        },
        "additionalProperties": False,
    },
}


def discover(client, query: str = "") -> list[dict]:
    """Fetch the target groups as Prometheus would, and check the answer's form."""
    response = client.get(URL + query, HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content
    # Prometheus refuses any other Content-Type than application/json (charset utf-8 allowed).
    assert re.fullmatch(r"application/json(; ?charset=utf-8)?", response["Content-Type"])
    body = response.json()
    jsonschema.validate(body, HTTP_SD_SCHEMA)
    return body


def address(target: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    host, _, port = target.rpartition(":")
    if host.startswith("["):
        parsed = ipaddress.ip_address(host[1:-1])
        assert parsed.version == 6
    else:
        parsed = ipaddress.ip_address(host)
        assert parsed.version == 4  # an IPv6 address is always bracketed
    return parsed, int(port)


def test_empty_fleet_is_an_empty_list(api):
    assert discover(api) == []


def test_one_device_is_one_target_group_with_its_labels(api):
    add_device("edge-01", ip="192.0.2.10", port=9102, device_type="jetson_orin")
    Device.objects.filter(pk="edge-01").update(reload_port=9111)
    assert discover(api) == [
        {
            "targets": ["192.0.2.10:9102"],
            "labels": {
                "device_id": "edge-01",
                "device_type": "jetson_orin",
                "__meta_edge_status": "healthy",
                "__meta_edge_reload_port": "9111",
            },
        }
    ]


def test_ipv6_targets_are_bracketed(api):
    add_device("v6", ip="2001:db8::7", port=9100)
    [group] = discover(api)
    assert group["targets"] == ["[2001:db8::7]:9100"]


STATUSES = [DeviceStatus.HEALTHY, DeviceStatus.UNHEALTHY, DeviceStatus.UNREACHABLE]


def test_a_large_mixed_fleet_is_listed_whole_and_valid(api):
    expected = {}
    for n in range(120):
        ip = f"192.0.2.{n + 1}" if n % 2 else f"2001:db8::{n + 1:x}"
        status = STATUSES[n % 3]
        device_id = f"edge-{n:03d}"
        add_device(device_id, ip=ip, port=9100 + n, status=status, device_type=f"type_{n % 4}")
        expected[device_id] = (ipaddress.ip_address(ip), 9100 + n, status, f"type_{n % 4}")
    body = discover(api)
    assert len(body) == 120
    ids = [group["labels"]["device_id"] for group in body]
    assert ids == sorted(expected)  # stable order: by device id
    for group in body:
        labels = group["labels"]
        ip, port, status, device_type = expected[labels["device_id"]]
        [target] = group["targets"]
        assert address(target) == (ip, port)
        assert labels["__meta_edge_status"] == status
        assert labels["device_type"] == device_type
        assert labels["__meta_edge_reload_port"] == "9101"


def test_dead_and_never_probed_devices_stay_listed_so_prometheus_sees_them_down(api):
    add_device("up", ip="192.0.2.1")
    add_device("sick", ip="192.0.2.2", status=DeviceStatus.UNHEALTHY)
    add_device("gone", ip="192.0.2.3", status=DeviceStatus.UNREACHABLE)
    add_device("new", ip="192.0.2.4", status=DeviceStatus.UNKNOWN)
    # Registered without any observation row at all (as bulk imports may be).
    Device.objects.create(
        device_id="bare",
        device_type="shelly",
        ip_address="192.0.2.5",
        created_at=Device.objects.get(pk="up").created_at,
        updated_at=Device.objects.get(pk="up").created_at,
    )
    statuses = {g["labels"]["device_id"]: g["labels"]["__meta_edge_status"] for g in discover(api)}
    assert statuses == {
        "bare": "unknown",
        "gone": "unreachable",
        "new": "unknown",
        "sick": "unhealthy",
        "up": "healthy",
    }


def test_devices_without_an_allowed_address_are_left_out(api):
    add_device("listed", ip="192.0.2.10")
    add_device("no-ip", ip="")
    # TEST-NET-2 is not in DEVICE_ALLOWED_NETWORKS here: the server would never contact it,
    # so it does not send Prometheus there either, whatever was observed before.
    add_device("outside", ip="198.51.100.7")
    add_device("link-local", ip="169.254.169.254")
    assert [g["labels"]["device_id"] for g in discover(api)] == ["listed"]


def test_status_filter(api):
    add_device("up-1", ip="192.0.2.1")
    add_device("up-2", ip="2001:db8::2")
    add_device("down", ip="192.0.2.3", status=DeviceStatus.UNREACHABLE)
    add_device("never", ip="192.0.2.4", status=DeviceStatus.UNKNOWN)

    def ids(query: str) -> list[str]:
        return [g["labels"]["device_id"] for g in discover(api, query)]

    assert ids("?status=healthy") == ["up-1", "up-2"]
    assert ids("?status=unreachable") == ["down"]
    assert ids("?status=unknown") == ["never"]
    assert ids("?status=unhealthy") == []
    assert ids("") == ["down", "never", "up-1", "up-2"]
    # Given empty, the filter is a mistake (a template that lost its value), not "any".
    assert api.get(URL + "?status=").status_code == 400


@pytest.mark.parametrize("value", ["bogus", "HEALTHY", "healthy,unhealthy"])
def test_unknown_status_is_a_400_in_the_contract_shape(api, value):
    response = api.get(URL, {"status": value})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_filter"
    assert body["message"].startswith("status: ")
    assert value in body["message"]


def test_token_mode_needs_an_operator_bearer_token(anon, api, settings):
    settings.AUTH_MODE = "token"
    add_device("edge-01", ip="192.0.2.10")
    missing = anon.get(URL)
    assert missing.status_code == 401
    assert missing.json()["error"] == "authentication_required"
    assert missing["WWW-Authenticate"].startswith("Bearer")
    wrong = anon.get(URL, HTTP_AUTHORIZATION="Bearer ems_not_a_token")
    assert wrong.status_code == 401
    # A device's own credential only opens its config routes.
    _, device_token = api_token_create(name="edge-01", kind=TokenKind.DEVICE, device_id="edge-01")
    as_device = anon.get(URL, HTTP_AUTHORIZATION=f"Bearer {device_token}")
    assert as_device.status_code == 403
    # What Prometheus sends with http_sd_configs[].authorization: an operator token.
    assert len(discover(api)) == 1


def test_open_mode_serves_anyone(anon, settings):
    settings.AUTH_MODE = "open"
    add_device("edge-01", ip="192.0.2.10")
    assert [g["targets"] for g in discover(anon)] == [["192.0.2.10:9100"]]


def test_a_thousand_devices_take_one_query(django_assert_num_queries):
    moment = timezone.now()
    devices = Device.objects.bulk_create(
        Device(
            device_id=f"pi-{n:04d}",
            device_type="raspberry_pi",
            ip_address=f"192.0.2.{n % 250 + 1}" if n % 3 else f"2001:db8::{n:x}",
            created_at=moment,
            updated_at=moment,
        )
        for n in range(1000)
    )
    DeviceHealth.objects.bulk_create(
        DeviceHealth(device=d, status=STATUSES[n % 3]) for n, d in enumerate(devices)
    )
    with django_assert_num_queries(1):
        targets = scrape_targets()
    assert len(targets) == 1000
    with django_assert_num_queries(1):
        healthy = scrape_targets(status=DeviceStatus.HEALTHY)
    assert len(healthy) == 334
