"""The hook the device monitor calls when K8S_AUTO_SYNC is on."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from k8sbridge.autosync import AutoSync
from k8sbridge.models import SyncRun
from tests.support.fleet import add_device, set_status

pytestmark = pytest.mark.django_db

NS = "monitoring"


def at(seconds: float) -> datetime:
    """A monitor clock reading `seconds` after an arbitrary start."""
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


def test_everything_is_a_no_op_while_auto_sync_is_off(kube, settings):
    settings.K8S_AUTO_SYNC = False
    add_device("edge-01")
    auto = AutoSync()
    assert auto.devices_changed(["edge-01"]) is None
    assert auto.tick(now=at(1000.0)) is None
    assert kube.calls == []


def test_a_changed_device_is_reconciled_alone_at_once(kube, settings):
    settings.K8S_AUTO_SYNC = True
    add_device("edge-01", ip="192.0.2.1")
    add_device("edge-02", ip="192.0.2.2")
    auto = AutoSync()

    result = auto.devices_changed(["edge-01"])

    assert [i.device_id for i in result.created] == ["edge-01"]
    assert kube.names("services", NS) == ["edge-device-edge-01"]
    set_status("edge-01", "unreachable")
    assert [i.device_id for i in auto.devices_changed({"edge-01"}).deleted] == ["edge-01"]
    assert kube.names("services", NS) == []
    assert SyncRun.objects.filter(trigger="autosync").count() == 2


def test_tick_runs_a_full_reconcile_once_per_interval(kube, settings):
    settings.K8S_AUTO_SYNC = True
    settings.K8S_SYNC_INTERVAL = 300
    add_device("edge-01")
    auto = AutoSync()

    assert auto.tick(now=at(1000.0)) is not None  # the first tick reconciles
    assert auto.tick(now=at(1299.0)) is None
    add_device("edge-02", ip="192.0.2.2")
    result = auto.tick(now=at(1300.0))

    assert [i.device_id for i in result.created] == ["edge-02"]
    managed_lists = [c for c in kube.requests("list", "services") if "labelSelector" in c.query]
    assert len(managed_lists) == 2


def test_failures_are_logged_never_raised(settings, tmp_path, caplog):
    settings.K8S_AUTO_SYNC = True
    settings.KUBECONFIG = str(tmp_path / "missing")
    add_device("edge-01")
    auto = AutoSync()
    with caplog.at_level(logging.WARNING, logger="k8sbridge.autosync"):
        assert auto.devices_changed(["edge-01"]) is None
        assert auto.tick(now=at(5.0)) is None
    assert "Automatic Kubernetes sync of edge-01 failed" in caplog.text
    assert "Automatic Kubernetes sync of all devices failed" in caplog.text
    # The failed attempt still counts: the next full reconcile waits for the interval.
    assert auto.tick(now=at(6.0)) is None


def test_explicit_namespace_and_interval(kube, settings):
    settings.K8S_AUTO_SYNC = True
    kube.add_namespace("edge")
    add_device("edge-01")
    auto = AutoSync(namespace="edge", interval=10)
    auto.tick(now=at(0.0))
    assert auto.tick(now=at(9.9)) is None
    assert auto.tick(now=at(10.0)) is not None
    assert kube.names("services", "edge") == ["edge-device-edge-01"]


@pytest.mark.usefixtures("fast_devices")
def test_the_monitor_runs_the_auto_sync_by_default(api, exporters, kube, settings):
    """MONITOR_LISTENERS names the auto-sync by default: a monitor round that sees a new
    healthy device reconciles it into the cluster at once."""
    from devices.monitor import DeviceMonitor, load_listeners
    from tests.helpers import register

    settings.K8S_AUTO_SYNC = True
    register(api, "edge-01", exporters().port)
    DeviceMonitor(listeners=load_listeners()).step()
    runs = SyncRun.objects.filter(trigger="autosync")
    assert runs.exists()
    # The fake API refuses loopback addresses as a real cluster does, so the device fails,
    # but the apply reached the cluster.
    applied = {call.name for call in kube.requests(verb="patch")}
    assert "edge-device-edge-01" in applied
