"""What one `GET /metrics` costs with the per-device series: the page the server renders
for a fleet of N devices (time, size, lines), in-process, on a fresh SQLite database (or
DATABASE_URL's PostgreSQL database, which it empties first).

Run: `python -m bench.metrics_scrape --devices 1000 10000`; prints one JSON line per size.
Not part of `python -m bench` (yet): a scrape is not one of its hot paths.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time


def seed(count: int) -> None:
    """`count` devices as a running fleet looks: most healthy and checked, some down,
    drifted, waiting for a reload or never seen."""
    from django.db import transaction
    from django.utils import timezone

    from devices.models import Device, DeviceHealth

    now = timezone.now()
    with transaction.atomic():
        DeviceHealth.objects.all().delete()
        Device.objects.all().delete()
        Device.objects.bulk_create(
            Device(
                device_id=f"edge-{i:05d}",
                device_type=("jetson_orin", "raspberry_pi", "shelly")[i % 3],
                ip_address=f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
                created_at=now,
                updated_at=now,
            )
            for i in range(count)
        )
        DeviceHealth.objects.bulk_create(
            DeviceHealth(
                device_id=f"edge-{i:05d}",
                status="unreachable" if i % 20 == 0 else "healthy",
                last_checked=now,
                last_seen=None if i % 100 == 0 else now,
                config_in_sync=None if i % 10 == 0 else i % 50 != 1,
                reload_pending=i % 20 == 0,
            )
            for i in range(count)
        )


def measure(count: int, runs: int) -> dict:
    from edgeserver.metrics import exposition

    seed(count)
    exposition()  # warm: imports, the first query's connection
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        body, _ = exposition()
        times.append(time.perf_counter() - started)
    per_device = sum(
        1 for line in body.splitlines() if line.startswith(b"ems_device_") and b"device_id=" in line
    )
    return {
        "devices": count,
        "median_ms": round(statistics.median(times) * 1000, 1),
        "max_ms": round(max(times) * 1000, 1),
        "bytes": len(body),
        "per_device_lines": per_device,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="ems-bench-metrics-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "edgeserver.settings")
    os.environ.setdefault("SECRET_KEY", "bench")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if not os.environ.get("DATABASE_URL"):
        os.environ["DB_PATH"] = f"{workdir}/config.db"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    for count in args.devices:
        print(json.dumps(measure(count, args.runs)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
