"""Run the device monitor: probe every device each MONITOR_INTERVAL until SIGTERM, while
this replica leads (LEADER_ELECTION)."""

from __future__ import annotations

import os
import signal
import threading

from django.core.management.base import BaseCommand

from devices.monitor import DeviceMonitor, load_listeners
from edgeserver.leadership import Leadership, build_elector, election_mode
from edgeserver.runstate import LeaderState


class Command(BaseCommand):
    help = (
        "Probe every device's /health each MONITOR_INTERVAL, new or changed devices at once, "
        "running configs each DRIFT_CHECK_INTERVAL, while this replica is the leader "
        "(LEADER_ELECTION); stops cleanly on SIGTERM or SIGINT, handing the leadership over."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--once",
            action="store_true",
            help="Probe every device once, then exit (whoever leads: an operator's call)",
        )
        parser.add_argument(
            "--parent-pid",
            type=int,
            metavar="PID",
            help="Exit when PID is no longer this process's parent (gunicorn's master "
            "passes its own, so a killed master leaves no monitor behind)",
        )

    def handle(self, *args, once: bool, parent_pid: int | None, **options) -> None:
        if once:
            changed = DeviceMonitor(listeners=load_listeners()).step()
            self.stdout.write(f"Probed every device; {len(changed)} reported as changed")
            return
        leadership = Leadership(build_elector(), state=LeaderState.of_this_server())
        self.stdout.write(f"Leader election: {election_mode()}")
        monitor = DeviceMonitor(listeners=load_listeners(), is_leader=leadership.is_leader)
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        # Asked to stop, the leadership is handed over at once, not after the round in
        # progress: that round then stores nothing (it asks before it writes).
        threading.Thread(
            target=lambda: (stop.wait(), leadership.stop()), name="handover", daemon=True
        ).start()
        leadership.start()
        try:
            if parent_pid is None:
                monitor.run(stop)
            else:
                monitor.run(stop, keep_running=lambda: os.getppid() == parent_pid)
        finally:
            stop.set()
            leadership.stop()
