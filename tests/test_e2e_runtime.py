"""The device runtime through a real gunicorn: exactly one monitor beside several workers,
immediate probes of new devices, reloads reaching a device after commit, and a fleet of
1000 devices with 100 silent ones."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
import requests

from tests.support.exporters import Reply
from tests.support.gunicorn import RunningServer, run_server

pytestmark = pytest.mark.e2e

FAST = {"PROBE_TIMEOUT": "1", "RELOAD_TIMEOUT": "1", "PROXY_TIMEOUT": "1"}


def processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, state, command line) of every process we can see."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        found[int(entry)] = (int(ppid), state, command)
    return found


def monitors(server: RunningServer) -> list[int]:
    """Live monitor processes belonging to this server, wherever they hang in the tree."""
    marker = f"--parent-pid {server.process.pid}"
    return [
        pid
        for pid, (_, state, command) in processes().items()
        if "monitor_devices" in command and marker in command and state != "Z"
    ]


def workers(server: RunningServer) -> list[int]:
    return [
        pid
        for pid, (ppid, state, command) in processes().items()
        if ppid == server.process.pid and state != "Z" and "monitor_devices" not in command
    ]


def wait_until(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def alive(pid: int) -> bool:
    info = processes().get(pid)
    return info is not None and info[1] != "Z"


def test_one_monitor_beside_three_workers_probes_new_devices_at_once(tmp_path, exporters):
    env = {**FAST, "MONITOR_INTERVAL": "3600"}  # after the first round, only requests
    with run_server(tmp_path, env=env, workers=3) as server:
        assert wait_until(lambda: len(workers(server)) == 3, 10)
        assert wait_until(lambda: len(monitors(server)) == 1, 10)
        monitor_pid = monitors(server)[0]
        assert processes()[monitor_pid][0] == server.process.pid  # a child of the master

        exporter = exporters()
        body = {"device_type": "jetson_orin", "ip_address": "127.0.0.1"}
        put = server.request("PUT", "/config/edge-01", json={**body, "reload_port": exporter.port})
        assert put.json()["reload_triggered"] is True
        started = time.monotonic()

        def healthy() -> bool:
            item = server.request("GET", "/devices/edge-01/status").json()
            return item["status"] == "healthy"

        # The next round is an hour away: only the immediate probe can make it healthy.
        assert wait_until(healthy, 5)
        assert time.monotonic() - started < 3
        time.sleep(1.5)
        assert exporter.probes == 1  # one monitor probed it once, not one per worker

        # Moving the device is noticed as fast.
        moved = exporters()
        moved.set("GET", "/health", Reply(503))
        server.request("PATCH", "/devices/edge-01", json={"reload_port": moved.port})
        assert wait_until(
            lambda: (
                server.request("GET", "/devices/edge-01/status").json()["status"] == "unhealthy"
            ),
            5,
        )
        assert len(monitors(server)) == 1

        # A monitor that dies is replaced, and there is still exactly one.
        os.kill(monitor_pid, signal.SIGKILL)
        assert wait_until(
            lambda: (pids := monitors(server)) and pids[0] != monitor_pid and pids, 15
        )
        assert len(monitors(server)) == 1
        replacement = monitors(server)[0]
        assert "restarting it" in server.log()
        # Let the replacement get going: stopped while it still starts up, it ends without
        # its closing line.
        assert wait_until(lambda: server.log().count("Device monitor running") >= 2, 15)
    # Stopping the server stops its monitor, which finishes cleanly on SIGTERM.
    assert wait_until(lambda: not alive(replacement), 10)
    assert "Device monitor stopped" in server.log()
    assert "did not stop" not in server.log()


def test_monitor_can_be_left_to_another_process(tmp_path):
    with run_server(tmp_path, env={"MONITOR_ENABLED": "false"}, workers=2) as server:
        assert wait_until(lambda: len(workers(server)) == 2, 10)
        time.sleep(0.5)
        assert monitors(server) == []
        assert "MONITOR_ENABLED=false" in server.log()


def test_monitor_follows_its_master(tmp_path):
    with run_server(tmp_path, workers=2) as server:
        assert wait_until(lambda: len(monitors(server)) == 1, 10)
        first = monitors(server)[0]
        # SIGHUP reloads code and settings: the workers and the monitor restart.
        server.process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: (pids := monitors(server)) and pids[0] != first and pids, 15)
        assert not alive(first)
        second = monitors(server)[0]
        assert len(monitors(server)) == 1
        # A master killed outright cannot stop its monitor: the monitor notices and exits.
        server.process.kill()
        server.process.wait()
        assert wait_until(lambda: not alive(second), 10)


def test_reload_reaches_the_device_after_the_write_committed(tmp_path, exporters):
    """The exporter's flow: it registers without an address, is adopted, is told to reload,
    re-fetches its config and finds the new one, then PUTs it back without a reload storm."""
    with run_server(tmp_path, env=FAST) as server:
        exporter = exporters()
        fetched: list[dict] = []

        def refetch(method: str, path: str) -> None:
            if (method, path) == ("POST", "/reload"):
                fetched.append(requests.get(f"{server.url}/config/edge-01", timeout=5).json())

        exporter.on_request = refetch
        local = {
            "device_type": "jetson_orin",
            "metrics": {"gpu_power": True},
            "port": 9102,
            "reload_port": exporter.port,
        }
        put = requests.put(f"{server.url}/config/edge-01", json=local, timeout=10).json()
        assert (put["status"], put["reload_triggered"]) == ("registered", True)
        device = server.request("GET", "/devices/edge-01/status").json()
        assert device["ip_address"] == device["observed_ip"] == "127.0.0.1"
        assert fetched == [local]

        changed = server.request("PATCH", "/config/edge-01", json={"interval": 30}).json()
        assert changed["reload_triggered"] is True
        assert fetched[-1] == {**local, "interval": 30}

        # The exporter PUTs its (now current) config back: nothing changes, no reload.
        again = requests.put(f"{server.url}/config/edge-01", json=fetched[-1], timeout=10)
        assert again.json()["reload_triggered"] is False
        assert exporter.reloads == 2


FLEET_SCRIPT = """
from django.utils import timezone
from devices.models import Device, DeviceHealth
now = timezone.now()
devices = [
    Device(device_id=f"edge-{i:04d}", device_type="jetson_orin" if i % 3 else "shelly",
           ip_address="127.0.0.1", reload_port=ALIVE if i < 900 else SILENT,
           created_at=now, updated_at=now)
    for i in range(1000)
]
Device.objects.bulk_create(devices)
DeviceHealth.objects.bulk_create(DeviceHealth(device=d) for d in devices)
"""


def test_fleet_of_1000_with_100_silent_devices_takes_about_one_probe_timeout(tmp_path, exporters):
    timeout = 2.0  # the production default; serial probing would take 100 x 2 s
    # Generous against a loaded machine, far below any serialisation; bench/ measures
    # the real figure.
    bound = timeout + 6
    env = {"PROBE_TIMEOUT": "2", "RELOAD_TIMEOUT": "2", "MONITOR_INTERVAL": "4"}
    alive, silent = exporters(), exporters()
    silent.answer_everything(Reply(hang=True))
    with run_server(tmp_path, env=env) as server:
        made = server.manage(
            "shell",
            "-c",
            FLEET_SCRIPT.replace("ALIVE", str(alive.port)).replace("SILENT", str(silent.port)),
        )
        assert made.returncode == 0, made.stderr

        # The monitor's next round covers the whole fleet.
        round_line = re.compile(r"Probe round: 1000 devices in ([\d.]+)s")
        assert wait_until(lambda: round_line.search(server.log()), 30, interval=0.2)
        seconds = float(round_line.search(server.log()).group(1))
        assert seconds < bound, seconds
        summary = server.request("GET", "/metrics/summary").json()
        assert (summary["healthy"], summary["by_status"]["unreachable"]) == (900, 100)

        started = time.monotonic()
        listed = server.request("GET", "/devices?refresh=true").json()
        assert time.monotonic() - started < bound
        assert (listed["total"], listed["healthy"]) == (1000, 900)

        started = time.monotonic()
        reloaded = server.request("POST", "/devices/reload").json()
        assert time.monotonic() - started < bound
        assert (reloaded["total"], reloaded["success"], reloaded["failed"]) == (1000, 900, 100)
        assert alive.reloads == 900
