"""The bridge in the admin: the two Device actions and the status page."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.db import SessionStore
from django.test import RequestFactory

from devices.models import Device
from k8sbridge.admin import delete_kubernetes_objects, sync_devices_to_kubernetes
from k8sbridge.models import SyncRun
from tests.support.fleet import add_device

pytestmark = pytest.mark.django_db

NS = "monitoring"
STATUS_URL = "/admin/k8sbridge/syncrun/status/"


@pytest.fixture
def new_request(admin_user):
    def make():
        request = RequestFactory().post("/admin/devices/device/")
        request.user = admin_user
        request.session = SessionStore()
        request._messages = FallbackStorage(request)
        return request

    return make


@pytest.fixture
def action_request(new_request):
    return new_request()


def shown(request) -> list[tuple[str, str]]:
    return [(m.level_tag, m.message) for m in get_messages(request)]


def device_admin() -> admin.ModelAdmin:
    return admin.ModelAdmin(Device, admin.site)


def test_sync_action_reports_each_device(kube, action_request):
    add_device("edge-01", ip="192.0.2.1")
    add_device("EDGE-01", ip="192.0.2.2")
    add_device("ill", ip="192.0.2.3", status="unhealthy")
    add_device("untouched", ip="192.0.2.4")

    sync_devices_to_kubernetes(
        device_admin(), action_request,
        Device.objects.filter(device_id__in=["edge-01", "EDGE-01", "ill"]),
    )

    [(level, message)] = shown(action_request)
    assert level == "warning"
    assert message.startswith(
        "Kubernetes sync of 3 devices: 1 failed, 1 created, 1 not published. Failed: "
        "<code>EDGE-01</code> (name collision: edge-device-edge-01 is already used by "
        "device edge-01, which was registered first). "
    )
    assert "Show the 1 device that failed" in message
    assert kube.names("services", NS) == ["edge-device-edge-01"]
    assert SyncRun.objects.get().trigger == "admin"


def test_delete_action_removes_only_the_selected_devices_objects(kube, new_request):
    add_device("a", ip="192.0.2.1")
    add_device("b", ip="192.0.2.2")
    sync_devices_to_kubernetes(device_admin(), new_request(), Device.objects.all())
    action_request = new_request()

    delete_kubernetes_objects(device_admin(), action_request, Device.objects.filter(pk="a"))

    assert shown(action_request) == [
        ("success", "Delete Kubernetes objects of 1 device: 1 deleted.")
    ]
    assert kube.names("services", NS) == ["edge-device-b"]


def test_actions_without_a_cluster_say_so(settings, tmp_path, action_request):
    settings.KUBECONFIG = str(tmp_path / "missing")
    add_device("a")
    sync_devices_to_kubernetes(device_admin(), action_request, Device.objects.all())
    delete_kubernetes_objects(device_admin(), action_request, Device.objects.all())
    messages = shown(action_request)
    assert len(messages) == 2
    assert all(level == "error" and "No Kubernetes cluster is configured" in text
               for level, text in messages)


def test_status_page_without_a_cluster_explains(admin_client, settings, tmp_path):
    settings.KUBECONFIG = str(tmp_path / "missing")
    response = admin_client.get(STATUS_URL)
    assert response.status_code == 200
    text = response.content.decode()
    assert "No Kubernetes cluster is configured" in text
    assert "No sync has run yet." in text


def test_status_page_shows_devices_and_syncs_on_request(admin_client, kube):
    add_device("edge-01")
    page = admin_client.get(STATUS_URL).content.decode()
    assert "edge-device-edge-01" in page
    assert "0 of 1 devices in sync" in page

    response = admin_client.post(STATUS_URL)

    assert response.status_code == 302
    assert kube.names("services", NS) == ["edge-device-edge-01"]
    page = admin_client.get(STATUS_URL).content.decode()
    assert "1 of 1 devices in sync" in page
    assert "Synced namespace monitoring: 1 created" in page


def test_sync_runs_list_links_to_the_status_page(admin_client, kube):
    add_device("edge-01")
    admin_client.post(STATUS_URL)
    page = admin_client.get("/admin/k8sbridge/syncrun/").content.decode()
    assert STATUS_URL in page
    assert "All succeeded" in page


def test_status_page_needs_staff(client):
    response = client.get(STATUS_URL)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_device_changelist_offers_the_kubernetes_actions(kube, client, django_user_model):
    user = django_user_model.objects.create_superuser("ops", "ops@example.com", "pw-for-tests")
    client.force_login(user)
    add_device("edge-01", ip="192.0.2.1")
    page = client.get("/admin/devices/device/").content.decode()
    assert "Sync selected devices to Kubernetes" in page
    assert "Delete Kubernetes objects of selected devices" in page
    response = client.post(
        "/admin/devices/device/",
        {"action": "sync_devices_to_kubernetes", "_selected_action": ["edge-01"]},
        follow=True,
    )
    assert response.status_code == 200
    assert kube.get("services", "monitoring", "edge-device-edge-01") is not None
