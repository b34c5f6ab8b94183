"""The config routes of the contract, through HTTP (DRF test client)."""

from __future__ import annotations

import pytest

from devices.models import Device, DeviceRevision
from tests.helpers import JETSON, send

pytestmark = pytest.mark.django_db


def test_put_registers_then_updates(anon):
    first = send(anon, "PUT", "/config/edge-01", JETSON)
    assert first.status_code == 200
    assert first.json() == {
        "status": "registered",
        "device_id": "edge-01",
        "reload_triggered": False,
        "version": 1,
    }
    second = send(anon, "PUT", "/config/edge-01", {**JETSON, "port": 9200})
    assert second.status_code == 200
    assert second.json()["status"] == "updated"


def test_get_config_spreads_extra_keys_without_id_or_ip(anon, api):
    send(api, "PUT", "/config/edge-01", {**JETSON, "ip_address": "127.0.0.5"})
    response = anon.get("/config/edge-01")
    assert response.status_code == 200
    assert response.json() == {
        "device_type": "jetson_orin",
        "port": 9102,
        "reload_port": 9101,
        "metrics": {"gpu_power": True, "cpu_temp": False},
        "shelly": {"enabled": True, "server_url": "http://shelly.local"},
    }


def test_get_config_includes_enabled_metrics_only_when_non_empty(anon):
    send(anon, "PUT", "/config/a", {"device_type": "shelly", "enabled_metrics": []})
    assert "enabled_metrics" not in anon.get("/config/a").json()
    send(anon, "PUT", "/config/a", {"device_type": "shelly", "enabled_metrics": ["power"]})
    assert anon.get("/config/a").json()["enabled_metrics"] == ["power"]


def test_put_defaults_ports_when_absent(anon):
    send(anon, "PUT", "/config/pi", {"device_type": "raspberry_pi"})
    body = anon.get("/config/pi").json()
    assert (body["port"], body["reload_port"]) == (9100, 9101)


def test_put_without_ip_keeps_stored_ip(api, anon):
    send(api, "POST", "/config/edge-01", {"device_type": "jetson", "ip_address": "127.1.1.1"})
    send(anon, "PUT", "/config/edge-01", {"device_type": "jetson"})
    send(anon, "PUT", "/config/edge-01", {"device_type": "jetson", "ip_address": ""})
    assert Device.objects.get(pk="edge-01").ip_address == "127.1.1.1"


def test_put_replaces_extra_config_and_enabled_metrics(anon):
    send(anon, "PUT", "/config/x", {"device_type": "jetson", "a": 1, "enabled_metrics": ["m"]})
    send(anon, "PUT", "/config/x", {"device_type": "jetson", "b": 2})
    assert anon.get("/config/x").json() == {
        "device_type": "jetson",
        "port": 9100,
        "reload_port": 9101,
        "b": 2,
    }


def test_put_drops_top_level_null_extra_keys(anon):
    # The exporter crashes on `"shelly": null`; a null top-level key is "not set".
    send(anon, "PUT", "/config/x", {"device_type": "shelly", "shelly": None, "keep": {"a": None}})
    assert anon.get("/config/x").json() == {
        "device_type": "shelly",
        "port": 9100,
        "reload_port": 9101,
        "keep": {"a": None},
    }


def test_put_normalises_ip_address(api):
    send(api, "PUT", "/config/v6", {"device_type": "jetson", "ip_address": "0:0:0:0:0:0:0:1"})
    assert Device.objects.get(pk="v6").ip_address == "::1"


def test_put_without_device_type_is_refused(anon):
    response = send(anon, "PUT", "/config/edge-01", {"port": 9100})
    assert response.status_code == 400
    assert response.json() == {
        "error": "Missing required field",
        "device_id": "edge-01",
        "message": "device_type is required",
    }
    assert not Device.objects.exists()


@pytest.mark.parametrize("bad", ["999.1.1.1", "10.0.0", "fe80::1%eth0", " 127.0.0.1", "abc", 17])
def test_put_with_invalid_ip_is_refused(api, bad):
    response = send(api, "PUT", "/config/e", {"device_type": "jetson", "ip_address": bad})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_ip_address"
    assert body["message"] == f"Invalid IP address format: {bad}"
    assert not Device.objects.exists()


@pytest.mark.parametrize("bad", [0, 65536, -1, "9100", True, 9100.5, 10**20])
def test_invalid_ports_are_refused(anon, bad):
    for key in ("port", "reload_port"):
        response = send(anon, "PUT", "/config/e", {"device_type": "jetson", key: bad})
        assert response.status_code == 400, (key, bad)
        assert response.json()["error"] == "invalid_port"
        assert key in response.json()["message"]
    assert not Device.objects.exists()


@pytest.mark.parametrize("bad", ["", "   ", 5, ["jetson"], "x" * 65])
def test_invalid_device_type_is_refused(anon, bad):
    response = send(anon, "PUT", "/config/e", {"device_type": bad})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_device_type"


@pytest.mark.parametrize("bad", ["all", [1, 2], {"a": True}, ["ok", None]])
def test_invalid_enabled_metrics_is_refused(anon, bad):
    response = send(anon, "PUT", "/config/e", {"device_type": "jetson", "enabled_metrics": bad})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_enabled_metrics"


@pytest.mark.parametrize(
    "device_id",
    ["-edge", ".hidden", "_x", "a..b", "has space", "a/b", "caf\u00e9", "x" * 254, "a%00b"],
)
def test_invalid_device_ids_are_refused(anon, device_id):
    response = send(anon, "PUT", f"/config/{device_id}", {"device_type": "jetson"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_device_id"
    assert not Device.objects.exists()


@pytest.mark.parametrize("device_id", ["edge-01", "orin-desktop", "Jetson_Lab.3", "7pi", "x" * 253])
def test_valid_device_ids_are_accepted(anon, device_id):
    assert send(anon, "PUT", f"/config/{device_id}", {"device_type": "jetson"}).status_code == 200
    assert anon.get(f"/config/{device_id}").status_code == 200


@pytest.mark.parametrize(
    "raw", [b"{not json", b"[1, 2]", b'"text"', b"42", b"null", b'{"a": NaN}', b"\xff\xfe"]
)
def test_body_that_is_not_a_json_object_is_refused(anon, raw):
    response = send(anon, "PUT", "/config/e", raw)
    assert response.status_code == 400
    assert response.json()["error"] == "Invalid request body"
    assert response.json()["message"]
    assert not Device.objects.exists()


def test_json_body_without_content_type_is_accepted(anon):
    # curl -d '{...}' sends application/x-www-form-urlencoded.
    response = anon.put(
        "/config/e",
        data='{"device_type": "jetson"}',
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200


def test_body_with_nul_characters_is_refused(anon):
    response = send(anon, "PUT", "/config/e", {"device_type": "jetson", "x": "a\u0000b"})
    assert response.status_code == 400
    assert response.json()["error"] == "Invalid request body"


def test_body_over_256_kib_is_refused_with_413(anon):
    body = {"device_type": "jetson", "blob": "x" * (256 * 1024)}
    response = send(anon, "PUT", "/config/e", body)
    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"
    assert not Device.objects.exists()


def test_body_naming_another_device_is_refused(anon):
    response = send(anon, "PUT", "/config/a", {"device_type": "jetson", "device_id": "b"})
    assert response.status_code == 400
    assert response.json()["error"] == "device_id_mismatch"
    ok = send(anon, "PUT", "/config/a", {"device_type": "jetson", "device_id": "a"})
    assert ok.status_code == 200
    assert "device_id" not in anon.get("/config/a").json()


def test_get_unknown_config_is_404(anon):
    response = anon.get("/config/ghost")
    assert response.status_code == 404
    assert response.json() == {
        "error": "Device not found",
        "device_id": "ghost",
        "message": "No configuration available for this device",
    }


def test_trailing_slash_is_accepted(anon):
    assert send(anon, "PUT", "/config/e/", {"device_type": "jetson"}).status_code == 200
    assert anon.get("/config/e/").status_code == 200


def test_config_list(api, anon):
    send(anon, "PUT", "/config/b", {"device_type": "shelly", "enabled_metrics": ["p"], "k": 1})
    send(anon, "PUT", "/config/a", {"device_type": "jetson"})
    response = api.get("/config")
    assert response.status_code == 200
    assert response.json() == {
        "configs": [
            {"device_id": "a", "device_type": "jetson", "port": 9100, "reload_port": 9101},
            {
                "device_id": "b",
                "device_type": "shelly",
                "port": 9100,
                "reload_port": 9101,
                "enabled_metrics": ["p"],
                "k": 1,
            },
        ],
        "total": 2,
    }


# ---- POST --------------------------------------------------------------------------------


def test_post_creates(api):
    response = send(
        api, "POST", "/config/new", {"device_type": "jetson", "ip_address": "127.0.0.9"}
    )
    assert response.status_code == 201
    assert response.json()["status"] == "created"
    assert response.json()["device_id"] == "new"
    assert Device.objects.get(pk="new").ip_address == "127.0.0.9"


def test_post_existing_is_409(api):
    send(api, "POST", "/config/d", {"device_type": "jetson", "ip_address": "127.0.0.9"})
    response = send(api, "POST", "/config/d", {"device_type": "shelly", "ip_address": "127.0.0.8"})
    assert response.status_code == 409
    assert response.json() == {
        "error": "Device already exists",
        "device_id": "d",
        "message": "Use PUT to update existing device",
    }
    assert Device.objects.get(pk="d").device_type == "jetson"


@pytest.mark.parametrize(
    "body",
    [
        {"device_type": "jetson"},
        {"device_type": "j", "ip_address": ""},
        {"device_type": "j", "ip_address": None},
    ],
)
def test_post_requires_ip(api, body):
    response = send(api, "POST", "/config/d", body)
    assert response.status_code == 400
    assert response.json()["error"] == "ip_address_required"
    assert response.json()["message"] == "Device IP address must be specified in configuration"


def test_post_requires_device_type_first(api):
    response = send(api, "POST", "/config/d", {"ip_address": "127.0.0.1"})
    assert response.json()["error"] == "Missing required field"


def test_post_with_invalid_ip(api):
    response = send(api, "POST", "/config/d", {"device_type": "jetson", "ip_address": "nope"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_ip_address"


# ---- PATCH -------------------------------------------------------------------------------


def _device(api, **extra):
    body = {
        "device_type": "jetson",
        "ip_address": "127.0.0.1",
        "port": 9200,
        "reload_port": 9201,
        "enabled_metrics": ["a"],
        "keep": 1,
        "drop": 2,
        **extra,
    }
    assert send(api, "POST", "/config/p", body).status_code == 201


def test_patch_changes_only_present_keys(api, anon):
    _device(api)
    response = send(api, "PATCH", "/config/p", {"keep": 10, "new": [1]})
    assert response.status_code == 200
    assert response.json() == {
        "status": "patched",
        "device_id": "p",
        "reload_triggered": False,
        "version": 2,
    }
    assert anon.get("/config/p").json() == {
        "device_type": "jetson",
        "port": 9200,
        "reload_port": 9201,
        "enabled_metrics": ["a"],
        "keep": 10,
        "drop": 2,
        "new": [1],
    }


def test_patch_null_resets(api, anon):
    _device(api)
    send(
        api,
        "PATCH",
        "/config/p",
        {
            "port": None,
            "reload_port": None,
            "enabled_metrics": None,
            "drop": None,
            "ip_address": None,
        },
    )
    assert anon.get("/config/p").json() == {
        "device_type": "jetson",
        "port": 9100,
        "reload_port": 9101,
        "keep": 1,
    }
    assert Device.objects.get(pk="p").ip_address == "127.0.0.1"


def test_patch_unknown_device_is_404(api):
    response = send(api, "PATCH", "/config/ghost", {"port": 1})
    assert response.status_code == 404
    assert response.json() == {
        "error": "Device not found",
        "device_id": "ghost",
        "message": "Use POST or PUT to create new device",
    }


def test_patch_invalid_ip_changes_nothing(api):
    _device(api)
    response = send(api, "PATCH", "/config/p", {"ip_address": "127.0.0.300", "keep": 5})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_ip_address"
    assert Device.objects.get(pk="p").extra_config["keep"] == 1


def test_patch_device_type_null_is_refused(api):
    _device(api)
    assert send(api, "PATCH", "/config/p", {"device_type": None}).status_code == 400


# ---- DELETE ------------------------------------------------------------------------------


def test_delete(api):
    _device(api)
    response = api.delete("/config/p")
    assert response.status_code == 200
    assert response.json() == {"status": "deleted", "device_id": "p"}
    assert not Device.objects.exists()
    missing = api.delete("/config/p")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Device not found", "device_id": "p"}


# ---- Server health and errors ------------------------------------------------------------


def test_server_health(anon):
    response = anon.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["service"] == "config-server"
    assert all(part.isdigit() for part in body["version"].split("."))
    assert len(body["version"].split(".")) == 3


def test_unknown_route_is_json_404(anon):
    response = anon.get("/no/such/route")
    assert response.status_code == 404
    assert response.json()["error"] == "Not found"


def test_wrong_method_is_json_405(api):
    response = api.delete("/config")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_nothing_is_stored_when_validation_fails_midway(anon):
    send(anon, "PUT", "/config/e", {"device_type": "jetson", "a": 1})
    send(anon, "PUT", "/config/e", {"device_type": "jetson", "a": 2, "port": "x"})
    assert anon.get("/config/e").json()["a"] == 1
    assert DeviceRevision.objects.filter(device_id="e").count() == 1
