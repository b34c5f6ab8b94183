"""Labels in the admin: editable on the device form (validated as the API validates
them), shown in the device list, and a list filter by label pair or by any selector."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User

from devices.labelling import device_labels_set
from devices.models import Device, DeviceRevision
from tests.helpers import JETSON, send
from tests.test_admin import _form
from users.actors import Actor

pytestmark = pytest.mark.django_db

LIST = "/admin/devices/device/"


@pytest.fixture
def staff(client):
    user = User.objects.create_superuser("ops", "ops@example.com", "pw-for-tests")
    client.force_login(user)
    return client


def rows(page) -> list[str]:
    body = page.content.decode().split("<tbody>")[-1]
    return [d.device_id for d in Device.objects.order_by("device_id") if f">{d.device_id}<" in body]


def fleet(anon) -> None:
    for device_id, labels in (
        ("lab-a", {"site": "lab-3", "rack": "r1"}),
        ("lab-b", {"site": "lab-3", "rack": "r2"}),
        ("plant-a", {"site": "plant"}),
        ("spare", {}),
    ):
        send(anon, "PUT", f"/config/{device_id}", JETSON)
        device_labels_set(device_id=device_id, labels=labels, actor=Actor(name="tests"))


def test_labels_are_saved_from_the_device_form_without_a_config_revision(staff, anon):
    send(anon, "PUT", "/config/edge-01", JETSON)
    form = staff.get(f"{LIST}edge-01/change/").content.decode()
    assert 'name="labels"' in form
    revisions = DeviceRevision.objects.count()
    extra = {k: v for k, v in JETSON.items() if k not in ("device_type", "port", "reload_port")}
    same_config = _form(version="1", ip_address="", extra_config=json.dumps(extra))
    response = staff.post(
        f"{LIST}edge-01/change/",
        {**same_config, "labels": '{"site": "lab-3"}'},
        follow=True,
    )
    assert response.status_code == 200
    device = Device.objects.get(pk="edge-01")
    assert device.labels == {"site": "lab-3"}
    assert "Labels of edge-01 saved" in response.content.decode()
    assert DeviceRevision.objects.count() == revisions


def test_a_new_device_gets_its_labels_from_the_add_form(staff):
    response = staff.post(f"{LIST}add/", {**_form(), "labels": '{"rack": "r2"}'})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Device.objects.get(pk="edge-01").labels == {"rack": "r2"}


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ('{"site": "lab 3"}', "the value &#x27;lab 3&#x27; must be empty or 1-63"),
        ('{"status": "x"}', "is reserved"),
        ('["site"]', "labels must be an object"),
        ('{"site": 3}', "the value must be a string"),
    ],
)
def test_a_bad_label_is_a_form_error_and_saves_nothing(staff, anon, labels, expected):
    send(anon, "PUT", "/config/edge-01", JETSON)
    response = staff.post(
        f"{LIST}edge-01/change/", {**_form(version="1", port="9400"), "labels": labels}
    )
    assert response.status_code == 200
    assert expected in response.content.decode()
    device = Device.objects.get(pk="edge-01")
    assert (device.labels, device.port) == ({}, 9102)


def test_a_post_without_the_labels_field_keeps_them(staff, anon):
    fleet(anon)
    response = staff.post(f"{LIST}lab-a/change/", _form(device_id="lab-a", version="1"))
    assert response.status_code == 302
    assert Device.objects.get(pk="lab-a").labels == {"rack": "r1", "site": "lab-3"}


def test_the_list_shows_labels_and_filters_by_a_pair(staff, anon):
    fleet(anon)
    page = staff.get(LIST)
    html = page.content.decode()
    assert '<td class="field-label_list"><span class="ems-label">rack=r1</span> ' in html
    assert '<span class="ems-label">site=lab-3</span>' in html
    # The filter lists the pairs present in the fleet, with their counts.
    assert "site=lab-3 (2)" in html and "site=plant (1)" in html and "rack=r2 (1)" in html
    assert rows(staff.get(LIST, {"selector": "site=lab-3"})) == ["lab-a", "lab-b"]


def test_the_list_filters_by_any_selector_with_the_other_filters(staff, anon):
    fleet(anon)
    assert rows(staff.get(LIST, {"selector": "site notin (lab-3)"})) == ["plant-a", "spare"]
    assert rows(staff.get(LIST, {"selector": "!site"})) == ["spare"]
    assert rows(staff.get(LIST, {"selector": "site=lab-3", "q": "lab-b"})) == ["lab-b"]
    assert rows(staff.get(LIST, {"selector": "site=lab-3", "status": "healthy"})) == []


def test_a_bad_selector_in_the_list_says_why_and_lists_nothing(staff, anon):
    fleet(anon)
    page = staff.get(LIST, {"selector": "site in ("})
    assert page.status_code == 200
    assert "Not a label selector" in page.content.decode()
    assert rows(page) == []


def test_the_csv_export_keeps_the_label_filter(staff, anon):
    fleet(anon)
    export = staff.get(f"{LIST}_export.csv", {"selector": "site=plant"})
    assert export.status_code == 200
    lines = b"".join(export.streaming_content).decode().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["plant-a"]


def test_the_labels_column_is_shown_by_default_once_a_device_has_labels(staff, anon):
    send(anon, "PUT", "/config/edge-01", JETSON)
    assert "column-label_list" not in staff.get(LIST).content.decode()
    device_labels_set(device_id="edge-01", labels={"site": "x"}, actor=Actor(name="tests"))
    assert "column-label_list" in staff.get(LIST).content.decode()
