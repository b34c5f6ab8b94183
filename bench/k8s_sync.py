"""Kubernetes sync benchmark: 1000 healthy devices reconciled into the fake API server.

Run by `python -m bench` in its own process and database (no monitor: the devices have
addresses of no host of ours, which must never be contacted). Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import django


def main(workdir: Path) -> None:
    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from devices.models import Device, DeviceHealth
    from k8sbridge.services import cluster_sync
    from tests.support.kube_api import serve

    call_command("migrate", verbosity=0)
    now = timezone.now()
    with transaction.atomic():
        Device.objects.bulk_create(
            Device(device_id=f"bench-{i:04d}", device_type="jetson_orin",
                   ip_address=f"10.20.{i // 250}.{i % 250 + 1}", port=9102,
                   created_at=now, updated_at=now)
            for i in range(1000)
        )
        DeviceHealth.objects.bulk_create(
            DeviceHealth(device_id=f"bench-{i:04d}", status="healthy", last_checked=now,
                         last_seen=now)
            for i in range(1000)
        )
    runs = {}
    with serve() as kube:
        settings.KUBECONFIG = str(kube.write_kubeconfig(workdir / "kubeconfig"))

        def measure(label: str, **extra: int) -> None:
            kube.clear_log()
            started = time.perf_counter()
            result = cluster_sync(namespace="monitoring")
            seconds = time.perf_counter() - started
            assert not result.failed, result.failed[:3]
            runs[label] = {
                "seconds": seconds,
                "writes": len(kube.writes()),
                "lists": len(kube.requests(verb="list")),
                "objects": 3 * 1000,
                **extra,
            }

        measure("first")
        measure("unchanged")
        changed = [f"bench-{i:04d}" for i in range(0, 1000, 100)]
        Device.objects.filter(device_id__in=changed).update(port=9200)
        measure("changed", expected=3 * len(changed))
    print(json.dumps(runs))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
