"""Where devices call from: observed_ip and last_contact on the device routes, trusted
proxies, and adoption of the observed address as a device's IP."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from devices.models import Device, DeviceHealth, DeviceRevision
from tests.helpers import register, send
from users.choices import TokenKind
from users.tokens import api_token_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_devices")]

EXPORTER_BODY = {"device_type": "jetson_orin", "metrics": {"gpu": True}, "port": 9102}


def health(device_id: str = "edge-01") -> DeviceHealth:
    return DeviceHealth.objects.get(pk=device_id)


@pytest.fixture
def adopting(settings):
    settings.ADOPT_OBSERVED_IP = True
    return settings


# ---- observed address -----------------------------------------------------------------


def test_device_get_and_put_record_where_the_device_called_from(anon, api):
    send(anon, "PUT", "/config/edge-01", EXPORTER_BODY, remote_addr="127.0.0.7")
    assert health().observed_ip == "127.0.0.7"
    assert health().last_contact is not None
    anon.get("/config/edge-01", REMOTE_ADDR="127.0.0.8")
    assert health().observed_ip == "127.0.0.8"
    item = api.get("/devices/edge-01/status").json()
    assert item["observed_ip"] == "127.0.0.8"
    assert item["last_contact"].startswith(str(timezone.now().year))


def test_repeated_get_from_the_same_address_writes_nothing(anon):
    send(anon, "PUT", "/config/edge-01", EXPORTER_BODY)
    recent = timezone.now() - timedelta(seconds=10)
    DeviceHealth.objects.filter(pk="edge-01").update(last_contact=recent)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(5):
            assert anon.get("/config/edge-01").status_code == 200
    # (The config read itself goes to the driver directly and is not captured here.)
    statements = [q["sql"].lstrip().split()[0].upper() for q in queries.captured_queries]
    assert set(statements) <= {"SELECT"}
    assert health().last_contact == recent


def test_contact_is_rewritten_when_the_address_changes_or_the_last_write_is_old(anon):
    from devices.contacts import contacts

    send(anon, "PUT", "/config/edge-01", EXPORTER_BODY)
    # Five minutes later: the stored contact and the process's memory of it are old.
    old = timezone.now() - timedelta(minutes=5)
    DeviceHealth.objects.filter(pk="edge-01").update(last_contact=old)
    contacts.clear()
    anon.get("/config/edge-01")
    assert health().last_contact > old
    anon.get("/config/edge-01", REMOTE_ADDR="::1")
    assert health().observed_ip == "::1"


def test_mapped_ipv4_caller_is_recorded_as_ipv4(anon):
    send(anon, "PUT", "/config/edge-01", EXPORTER_BODY, remote_addr="::ffff:127.0.0.9")
    assert health().observed_ip == "127.0.0.9"


def test_operator_calls_are_not_device_contact(api):
    register(api, "edge-01", 9)
    api.get("/config/edge-01")
    assert (health().observed_ip, health().last_contact) == ("", None)


def test_forwarded_for_is_ignored_from_an_untrusted_peer(anon):
    send(anon, "PUT", "/config/edge-01", EXPORTER_BODY, X_FORWARDED_FOR="127.0.0.66")
    assert health().observed_ip == "127.0.0.1"


@pytest.mark.parametrize(
    ("trusted", "forwarded", "observed"),
    [
        (["127.0.0.1/32"], "127.0.0.50", "127.0.0.50"),
        (["127.0.0.1/32"], "127.0.0.50:40122", "127.0.0.50"),
        (["127.0.0.1/32"], "[::1]:8080", "::1"),
        # Only the hops our own proxies appended count: a caller-supplied leftmost entry
        # does not.
        (["127.0.0.1/32"], "127.0.0.66, 127.0.0.77", "127.0.0.77"),
        (["127.0.0.1/32", "127.0.0.5/32"], "127.0.0.77, 127.0.0.5", "127.0.0.77"),
        (["127.0.0.0/8"], "127.0.0.5, 127.0.0.6", "127.0.0.5"),
    ],
)
def test_forwarded_for_is_honoured_from_trusted_proxies(
    anon, settings, trusted, forwarded, observed
):
    settings.TRUSTED_PROXIES = trusted
    send(anon, "PUT", "/config/edge-01", EXPORTER_BODY, X_FORWARDED_FOR=forwarded)
    assert health().observed_ip == observed


def test_unreadable_forwarded_chain_records_nothing(anon, settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1/32"]
    send(anon, "PUT", "/config/edge-01", EXPORTER_BODY, X_FORWARDED_FOR="127.0.0.9, unknown")
    assert (health().observed_ip, health().last_contact) == ("", None)


# ---- adoption ------------------------------------------------------------------------------


def test_self_registering_device_gets_its_observed_address(anon, api, adopting, exporters):
    exporter = exporters()
    body = {**EXPORTER_BODY, "reload_port": exporter.port}
    response = send(anon, "PUT", "/config/edge-01", body).json()
    assert response["status"] == "registered"
    assert Device.objects.get(pk="edge-01").ip_address == "127.0.0.1"
    # The server can now reach it: the registration was announced to the device itself.
    assert response["reload_triggered"] is True
    assert exporter.reloads == 1
    revision = api.get("/config/edge-01/history").json()["revisions"][0]
    assert revision["config"]["ip_address"] == "127.0.0.1"
    assert revision["note"] == "ip_address 127.0.0.1 adopted from the device's own request"
    assert (revision["actor"], revision["source"]) == ("anonymous", "device")
    assert api.get("/devices/edge-01/status?refresh=true").json()["status"] == "healthy"


def test_device_registered_before_gets_its_address_at_its_next_put(anon, settings):
    send(anon, "PUT", "/config/edge-01", EXPORTER_BODY, remote_addr="127.0.0.4")
    assert Device.objects.get(pk="edge-01").ip_address == ""
    settings.ADOPT_OBSERVED_IP = True
    response = send(anon, "PUT", "/config/edge-01", EXPORTER_BODY, remote_addr="127.0.0.4").json()
    assert response["version"] == 2
    assert Device.objects.get(pk="edge-01").ip_address == "127.0.0.4"


@pytest.mark.parametrize("kind", ["device", "enrollment"])
def test_device_credentials_adopt_too(client, settings, adopting, kind):
    from tests.support.client import ServerClient

    settings.DEVICE_REGISTRATION = "token"
    if kind == "device":
        _, raw = api_token_create(name="d", kind=TokenKind.DEVICE, device_id="edge-01")
    else:
        raw = "fleet-enrollment-token-1"
        settings.ENROLLMENT_TOKENS = [raw]
    device = ServerClient()
    device.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert send(device, "PUT", "/config/edge-01", EXPORTER_BODY).status_code == 200
    assert Device.objects.get(pk="edge-01").ip_address == "127.0.0.1"


def test_operator_writes_never_adopt(api, adopting):
    send(api, "PUT", "/config/edge-01", EXPORTER_BODY)
    assert Device.objects.get(pk="edge-01").ip_address == ""
    assert (health().observed_ip, health().last_contact) == ("", None)


def test_explicit_address_wins_over_the_observed_one(anon, adopting):
    send(anon, "PUT", "/config/edge-01", {**EXPORTER_BODY, "ip_address": "127.0.0.5"})
    assert Device.objects.get(pk="edge-01").ip_address == "127.0.0.5"
    assert DeviceRevision.objects.get(device_id="edge-01").note == ""


def test_stored_address_is_kept(anon, api, adopting):
    register(api, "edge-01", 9, ip_address="127.0.0.5")
    send(anon, "PUT", "/config/edge-01", EXPORTER_BODY, remote_addr="127.0.0.9")
    assert Device.objects.get(pk="edge-01").ip_address == "127.0.0.5"
    assert health().observed_ip == "127.0.0.9"


def test_adoption_can_be_turned_off(anon):
    # The test settings run with ADOPT_OBSERVED_IP=false unless a test turns it on.
    send(anon, "PUT", "/config/edge-01", EXPORTER_BODY)
    assert Device.objects.get(pk="edge-01").ip_address == ""
    assert health().observed_ip == "127.0.0.1"


def test_observed_address_outside_allowed_networks_is_not_adopted(anon, adopting, outbound):
    adopting.DEVICE_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    send(anon, "PUT", "/config/edge-01", EXPORTER_BODY, remote_addr="127.0.0.9")
    assert Device.objects.get(pk="edge-01").ip_address == ""
    assert health().observed_ip == "127.0.0.9"
    assert outbound.attempts == []


def test_caller_behind_an_unlisted_proxy_is_not_adopted(anon, adopting, caplog):
    with caplog.at_level(logging.WARNING, logger="devices.services"):
        send(anon, "PUT", "/config/edge-01", EXPORTER_BODY, X_FORWARDED_FOR="127.0.0.66")
    assert Device.objects.get(pk="edge-01").ip_address == ""
    assert "TRUSTED_PROXIES" in caplog.text


def test_contacts_are_stored_off_the_request_path(anon, api, settings):
    """With a flush interval, GET /config/{id} only notes the caller in memory; the store
    happens in one transaction later (here: an explicit flush)."""
    from devices.contacts import contacts

    settings.CONTACT_FLUSH_INTERVAL = 3600  # the background store would not come
    send(api, "PUT", "/config/edge-buffered", {"device_type": "jetson_orin"})  # no contact
    assert anon.get("/config/edge-buffered").status_code == 200
    assert api.get("/devices/edge-buffered/status").json()["observed_ip"] is None
    contacts.flush()
    item = api.get("/devices/edge-buffered/status").json()
    assert item["observed_ip"] == "127.0.0.1"
    assert item["last_contact"] is not None
