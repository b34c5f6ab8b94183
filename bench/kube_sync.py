"""Kubernetes sync benchmark: N healthy devices reconciled into the fake API server of the
tests, run in a process of its own (as a real API server is), answering every call after a
latency (2 ms: a round trip to an API server nearby).

Run by `python -m bench` in its own process and database (no monitor: the devices have
addresses of no host of ours, which must never be contacted):
`python -m bench.kube_sync WORKDIR [--devices N] [--latency SECONDS]`. Prints one JSON line:
per run its seconds, the command's CPU seconds and the API server's request counts, and
the command's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import django

# The fake API server's process: prints its URL, then answers one command a line on stdin
# ("clear": forget the request log; "counts": print the request counts as JSON).
SERVER = """
import json, sys, time
from tests.support.kube_api import FakeKubeApi
kube = FakeKubeApi()
kube.add_namespace("monitoring")
kube.latency = float(sys.argv[1])
kube.start()
print(kube.url, flush=True)
for line in sys.stdin:
    if line.strip() == "clear":
        kube.clear_log()
        started = time.process_time()
        print("{}", flush=True)
    elif line.strip() == "counts":
        print(json.dumps({"writes": len(kube.writes()),
                          "lists": len(kube.requests(verb="list")),
                          "gets": len(kube.requests(verb="get")),
                          "api_cpu_seconds": time.process_time() - started}), flush=True)
kube.stop()
"""


# `manage.py sync_kubernetes`, then its peak RSS in kB. VmHWM is this process image's own
# (a child's ru_maxrss also counts the parent's pages it shared before exec).
COMMAND = """
import re, sys
from pathlib import Path
from django.core.management import execute_from_command_line
execute_from_command_line(["manage.py", "sync_kubernetes", "--namespace", "monitoring"])
print(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))
"""


class KubeServer:
    def __init__(self, latency: float, root: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(latency)], cwd=root, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True,
        )
        self.url = self.process.stdout.readline().strip()

    def ask(self, command: str) -> dict:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def write_kubeconfig(self, path: Path) -> Path:
        from tests.support.kube_api import FakeKubeApi

        fake = FakeKubeApi()
        fake.__class__ = type("Remote", (FakeKubeApi,), {"url": property(lambda _: self.url)})
        return fake.write_kubeconfig(path)

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.002)
    args = parser.parse_args()
    count = args.devices
    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from devices.models import Device, DeviceHealth
    from k8sbridge.services import cluster_sync

    call_command("migrate", verbosity=0)
    now = timezone.now()
    ids = [f"bench-{i:05d}" for i in range(count)]
    with transaction.atomic():
        Device.objects.bulk_create(
            (Device(device_id=device_id, device_type="jetson_orin",
                    ip_address=f"10.{20 + i // 62500}.{i // 250 % 250}.{i % 250 + 1}",
                    port=9102, created_at=now, updated_at=now)
             for i, device_id in enumerate(ids)),
            batch_size=1000,
        )
        DeviceHealth.objects.bulk_create(
            (DeviceHealth(device_id=device_id, status="healthy", last_checked=now,
                          last_seen=now) for device_id in ids),
            batch_size=1000,
        )
    runs: dict = {}
    kube = KubeServer(args.latency, Path(__file__).resolve().parents[1])
    try:
        settings.KUBECONFIG = str(kube.write_kubeconfig(args.workdir / "kubeconfig"))

        def measure(label: str, **extra: int) -> None:
            kube.ask("clear")
            started = time.perf_counter()
            cpu = time.process_time()
            result = cluster_sync(namespace="monitoring")
            seconds = time.perf_counter() - started
            assert not result.failed, result.failed[:3]
            runs[label] = {"seconds": seconds, "cpu_seconds": time.process_time() - cpu,
                           **kube.ask("counts"), "objects": 3 * count, **extra}

        measure("first")
        measure("unchanged")
        changed = ids[:: max(1, count // 10)][:10]
        Device.objects.filter(device_id__in=changed).update(port=9200)
        measure("changed", expected=3 * len(changed))
        # The command as the CronJob runs it, in a process of its own (this one migrated
        # and seeded the database first): its peak RSS over one more (unchanged) sync.
        command = subprocess.run(
            [sys.executable, "-c", COMMAND], cwd=Path(__file__).resolve().parents[1],
            capture_output=True, text=True, env={**os.environ, "KUBECONFIG": settings.KUBECONFIG},
        )
        assert command.returncode == 0, command.stderr[-2000:]
        runs["command_max_rss_mb"] = int(command.stdout.split()[-1]) / 1024
    finally:
        kube.stop()
    runs["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(runs))


if __name__ == "__main__":
    main()
