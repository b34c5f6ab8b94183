"""Defects found by trying the server as a new user and as an attacker: each answer here
was wrong before (a 500, a silent no-op, a credential accepted where it must not be)."""

from __future__ import annotations

import pytest

from devices.models import Device, DeviceRevision
from tests.helpers import JETSON, register, send
from tests.support.client import ServerClient
from tests.support.exporters import Reply
from users.choices import TokenKind
from users.tokens import api_token_create

pytestmark = pytest.mark.django_db


def bearer(token: str) -> ServerClient:
    client = ServerClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


# ---- numbers JSON can write but no database or encoder takes ------------------------------


@pytest.mark.parametrize(
    "body",
    [
        '{"device_type": "jetson", "x": 1e400}',
        '{"device_type": "jetson", "shelly": {"scale": -1e999}}',
        '{"device_type": "jetson", "metrics": {"a": true}, "interval": [1, 2e308]}',
    ],
)
def test_a_number_beyond_a_double_is_refused_and_nothing_is_stored(anon, body):
    response = send(anon, "PUT", "/config/edge-01", body)
    assert response.status_code == 400
    assert response.json()["error"] == "Invalid request body"
    assert "out of range" in response.json()["message"]
    assert not Device.objects.exists() and not DeviceRevision.objects.exists()


def test_a_running_config_with_such_a_number_is_a_device_error(api, exporters):
    exporter = exporters()
    register(api, "edge-01", exporter.port)
    exporter.set("GET", "/config", Reply(200, b'{"interval": 1e400}'))
    response = api.get("/devices/edge-01/local-config")
    assert response.status_code == 502
    assert response.json()["error"] == "Device error"


# ---- strict query values ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/devices?refresh=yes",
        "/devices?refresh=1",
        "/devices?refresh=",
        "/metrics/summary?refresh=TRUE",
        "/devices/edge-01/status?refresh=on",
        "/devices?status=",
        "/devices?device_type=",
        "/devices?status=dead",
        "/prometheus/targets?status=",
        "/prometheus/targets?status=down",
    ],
)
def test_a_query_value_that_means_nothing_is_refused(api, path):
    register(api, "edge-01", 9)
    response = api.get(path)
    assert response.status_code == 400, path
    assert response.json()["error"] in {"validation_error", "invalid_filter"}
    assert response.json()["message"]


# ---- clearing a device's address --------------------------------------------------------


def test_an_address_can_be_cleared_and_the_revision_says_so(api):
    register(api, "edge-01", 9)
    response = api.delete("/devices/edge-01/ip")
    assert response.status_code == 200
    assert response.json() == {
        "status": "cleared",
        "device_id": "edge-01",
        "version": 2,
        "changed": True,
    }
    item = api.get("/devices/edge-01/status").json()
    assert (item["ip_address"], item["status"]) == ("", "unknown")
    assert DeviceRevision.objects.get(device_id="edge-01", version=2).note == "ip_address cleared"
    again = api.delete("/devices/edge-01/ip").json()
    assert (again["changed"], again["version"]) == (False, 2)
    assert api.delete("/devices/nobody/ip").status_code == 404
    assert ServerClient().delete("/devices/edge-01/ip").status_code == 401


def test_null_ip_address_still_keeps_the_address_as_the_contract_says(api):
    register(api, "edge-01", 9)
    assert send(api, "PATCH", "/config/edge-01", {"ip_address": None}).status_code == 200
    assert Device.objects.get().ip_address == "127.0.0.1"


# ---- addresses several devices share ------------------------------------------------------


def test_devices_behind_one_nat_are_not_given_its_address(anon, settings, caplog):
    settings.ADOPT_OBSERVED_IP = True
    body = {"device_type": "jetson_orin", "port": 9102}
    send(anon, "PUT", "/config/edge-01", body, remote_addr="127.0.0.50")
    send(anon, "PUT", "/config/edge-02", body, remote_addr="127.0.0.50")
    addresses = dict(Device.objects.values_list("device_id", "ip_address"))
    assert addresses == {"edge-01": "127.0.0.50", "edge-02": ""}
    assert "Not adopting 127.0.0.50 as the address of edge-02: edge-01 already has it" in (
        caplog.text
    )


def test_a_shared_address_is_pointed_out_in_items_and_targets(api):
    register(api, "a", 9101)
    register(api, "b", 9101)
    register(api, "c", 9101, ip_address="127.0.0.2")
    items = {d["device_id"]: d for d in api.get("/devices").json()["devices"]}
    assert items["a"]["address_shared_with"] == ["b"]
    assert items["b"]["address_shared_with"] == ["a"]
    assert "address_shared_with" not in items["c"]
    assert api.get("/devices/a/status").json()["address_shared_with"] == ["b"]
    labels = {g["labels"]["device_id"]: g["labels"] for g in api.get("/prometheus/targets").json()}
    assert labels["a"]["__meta_edge_address_shared_with"] == "b"
    assert "__meta_edge_address_shared_with" not in labels["c"]


# ---- where credentials may travel and what they may do ----------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_an_operator_token_is_refused_in_the_device_path(settings, method, operator_token):
    settings.DEVICE_REGISTRATION = "token"
    response = send(ServerClient(), method, f"/d/{operator_token}/config/edge-01", JETSON)
    assert response.status_code == 401
    assert "device and enrollment tokens only" in response.json()["message"]
    assert not Device.objects.exists()


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"])
def test_the_device_path_takes_only_what_a_device_does(settings, method, operator_token):
    """Operator writes never travel with a credential in the URL: the path prefix has only
    GET and PUT, whatever the token."""
    settings.DEVICE_REGISTRATION = "token"
    response = send(ServerClient(), method, f"/d/{operator_token}/config/edge-01", JETSON)
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert not Device.objects.exists()


def test_a_device_with_its_own_token_is_written_only_with_it(settings, api):
    settings.ENROLLMENT_TOKENS = ["fleet-enrollment-token"]
    _, own = api_token_create(name="edge-01", kind=TokenKind.DEVICE, device_id="edge-01")
    enrolled = bearer("fleet-enrollment-token")
    assert send(enrolled, "PUT", "/config/edge-02", JETSON).status_code == 200  # no own token
    response = send(enrolled, "PUT", "/config/edge-01", JETSON)
    assert response.status_code == 403
    assert "has a token of its own" in response.json()["message"]
    anonymous = send(ServerClient(), "PUT", "/config/edge-01", JETSON)
    assert anonymous.status_code == 401  # it has to send that token
    assert "has a token of its own" in anonymous.json()["message"]
    assert send(bearer(own), "PUT", "/config/edge-01", JETSON).status_code == 200
    assert send(api, "PUT", "/config/edge-01", {**JETSON, "port": 9300}).status_code == 200
    assert enrolled.get("/config/edge-01").status_code == 200  # reading stays allowed


def test_a_doubled_slash_from_a_server_url_ending_in_slash_is_accepted(tmp_path):
    """The exporter joins CONFIG_SERVER_URL and `/config/{id}`: a URL ending in `/` makes
    `//config/{id}` (test clients read `//config` as a host, so this is over gunicorn)."""
    from tests.support.gunicorn import run_server

    with run_server(tmp_path, env={"ENROLLMENT_TOKENS": "fleet-enrollment-token"}) as server:
        put = server.request("PUT", "//config/edge-01", auth=False, json=JETSON)
        assert put.status_code == 200, put.text
        for path in ("//config/edge-01", "/d/fleet-enrollment-token//config/edge-01"):
            fetched = server.request("GET", path, auth=False)
            assert fetched.status_code == 200 and fetched.json()["port"] == 9102, path


# ---- a kubeconfig that does not parse, OPTIONS without a cluster -------------------------

BROKEN_KUBECONFIG = """apiVersion: v1
clusters:
- cluster:
    server: https://127.0.0.1:6443
  name: c
users:
- name: u
  user:
    token: s3cr3t-token-value
   bad-indent: here
"""


@pytest.fixture
def broken_kubeconfig(settings, tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(BROKEN_KUBECONFIG)
    settings.KUBECONFIG = str(path)
    return path


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/kubernetes/status"),
        ("GET", "/kubernetes/health"),
        ("POST", "/kubernetes/sync"),
        ("DELETE", "/kubernetes/cleanup"),
    ],
)
def test_a_kubeconfig_that_does_not_parse_is_the_contracts_503_saying_why(
    api, broken_kubeconfig, method, path
):
    response = send(api, method, path)
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "Kubernetes client not initialized"
    assert body["message"].startswith(
        "Server not running in Kubernetes environment or kubeconfig not found: "
    )
    assert f"kubeconfig {broken_kubeconfig} is not valid YAML" in body["message"]
    assert "line 10" in body["message"]
    assert "s3cr3t" not in response.content.decode()  # no snippet of the file is quoted


def test_the_command_exits_2_and_prints_json_when_no_cluster_can_be_used(broken_kubeconfig, capsys):
    import json

    from django.core.management import call_command

    with pytest.raises(SystemExit) as stopped:
        call_command("sync_kubernetes", "--output", "json")
    assert stopped.value.code == 2
    out = capsys.readouterr()
    body = json.loads(out.out)
    assert body["error"] == "Kubernetes client not initialized"
    assert "not valid YAML" in body["message"] and "s3cr3t" not in out.out + out.err


def test_the_command_prints_json_when_the_cluster_does_not_answer(settings, tmp_path, capsys):
    import json

    from django.core.management import call_command

    from tests.support.kube_api import serve

    with serve() as fake:
        settings.KUBECONFIG = str(fake.write_kubeconfig(tmp_path / "kubeconfig"))
        settings.K8S_REQUEST_TIMEOUT = 0.5
    # The fake API server is gone: its address refuses connections.
    with pytest.raises(SystemExit) as stopped:
        call_command("sync_kubernetes", "--output", "json")
    assert stopped.value.code == 2
    assert json.loads(capsys.readouterr().out)["error"] == "Kubernetes API unreachable"


@pytest.mark.parametrize(
    "path",
    ["/kubernetes/status", "/kubernetes/sync", "/kubernetes/health", "/kubernetes/cleanup"],
)
def test_options_on_a_kubernetes_route_needs_no_cluster(api, path):
    response = api.options(path)
    assert response.status_code == 200
    assert response.json()["name"]
