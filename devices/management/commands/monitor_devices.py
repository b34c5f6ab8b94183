"""Run the device monitor: probe every device each MONITOR_INTERVAL until SIGTERM."""

from __future__ import annotations

import os
import signal
import threading

from django.core.management.base import BaseCommand

from devices.monitor import DeviceMonitor, load_listeners


class Command(BaseCommand):
    help = (
        "Probe every device's /health each MONITOR_INTERVAL, new or changed devices at once, "
        "running configs each DRIFT_CHECK_INTERVAL; stops cleanly on SIGTERM or SIGINT."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--once", action="store_true", help="Probe every device once, then exit"
        )
        parser.add_argument(
            "--parent-pid",
            type=int,
            metavar="PID",
            help="Exit when PID is no longer this process's parent (gunicorn's master "
            "passes its own, so a killed master leaves no monitor behind)",
        )

    def handle(self, *args, once: bool, parent_pid: int | None, **options) -> None:
        monitor = DeviceMonitor(listeners=load_listeners())
        if once:
            changed = monitor.step()
            self.stdout.write(f"Probed every device; {len(changed)} reported as changed")
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        if parent_pid is None:
            monitor.run(stop)
        else:
            monitor.run(stop, keep_running=lambda: os.getppid() == parent_pid)
