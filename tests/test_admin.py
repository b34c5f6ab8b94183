"""The Django admin: devices saved through the services, history, tokens."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from devices.models import Device, DeviceRevision
from tests.helpers import JETSON, send
from users.models import ApiToken
from users.tokens import principal_for_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    user = User.objects.create_superuser("ops", "ops@example.com", "pw-for-tests")
    client.force_login(user)
    return client


def _form(**overrides):
    data = {
        "device_id": "edge-01",
        "device_type": "jetson_orin",
        "ip_address": "127.0.0.5",
        "port": "9102",
        "reload_port": "9101",
        "enabled_metrics": "null",
        "extra_config": '{"shelly": {"enabled": true}}',
    }
    data.update(overrides)
    return data


def test_device_list_shows_status_and_filters(staff, anon):
    send(anon, "PUT", "/config/edge-01", JETSON)
    page = staff.get("/admin/devices/device/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "edge-01" in html and "unknown" in html
    assert "No IP address registered" in html
    filtered = staff.get("/admin/devices/device/?status=healthy")
    assert "edge-01" not in filtered.content.decode().split("<tbody>")[-1]
    assert staff.get("/admin/devices/device/?q=edge").status_code == 200


def test_add_device_goes_through_the_service_and_records_admin(staff, anon):
    response = staff.post("/admin/devices/device/add/", _form())
    assert response.status_code == 302, response.content.decode()[:2000]
    assert anon.get("/config/edge-01").json() == {
        "device_type": "jetson_orin",
        "port": 9102,
        "reload_port": 9101,
        "shelly": {"enabled": True},
    }
    revision = DeviceRevision.objects.get(device_id="edge-01")
    assert (revision.source, revision.actor, revision.action) == ("admin", "admin:ops", "created")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("ip_address", "999.0.0.1", "Invalid IP address format: 999.0.0.1"),
        ("port", "70000", "between 1 and 65535"),
        ("enabled_metrics", '"all"', "enabled_metrics must be a list of strings"),
        ("extra_config", "[1]", "Must be a JSON object"),
        ("device_id", "bad id", "Device id must be"),
    ],
)
def test_admin_form_validates_like_the_api(staff, field, value, expected):
    response = staff.post("/admin/devices/device/add/", _form(**{field: value}))
    assert response.status_code == 200
    assert expected in response.content.decode()
    assert not Device.objects.exists()


def test_change_with_stale_version_is_refused(staff, anon):
    send(anon, "PUT", "/config/edge-01", JETSON)
    page = staff.get("/admin/devices/device/edge-01/change/")
    assert page.status_code == 200
    send(anon, "PUT", "/config/edge-01", {**JETSON, "port": 9300})  # someone else writes
    response = staff.post("/admin/devices/device/edge-01/change/", _form(version="1", port="9400"))
    assert response.status_code == 200
    assert "was changed since this page was opened" in response.content.decode()
    assert Device.objects.get(pk="edge-01").port == 9300


def test_change_saves_and_the_history_button_shows_the_revisions(staff, anon):
    send(anon, "PUT", "/config/edge-01", JETSON)
    page = staff.get("/admin/devices/device/edge-01/change/").content.decode()
    assert "/admin/devices/device/edge-01/history/" in page
    response = staff.post("/admin/devices/device/edge-01/change/", _form(version="1", port="9400"))
    assert response.status_code == 302
    assert anon.get("/config/edge-01").json()["port"] == 9400
    assert DeviceRevision.objects.filter(device_id="edge-01").count() == 2
    # One history: the project's revisions, each with its diff, not Django's edit log.
    history = staff.get("/admin/devices/device/edge-01/history/").content.decode()
    assert "v2 · Updated by admin:ops (admin)" in history
    assert "v1 · Created by anonymous" in history
    assert "-  &quot;port&quot;: 9102," in history and "+  &quot;port&quot;: 9400," in history


def test_history_of_a_deleted_device_is_kept(staff, anon):
    send(anon, "PUT", "/config/edge-01", JETSON)
    staff.post("/admin/devices/device/edge-01/delete/", {"post": "yes"})
    history = staff.get("/admin/devices/device/edge-01/history/")
    assert history.status_code == 200
    assert "was deleted" in history.content.decode()


def test_delete_from_admin_records_a_revision(staff, anon):
    send(anon, "PUT", "/config/edge-01", JETSON)
    response = staff.post("/admin/devices/device/edge-01/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Device.objects.exists()
    assert DeviceRevision.objects.filter(device_id="edge-01", action="deleted").exists()


def test_revision_rollback_action(staff, anon):
    send(anon, "PUT", "/config/edge-01", JETSON)
    send(anon, "PUT", "/config/edge-01", {**JETSON, "port": 9999})
    first = DeviceRevision.objects.get(device_id="edge-01", version=1)
    response = staff.post(
        "/admin/devices/devicerevision/",
        {"action": "roll_back", "_selected_action": [first.pk]},
        follow=True,
    )
    assert "v1 restored" in response.content.decode()
    assert anon.get("/config/edge-01").json()["port"] == 9102


def test_issued_token_is_shown_once_and_works(staff):
    response = staff.post(
        "/admin/users/apitoken/add/",
        {"name": "ci", "kind": "operator", "device_id": ""},
        follow=True,
    )
    html = response.content.decode()
    assert "not shown again" in html
    raw = html.split("<code>")[1].split("</code>")[0]
    assert principal_for_token(raw).is_operator
    token = ApiToken.objects.get(name="ci")
    assert raw not in (token.digest, token.prefix)
    assert raw not in staff.get(f"/admin/users/apitoken/{token.pk}/change/").content.decode()


def test_device_token_needs_a_device_id(staff):
    response = staff.post(
        "/admin/users/apitoken/add/", {"name": "d", "kind": "device", "device_id": ""}
    )
    assert response.status_code == 200
    assert "needs a valid device id" in response.content.decode()


def test_revoke_action(staff, operator_token):
    token = ApiToken.objects.get()
    staff.post("/admin/users/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    assert principal_for_token(operator_token) is None


def test_revision_page_shows_what_changed(staff, anon):
    send(anon, "PUT", "/config/edge-01", JETSON)
    send(anon, "PUT", "/config/edge-01", {**JETSON, "port": 9999})
    second = DeviceRevision.objects.get(device_id="edge-01", version=2)
    page = staff.get(f"/admin/devices/devicerevision/{second.pk}/change/").content.decode()
    assert "-  &quot;port&quot;: 9102," in page
    assert "+  &quot;port&quot;: 9999," in page
    first = DeviceRevision.objects.get(device_id="edge-01", version=1)
    assert "first revision" in staff.get(
        f"/admin/devices/devicerevision/{first.pk}/change/"
    ).content.decode()
