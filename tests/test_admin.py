"""The Django admin: devices saved through the services, history, tokens."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from devices.models import Device, DeviceRevision
from tests.helpers import JETSON, send
from users.models import ApiToken
from users.tokens import api_token_create, principal_for_token

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


def test_token_form_defaults_to_an_operator_token(staff):
    page = staff.get("/admin/users/apitoken/add/").content.decode()
    assert '<option value="operator" selected>' in page


def test_two_active_tokens_never_share_a_name(staff):
    first = staff.post("/admin/users/apitoken/add/", {"name": "ci", "kind": "operator"})
    assert first.status_code == 302
    again = staff.post("/admin/users/apitoken/add/", {"name": "ci", "kind": "operator"})
    assert again.status_code == 200
    assert "An active token already has this name" in again.content.decode()
    assert ApiToken.objects.filter(name="ci").count() == 1
    ApiToken.objects.filter(name="ci").update(revoked_at=timezone.now())
    reused = staff.post("/admin/users/apitoken/add/", {"name": "ci", "kind": "operator"})
    assert reused.status_code == 302  # a revoked token's name may be used again


def test_an_issued_token_page_offers_revoke_not_save(staff):
    staff.post("/admin/users/apitoken/add/", {"name": "ci", "kind": "operator"})
    token = ApiToken.objects.get(name="ci")
    url = f"/admin/users/apitoken/{token.pk}/change/"
    page = staff.get(url).content.decode()
    assert 'name="_save"' not in page and 'name="_continue"' not in page
    assert "Revoke this token" in page
    # Revoking is a POST with the CSRF token; a GET changes nothing.
    assert staff.get(f"/admin/users/apitoken/{token.pk}/revoke/").status_code == 405
    token.refresh_from_db()
    assert token.is_active
    done = staff.post(f"/admin/users/apitoken/{token.pk}/revoke/", follow=True)
    assert "Revoked ci" in done.content.decode()
    token.refresh_from_db()
    assert not token.is_active
    assert "was revoked on" in staff.get(url).content.decode()


def test_a_viewer_cannot_revoke_a_token(client, django_user_model):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user(
        "viewer", password="pw-viewer-123", is_staff=True
    )
    viewer.user_permissions.add(Permission.objects.get(codename="view_apitoken"))
    token, _ = api_token_create(name="ops")
    client.force_login(viewer)
    page = client.get(f"/admin/users/apitoken/{token.pk}/change/").content.decode()
    assert "Revoke this token" not in page
    assert client.post(f"/admin/users/apitoken/{token.pk}/revoke/").status_code == 403
    token.refresh_from_db()
    assert token.is_active


def test_view_site_leads_to_the_api_docs(staff):
    page = staff.get("/admin/").content.decode()
    assert 'href="/api/docs"' in page


def test_create_api_token_refuses_a_name_an_active_token_has(db):
    from django.core.management import CommandError, call_command

    api_token_create(name="ops")
    with pytest.raises(CommandError, match="already named 'ops'"):
        call_command("create_api_token", "--name", "ops")
    assert ApiToken.objects.filter(name="ops").count() == 1
