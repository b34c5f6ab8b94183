"""The device admin's own views in-process: the buttons of a device's page, served vs
running config, live cells, CSV export, the column chooser, and who may use them."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import Permission, User

from devices.models import Device, DeviceHealth
from tests.helpers import JETSON, register, send
from tests.support.exporters import Reply

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_devices")]


@pytest.fixture
def staff(client):
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw-for-tests"))
    return client


@pytest.fixture
def viewer(client):
    user = User.objects.create_user("viewer", password="pw-for-tests", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    client.force_login(user)
    return client


def hx(client, path: str):
    return client.post(path, HTTP_HX_REQUEST="true")


def test_running_config_beside_served_marks_the_drifted_keys(staff, api, exporters):
    exporter = exporters()
    register(api, "edge-01", exporter.port)
    exporter.running_config = {**exporter.running_config, "port": 1, "own": "<b>x</b>"}
    page = staff.get("/admin/devices/device/edge-01/_running/").content.decode()
    assert 'class="ems-drifted" data-key="port"' in page
    assert 'class="ems-device-only" data-key="own"' in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page


def test_running_config_of_a_dead_device_says_why(staff, api):
    send(api, "PUT", "/config/edge-01", {**JETSON, "ip_address": "127.0.0.1", "reload_port": 9})
    page = staff.get("/admin/devices/device/edge-01/_running/").content.decode()
    assert "Could not read the running config" in page


def test_reload_button_answers_inline_and_refreshes_the_observation(staff, api, exporters):
    exporter = exporters()
    register(api, "edge-01", exporter.port)
    reloads = exporter.reloads
    answer = hx(staff, "/admin/devices/device/edge-01/_act/reload/").content.decode()
    assert "Reload: reloaded" in answer and 'id="device-observation" hx-swap-oob="true"' in answer
    assert exporter.reloads == reloads + 1


def test_probe_button_without_htmx_redirects_with_a_message(staff, api, exporters):
    exporter = exporters()
    exporter.set("GET", "/health", Reply(503))
    register(api, "edge-01", exporter.port)
    response = staff.post("/admin/devices/device/edge-01/_act/probe/", follow=True)
    assert "Probe now: unhealthy: HTTP 503" in response.content.decode()
    assert DeviceHealth.objects.get(pk="edge-01").status == "unhealthy"


def test_a_viewer_cannot_press_buttons_or_run_actions(viewer, api, exporters):
    exporter = exporters()
    register(api, "edge-01", exporter.port)
    reloads = exporter.reloads
    assert hx(viewer, "/admin/devices/device/edge-01/_act/reload/").status_code == 403
    bulk = viewer.post(
        "/admin/devices/device/", {"action": "reload_devices", "_selected_action": ["edge-01"]}
    )
    assert bulk.status_code in (200, 302, 403)
    assert exporter.reloads == reloads
    page = viewer.get("/admin/devices/device/edge-01/change/").content.decode()
    assert 'data-action="reload"' not in page
    assert viewer.get("/admin/devices/device/edge-01/_running/").status_code == 200


def test_buttons_need_post(staff, api, exporters):
    exporter = exporters()
    register(api, "edge-01", exporter.port)
    assert staff.get("/admin/devices/device/edge-01/_act/reload/").status_code == 405
    assert staff.post("/admin/devices/device/edge-01/_act/nothing/").status_code == 404


def test_csv_export_has_the_filtered_rows_and_quotes_formulas(staff, anon):
    send(anon, "PUT", "/config/a", JETSON)
    send(anon, "PUT", "/config/b", {"device_type": "=HYPERLINK(1)"})
    DeviceHealth.objects.filter(pk="a").update(reload_pending=True)
    response = staff.get("/admin/devices/device/_export.csv?reload_pending=yes")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["device_id"] for row in rows] == ["a"]
    everything = staff.get("/admin/devices/device/_export.csv")
    text = b"".join(everything.streaming_content).decode()
    assert "'=HYPERLINK(1)" in text


def test_live_cells_are_swapped_in_by_id(staff, anon):
    send(anon, "PUT", "/config/edge-01", JETSON)
    cells = staff.get("/admin/devices/device/_live/?q=edge").content.decode()
    assert cells.count('hx-swap-oob="true"') == 5
    listing = staff.get("/admin/devices/device/?q=edge").content.decode()
    for cell_id in [c.split('"')[0] for c in cells.split('id="')[1:]]:
        assert f'id="{cell_id}"' in listing


def test_column_choice_is_kept_and_redirects_only_home(staff, anon):
    send(anon, "PUT", "/config/edge-01", JETSON)
    response = staff.post(
        "/admin/devices/device/_columns/",
        {"columns": ["status", "nonsense"], "next": "https://elsewhere.example/"},
    )
    assert response["Location"] == "/admin/devices/device/"
    page = staff.get("/admin/devices/device/").content.decode()
    assert "column-status" in page and "column-observed_ip" not in page


def test_hostile_text_stored_by_hand_is_escaped(staff):
    from django.utils import timezone

    from tests.support.admin_fleet import HOSTILE_ID, _hostile

    _hostile(timezone.now())
    for path in ("/admin/devices/device/", "/admin/"):
        page = staff.get(path).content.decode()
        assert "<img src=x" not in page and "<script>alert" not in page
        assert "evil&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    device = Device.objects.get(pk=HOSTILE_ID)
    from django.contrib.admin.utils import quote

    page = staff.get(f"/admin/devices/device/{quote(device.pk)}/change/").content.decode()
    assert "<img src=x" not in page and "<script>alert" not in page


def test_home_page_shows_each_panel_once(staff, anon):
    send(anon, "PUT", "/config/edge-01", JETSON)
    page = staff.get("/admin/").content.decode()
    for panel in ("fleet-overview", "last-sync", "leader-status"):
        assert page.count(f'id="{panel}"') == 1, panel
    assert page.count("edgeserver/console.css") == 1


def test_export_and_live_cells_refuse_unknown_filters(staff):
    assert staff.get("/admin/devices/device/_export.csv?nonsense__gt=1").status_code == 400
    assert staff.get("/admin/devices/device/_live/?nonsense__gt=1").status_code == 400


def test_a_viewer_cannot_revoke_tokens(client, operator_token):
    from users.models import ApiToken
    from users.tokens import principal_for_token

    user = User.objects.create_user("viewer", password="pw-for-tests", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_apitoken"))
    client.force_login(user)
    token = ApiToken.objects.get()
    client.post("/admin/users/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    assert principal_for_token(operator_token) is not None


def test_sorting_puts_never_observed_devices_at_the_same_end_on_every_database(staff, anon):
    for device_id in ("a", "b", "never"):
        send(anon, "PUT", f"/config/{device_id}", JETSON)
    DeviceHealth.objects.filter(pk="never").delete()
    DeviceHealth.objects.filter(pk="a").update(consecutive_failures=7)
    page = staff.get("/admin/devices/device/?o=-6").content.decode()  # failures, descending
    rows = page.split('id="result_list"')[1]
    assert rows.index(">a</a>") < rows.index(">b</a>")
    assert rows.index(">a</a>") < rows.index(">never</a>")
    page = staff.get("/admin/devices/device/?o=5").content.decode()  # last seen, oldest first
    assert page.split('id="result_list"')[1].index(">never</a>") < page.split(
        'id="result_list"'
    )[1].index(">a</a>")
