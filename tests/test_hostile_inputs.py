"""Hostile input against every route of the schema: each one is refused with a 4xx in the
contract's error shape, and nothing stored changes.

The routes come from the OpenAPI schema itself, so a route added later is attacked too.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from drf_spectacular.generators import SchemaGenerator

from devices.models import Device, DeviceHealth, DeviceRevision
from tests.helpers import JETSON, send
from users.models import ApiToken

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000 + "]" * 100_000
HOSTILE_BODIES = {
    "not json": b"{device_type: jetson",
    "an array": b"[1, 2, 3]",
    "a string": b'"jetson"',
    "nan": b'{"device_type": "x", "v": NaN}',
    "infinity": b'{"device_type": "x", "v": Infinity}',
    "beyond a double": b'{"device_type": "x", "v": -1e999}',
    "nul in a value": json.dumps({"device_type": "x\u0000y"}).encode(),
    "nul in a key": json.dumps({"device_type": "x", "a\u0000": 1}).encode(),
    "lone surrogate": b'{"device_type": "x", "v": "\\ud800"}',
    "invalid utf-8": b'{"device_type": "\xff\xfe"}',
    "deep nesting": ('{"device_type": "x", "v": ' + DEEP + "}").encode(),
    "over the size limit": json.dumps({"device_type": "x", "v": "a" * 300_000}).encode(),
    "wrong types": json.dumps(
        {"device_type": 7, "port": "9100", "reload_port": True, "ip_address": 10}
    ).encode(),
    "ports out of range": json.dumps(
        {"device_type": "x", "port": 0, "reload_port": 70000}
    ).encode(),
    "an address nobody may reach": json.dumps(
        {"device_type": "x", "ip_address": "169.254.169.254"}
    ).encode(),
    "an address with a zone": json.dumps(
        {"device_type": "x", "ip_address": "fe80::1%eth0"}
    ).encode(),
    "a body naming another device": json.dumps({"device_type": "x", "device_id": "other"}).encode(),
}
HOSTILE_IDS = [
    "..",
    "a..b",
    ".hidden",
    "-dash",
    "a" * 254,
    "with space",
    "semi;colon",
    "quote'",
    "new\nline",
    "nul\x00",
    "ünïcode",
    "%2e%2e",
]
HOSTILE_QUERIES = ["refresh=maybe", "status=DROP TABLE", "namespace=Kube_System", "q=%00"]


def stored_state() -> str:
    """A fingerprint of everything a refused request must leave as it was."""
    rows = [
        list(Device.objects.order_by("pk").values_list()),
        list(
            DeviceHealth.objects.order_by("pk").values_list("pk", "observed_ip", "reload_pending")
        ),
        list(DeviceRevision.objects.order_by("pk").values_list("device_id", "version")),
        list(ApiToken.objects.order_by("pk").values_list("pk", "revoked_at")),
    ]
    return hashlib.sha256(repr(rows).encode()).hexdigest()


SCHEMA = SchemaGenerator().get_schema(request=None, public=True)


def operations(*, with_body: bool) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, methods in SCHEMA["paths"].items()
        for method, operation in methods.items()
        if method in {"get", "put", "post", "patch", "delete"}
        and ("requestBody" in operation) == with_body
    ]


def query_parameters(path: str) -> set[str]:
    return {
        parameter["name"]
        for operation in SCHEMA["paths"][path].values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query"
    }


WRITES = operations(with_body=True)
# Bodies that are wrong only for a body holding a device's config.
CONFIG_BODIES = {
    "wrong types",
    "ports out of range",
    "an address nobody may reach",
    "an address with a zone",
    "a body naming another device",
}


def concrete(path: str) -> str:
    return path.replace("{device_id}", "edge-01").replace("{path_token}", "fleet-enrollment")


def assert_refused(response, what: str) -> None:
    assert 400 <= response.status_code < 500, (what, response.status_code, response.content[:300])
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"], (what, body)


@pytest.fixture
def fleet(api, settings):
    settings.ENROLLMENT_TOKENS = ["fleet-enrollment"]
    assert (
        send(api, "PUT", "/config/edge-01", {**JETSON, "ip_address": "127.0.0.1"}).status_code
        == 200
    )
    return api


@pytest.mark.parametrize("method, path", WRITES, ids=[f"{m} {p}" for m, p in WRITES])
@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
def test_every_write_refuses_hostile_bodies_and_changes_nothing(fleet, kube, method, path, name):
    config_body = path.endswith("/config/{device_id}") or path == "/devices/{device_id}"
    if name in CONFIG_BODIES and not config_body:
        pytest.skip("wrong only for a config body")
    if name == "a body naming another device" and path == "/devices/{device_id}":
        pytest.skip("PATCH /devices/{id} ignores other keys, as the contract says")
    before = stored_state()
    response = send(fleet, method, concrete(path), HOSTILE_BODIES[name])
    assert_refused(response, f"{method} {path} with {name}")
    assert stored_state() == before


@pytest.mark.parametrize("device_id", HOSTILE_IDS, ids=repr)
@pytest.mark.parametrize(
    "method, template",
    [
        ("GET", "/config/{}"),
        ("PUT", "/config/{}"),
        ("DELETE", "/config/{}"),
        ("GET", "/devices/{}/status"),
        ("PATCH", "/devices/{}"),
        ("POST", "/devices/{}/reload"),
        ("DELETE", "/devices/{}/ip"),
        ("GET", "/config/{}/history"),
    ],
)
def test_hostile_device_ids_are_refused_on_every_device_route(fleet, device_id, method, template):
    from urllib.parse import quote

    before = stored_state()
    response = send(fleet, method, template.format(quote(device_id, safe="")), JETSON)
    assert_refused(response, f"{method} {template} with id {device_id!r}")
    assert stored_state() == before


GET_ROUTES = [path for method, path in operations(with_body=False) if method == "GET"]


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
@pytest.mark.parametrize("path", GET_ROUTES)
def test_hostile_queries_are_refused(fleet, kube, path, query):
    name = query.split("=")[0]
    if not query_parameters(path) and path == "/metrics":
        pytest.skip("/metrics reads no query at all")
    if name not in query_parameters(path) and name != "q":
        pytest.skip("a parameter this route does not take (ignored)")
    if name == "q" and "q" not in query_parameters(path):
        query = "unknown=%00"  # NUL is refused whatever the parameter
    response = fleet.get(f"{concrete(path)}?{query}")
    assert_refused(response, f"GET {path}?{query}")


def test_a_token_guessed_in_the_path_or_the_header_gets_nowhere(fleet, settings):
    from tests.support.client import ServerClient

    settings.DEVICE_REGISTRATION = "token"
    before = stored_state()
    for guess in ("ems_" + "A" * 43, "' OR 1=1 --", "fleet-enrollmen", "fleet-enrollment-"):
        client = ServerClient()
        assert send(client, "PUT", f"/d/{guess}/config/edge-09", JETSON).status_code == 401
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {guess}")
        assert send(client, "PUT", "/config/edge-09", JETSON).status_code == 401
        assert client.get("/config").status_code == 401
    assert stored_state() == before
