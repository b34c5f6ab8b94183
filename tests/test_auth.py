"""Who may call what: operator tokens, device tokens, enrollment tokens, sessions, modes."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from devices.models import Device, DeviceRevision
from tests.helpers import JETSON, send
from tests.support.client import ServerClient
from users.choices import TokenKind
from users.models import ApiToken
from users.tokens import api_token_create, api_token_revoke, operator_token_bootstrap

pytestmark = pytest.mark.django_db

OPERATOR_ROUTES = [
    ("GET", "/config"),
    ("POST", "/config/x"),
    ("PATCH", "/config/x"),
    ("DELETE", "/config/x"),
    ("GET", "/config/x/history"),
    ("POST", "/config/x/rollback"),
    ("GET", "/devices"),
    ("GET", "/devices/x/status"),
    ("PATCH", "/devices/x"),
    ("GET", "/metrics/summary"),
]


def bearer(token: str) -> ServerClient:
    client = ServerClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.mark.parametrize(("method", "path"), OPERATOR_ROUTES)
def test_operator_routes_need_credentials(anon, method, path):
    response = send(anon, method, path, {"device_type": "j", "ip_address": "127.0.0.1"})
    assert response.status_code == 401
    assert response.json()["error"] == "authentication_required"
    assert response.json()["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Device.objects.exists()


@pytest.mark.parametrize(("method", "path"), OPERATOR_ROUTES)
def test_wrong_token_is_401(method, path):
    response = send(bearer("ems_wrong"), method, path, {})
    assert response.status_code == 401
    assert response.json()["error"] == "authentication_required"


def test_public_routes_need_nothing(anon):
    assert anon.get("/health").status_code == 200
    assert anon.get("/api/schema").status_code == 200
    assert anon.get("/api/docs").status_code == 200


def test_api_tokens_setting_grants_operator(settings):
    settings.API_TOKENS = ["from-env-token"]
    assert bearer("from-env-token").get("/config").status_code == 200
    assert bearer("from-env-token-x").get("/config").status_code == 401


def test_revoked_token_is_refused(db):
    token, raw = api_token_create(name="t")
    assert bearer(raw).get("/config").status_code == 200
    api_token_revoke(token=token)
    assert bearer(raw).get("/config").status_code == 401


def test_token_use_is_recorded(db):
    token, raw = api_token_create(name="t")
    bearer(raw).get("/config")
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_operator_write_names_the_token_in_history(api):
    send(api, "PUT", "/config/a", {"device_type": "jetson"})
    revision = DeviceRevision.objects.get(device_id="a")
    assert (revision.actor, revision.source) == ("token:tests", "api")


def test_anonymous_device_write_is_recorded_as_device(anon):
    send(anon, "PUT", "/config/a", JETSON)
    revision = DeviceRevision.objects.get(device_id="a")
    assert (revision.actor, revision.source) == ("anonymous", "device")


# ---- device routes under DEVICE_REGISTRATION ---------------------------------------------


def test_open_registration_lets_exporters_in(anon, settings):
    settings.DEVICE_REGISTRATION = "open"
    assert send(anon, "PUT", "/config/a", JETSON).status_code == 200
    assert anon.get("/config/a").status_code == 200


def test_token_registration_refuses_anonymous_devices(anon, settings):
    settings.DEVICE_REGISTRATION = "token"
    response = send(anon, "PUT", "/config/a", JETSON)
    assert response.status_code == 401
    assert "DEVICE_REGISTRATION=token" in response.json()["message"]
    assert anon.get("/config/a").status_code == 401
    assert not Device.objects.exists()


def test_device_token_is_valid_only_for_its_device(settings):
    settings.DEVICE_REGISTRATION = "token"
    _, raw = api_token_create(name="edge", kind=TokenKind.DEVICE, device_id="edge-01")
    device = bearer(raw)
    assert send(device, "PUT", "/config/edge-01", JETSON).status_code == 200
    assert device.get("/config/edge-01").status_code == 200
    other = send(device, "PUT", "/config/edge-02", JETSON)
    assert other.status_code == 403
    assert other.json()["error"] == "forbidden"
    assert device.get("/config").status_code == 403
    assert send(device, "DELETE", "/config/edge-01").status_code == 403
    revision = DeviceRevision.objects.get(device_id="edge-01")
    assert (revision.actor, revision.source) == ("device:edge", "device")


def test_device_token_for_another_device_is_refused_even_when_open(settings):
    settings.DEVICE_REGISTRATION = "open"
    _, raw = api_token_create(name="edge", kind=TokenKind.DEVICE, device_id="edge-01")
    assert send(bearer(raw), "PUT", "/config/edge-02", JETSON).status_code == 403


def test_enrollment_token_works_for_any_device(settings):
    settings.DEVICE_REGISTRATION = "token"
    settings.ENROLLMENT_TOKENS = ["fleet-enroll-1"]
    fleet = bearer("fleet-enroll-1")
    assert send(fleet, "PUT", "/config/a", JETSON).status_code == 200
    assert send(fleet, "PUT", "/config/b", JETSON).status_code == 200
    assert fleet.get("/config").status_code == 403


def test_path_token_prefix_serves_an_unmodified_exporter(anon, settings):
    settings.DEVICE_REGISTRATION = "token"
    _, raw = api_token_create(name="edge", kind=TokenKind.DEVICE, device_id="edge-01")
    put = send(anon, "PUT", f"/d/{raw}/config/edge-01", JETSON)
    assert put.status_code == 200
    got = anon.get(f"/d/{raw}/config/edge-01")
    assert got.status_code == 200
    assert got.json()["device_type"] == "jetson_orin"
    assert anon.get(f"/d/{raw}/config/edge-02").status_code == 403
    assert anon.get("/d/ems_bogus/config/edge-01").status_code == 401


def test_operator_may_use_device_routes_in_token_registration(api, settings):
    settings.DEVICE_REGISTRATION = "token"
    assert send(api, "PUT", "/config/a", JETSON).status_code == 200


# ---- sessions ---------------------------------------------------------------------------


def test_staff_session_is_an_operator_and_csrf_is_enforced(db):
    user = User.objects.create_user("ops", password="pw", is_staff=True)
    client = ServerClient(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/config").status_code == 200
    refused = send(client, "POST", "/config/x", {"device_type": "j", "ip_address": "127.0.0.1"})
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["message"]


def test_non_staff_session_is_not_an_operator(db):
    user = User.objects.create_user("someone", password="pw")
    client = ServerClient()
    client.force_login(user)
    assert client.get("/config").status_code == 401


# ---- AUTH_MODE=open ---------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), OPERATOR_ROUTES)
def test_open_mode_lets_everyone_in(anon, settings, method, path):
    settings.AUTH_MODE = "open"
    send(anon, "PUT", "/config/x", {"device_type": "jetson", "ip_address": "127.0.0.1"})
    response = send(anon, method, path, {"device_type": "j", "version": 1})
    assert response.status_code != 401


def test_open_mode_ignores_stale_tokens(settings):
    settings.AUTH_MODE = "open"
    assert bearer("ems_old_token").get("/config").status_code == 200


# ---- bootstrap and the command ----------------------------------------------------------


def test_bootstrap_issues_one_operator_token(settings):
    settings.API_TOKENS = []
    raw = operator_token_bootstrap()
    assert raw and raw.startswith("ems_")
    assert bearer(raw).get("/config").status_code == 200
    assert operator_token_bootstrap() is None
    assert ApiToken.objects.count() == 1
    assert ApiToken.objects.get().digest != raw


def test_bootstrap_is_skipped_with_api_tokens_or_open_mode(settings):
    settings.API_TOKENS = ["x"]
    assert operator_token_bootstrap() is None
    settings.API_TOKENS = []
    settings.AUTH_MODE = "open"
    assert operator_token_bootstrap() is None
    assert not ApiToken.objects.exists()


def test_create_api_token_command(capsys):
    call_command("create_api_token", "--name", "ci")
    raw = capsys.readouterr().out.strip()
    assert bearer(raw).get("/config").status_code == 200
    call_command("create_api_token", "--name", "edge", "--device", "edge-01")
    device_raw = capsys.readouterr().out.strip()
    token = ApiToken.objects.get(name="edge")
    assert (token.kind, token.device_id) == ("device", "edge-01")
    assert bearer(device_raw).get("/config").status_code == 403
