"""`manage.py sync_kubernetes`: output, exit codes, dry run, cleanup, loop and progress."""

from __future__ import annotations

import io
import json
import os
import threading
import time

import pytest
from django.core.management import CommandError, call_command

from k8sbridge.management.commands.sync_kubernetes import Command
from tests.support.fleet import add_device

pytestmark = pytest.mark.django_db

NS = "monitoring"


def run(*args: str, stdout=None) -> tuple[int, str, str]:
    out, err = stdout or io.StringIO(), io.StringIO()
    try:
        call_command("sync_kubernetes", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    text = out.getvalue() if isinstance(out, io.StringIO) else ""
    return code, text, err.getvalue()


def test_sync_prints_a_summary_and_exits_0(kube):
    add_device("edge-01", ip="192.0.2.1")
    add_device("edge-02", ip="192.0.2.2")
    code, out, _ = run()
    assert code == 0
    assert out.splitlines() == [
        "Kubernetes sync of namespace monitoring (K8S_ENDPOINTS_MODE=both, "
        "K8S_UNHEALTHY_POLICY=delete)",
        "created 2, updated 0, unchanged 0, deleted 0, failed 0 (healthy devices: 2)",
    ]
    code, out, _ = run()
    assert "created 0, updated 0, unchanged 2, deleted 0, failed 0" in out


def test_any_failed_item_exits_1_and_is_listed(kube):
    add_device("edge-01", ip="192.0.2.1")
    add_device("EDGE-01", ip="192.0.2.2")
    kube.fail("patch", "services", code=403)
    add_device("other", ip="192.0.2.3")
    code, out, _ = run()
    assert code == 1
    lines = out.splitlines()
    assert "failed 3" in lines[1]
    assert any(line.startswith("failed: EDGE-01 (edge-device-edge-01): name collision")
               for line in lines)
    assert any(line.startswith("failed: other (edge-device-other): patch services/") and
               "403 Forbidden" in line for line in lines)


def test_unreachable_or_unconfigured_cluster_exits_2(settings, tmp_path):
    add_device("edge-01")
    settings.KUBECONFIG = str(tmp_path / "missing")
    code, _, err = run()
    assert code == 2
    assert err.startswith("Kubernetes client not initialized:")
    from tests.support.kube_api import serve

    with serve() as kube:
        settings.KUBECONFIG = str(kube.write_kubeconfig(tmp_path / "kubeconfig"))
    code, _, err = run()
    assert code == 2
    assert err.startswith("Kubernetes API unreachable:")


def test_dry_run_prints_the_plan_and_writes_nothing(kube):
    add_device("edge-01")
    code, out, _ = run("--dry-run")
    assert code == 0
    assert kube.writes() == []
    assert out.splitlines()[0].startswith("Kubernetes sync plan (dry run, nothing written)")
    assert out.splitlines()[2:] == [
        "  would create Service edge-device-edge-01 (edge-01)",
        "  would create Endpoints edge-device-edge-01 (edge-01)",
        "  would create EndpointSlice edge-device-edge-01 (edge-01)",
    ]


def test_json_output_is_the_api_result(kube):
    add_device("edge-01")
    code, out, _ = run("--output", "json", "--namespace", NS)
    body = json.loads(out)
    assert code == 0
    assert body["status"] == "synced"
    assert [r["device_id"] for r in body["created"]] == ["edge-01"]


def test_one_device(kube):
    add_device("edge-01", ip="192.0.2.1")
    add_device("edge-02", ip="192.0.2.2")
    code, out, _ = run("--device", "edge-02", "--output", "json")
    assert code == 0
    assert kube.names("services", NS) == ["edge-device-edge-02"]
    code, out, _ = run("--device", "ghost")
    assert code == 1
    assert "failed: ghost: device not found" in out


def test_cleanup(kube):
    add_device("edge-01")
    run()
    code, out, _ = run("--cleanup", "--dry-run")
    assert code == 0
    assert "would delete 1 Services, 1 Endpoints, 1 EndpointSlices" in out
    assert kube.names("services", NS) == ["edge-device-edge-01"]
    code, out, _ = run("--cleanup")
    assert code == 0
    assert "deleted 1 Services, 1 Endpoints, 1 EndpointSlices" in out
    assert kube.names("services", NS) == []


def test_invalid_arguments(kube):
    with pytest.raises(CommandError, match="RFC 1123"):
        call_command("sync_kubernetes", "--namespace", "Bad_NS", stdout=io.StringIO())
    with pytest.raises(CommandError, match="positive"):
        call_command("sync_kubernetes", "--interval", "0", stdout=io.StringIO())


@pytest.mark.django_db(transaction=True)
def test_interval_loops_until_stopped(kube):
    add_device("edge-01")
    command = Command(stdout=io.StringIO(), stderr=io.StringIO())
    finished = []
    thread = threading.Thread(
        target=lambda: finished.append(call_command(command, "--interval", "0.05")), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 20
    while len(kube.requests("list", "services")) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    command.stop_requested.set()
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert finished == [None]
    assert len(kube.requests("list", "services")) >= 3
    # Only the first pass wrote anything.
    assert len(kube.requests("patch")) == 3


def test_progress_bar_on_a_terminal_with_many_devices(kube):
    for i in range(25):
        add_device(f"d{i:02}", ip=f"192.0.2.{i + 1}")
    controller, terminal = os.openpty()
    with open(terminal, "w") as tty:
        code, _, _ = run(stdout=tty)
    os.set_blocking(controller, False)
    shown = b""
    try:
        while chunk := os.read(controller, 65536):
            shown += chunk
    except OSError:  # drained: EAGAIN, or EIO once the terminal side is closed
        pass
    os.close(controller)
    assert code == 0
    assert b"Syncing [" in shown and b"25/25" in shown
    assert b"created 25" in shown


def test_no_progress_bar_when_not_a_terminal(kube):
    for i in range(25):
        add_device(f"d{i:02}", ip=f"192.0.2.{i + 1}")
    code, out, _ = run()
    assert code == 0
    assert "Syncing" not in out
