"""Profiles in the admin: metric checkboxes from the catalogue, the changes a save would
cause shown before saving, saves through the same service as the API."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from devices.models import Device, Profile, ProfileRevision
from tests.helpers import send

pytestmark = pytest.mark.django_db

EXPORTER_PUT = {
    "device_type": "jetson_orin",
    "metrics": {"gpu_power": False, "cpu_temp": False},
    "port": 9102,
    "reload_port": 9101,
}


@pytest.fixture
def staff(client):
    user = User.objects.create_superuser("ops", "ops@example.com", "pw-for-tests")
    client.force_login(user)
    return client


def _form(**overrides):
    data = {"name": "gpu", "selector": "site=lab", "priority": "10", "config": '{"interval": 5}'}
    data.update(overrides)
    return data


def _fleet(anon):
    for device_id, site in (("lab-1", "lab"), ("lab-2", "lab"), ("home-1", "home")):
        send(anon, "PUT", f"/config/{device_id}", EXPORTER_PUT)
        Device.objects.filter(device_id=device_id).update(labels={"site": site})


def test_the_form_offers_each_reported_metric_as_checkboxes(staff, anon):
    _fleet(anon)
    page = staff.get("/admin/devices/profile/add/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "<code>cpu_temp</code>" in html and "<code>gpu_power</code>" in html
    assert 'name="metric_set_1"' in html and 'name="metric_on_1"' in html


def test_preview_lists_the_served_changes_and_saves_nothing(staff, anon):
    _fleet(anon)
    # The catalogue is sorted: cpu_temp is 0, gpu_power is 1.
    form = _form(metric_set_1="on", metric_on_1="on")
    answer = staff.post("/admin/devices/profile/_preview/", form)
    html = answer.content.decode()
    assert answer.status_code == 200
    assert "<strong>2</strong> devices" in html
    assert "<code>lab-1</code>" in html and "<code>home-1</code>" not in html
    assert "<code>metrics.gpu_power</code>" in html and "<code>interval</code>" in html
    assert not Profile.objects.exists()
    assert Device.objects.get(device_id="lab-1").version == 1


def test_preview_shows_a_bad_selector_as_an_error(staff, anon):
    answer = staff.post("/admin/devices/profile/_preview/", _form(selector="site in ("))
    assert 'id="preview-errors"' in answer.content.decode()
    assert "selector" in answer.content.decode()


def test_saving_applies_the_checkboxes_to_the_matching_devices(staff, anon):
    _fleet(anon)
    form = _form(metric_set_1="on", metric_on_1="on", metric_set_0="on")
    answer = staff.post("/admin/devices/profile/add/", form)
    assert answer.status_code == 302, answer.content.decode()[:2000]
    profile = Profile.objects.get(name="gpu")
    assert profile.config == {"interval": 5, "metrics": {"cpu_temp": False, "gpu_power": True}}
    assert ProfileRevision.objects.get(profile_name="gpu").actor == "admin:ops"
    served = send(anon, "GET", "/config/lab-1").json()
    assert served["metrics"] == {"gpu_power": True, "cpu_temp": False}
    assert served["interval"] == 5
    assert "interval" not in send(anon, "GET", "/config/home-1").json()
    page = staff.get("/admin/devices/profile/gpu/change/").content.decode()
    assert "Devices matched now: 2" in page


def test_a_bad_config_is_a_form_error(staff):
    answer = staff.post("/admin/devices/profile/add/", _form(config='{"device_type": "x"}'))
    assert answer.status_code == 200
    assert "device_type" in answer.content.decode()
    assert not Profile.objects.exists()


def test_deleting_in_the_admin_goes_back_to_the_devices_values(staff, anon):
    _fleet(anon)
    staff.post("/admin/devices/profile/add/", _form())
    assert send(anon, "GET", "/config/lab-1").json()["interval"] == 5
    staff.post("/admin/devices/profile/gpu/delete/", {"post": "yes"})
    assert not Profile.objects.exists()
    assert "interval" not in send(anon, "GET", "/config/lab-1").json()


def test_device_metric_checkboxes_write_the_operators_values(staff, anon):
    _fleet(anon)
    staff.post("/admin/devices/profile/add/", _form(metric_set_1="on", metric_on_1="on"))
    page = staff.get("/admin/devices/device/lab-1/_metrics/").content.decode()
    assert 'value="gpu_power" checked' in page and "profile gpu v1" in page
    version = Device.objects.get(device_id="lab-1").version
    # Tick cpu_temp on, leave gpu_power (the profile's) as it is.
    answer = staff.post(
        "/admin/devices/device/lab-1/_metrics/",
        {"enabled": ["cpu_temp", "gpu_power"], "version": str(version)},
    )
    assert answer.status_code == 302
    assert send(anon, "GET", "/config/lab-1").json()["metrics"] == {
        "gpu_power": True, "cpu_temp": True,
    }  # fmt: skip
    assert Device.objects.get(device_id="lab-1").operator_keys == [["metrics", "cpu_temp"]]
    # The profile still decides the box that was left alone.
    staff.post("/admin/devices/profile/gpu/change/", _form(metric_set_1="on"))
    assert send(anon, "GET", "/config/lab-1").json()["metrics"] == {
        "gpu_power": False, "cpu_temp": True,
    }  # fmt: skip


def test_device_metric_checkboxes_refuse_a_stale_page(staff, anon):
    _fleet(anon)
    answer = staff.post(
        "/admin/devices/device/lab-1/_metrics/", {"enabled": ["cpu_temp"], "version": "99"}
    )
    assert answer.status_code == 302
    assert send(anon, "GET", "/config/lab-1").json()["metrics"]["cpu_temp"] is False
