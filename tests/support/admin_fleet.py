"""A fleet of hundreds of devices with stored observations, for the browser tests of the
admin: healthy, dead, drifted, pending, never probed, and one with hostile text.

Run inside the server's own database (`manage.py shell -c "...seed_fleet()"`). Every
address is on loopback at a port nothing listens on, so a probe or reload that reaches
one by mistake is refused at once and leaves the machine.
"""

from __future__ import annotations

from datetime import datetime, timedelta

HOSTILE_ID = 'evil"><img src=x onerror=alert(1)>'
HOSTILE_ERROR = '<script>alert("error")</script> timed out'
HOSTILE_VALUE = "<img src=x onerror=alert(2)>"
TYPES = ["jetson_orin", "jetson_xavier", "jetson_nano", "raspberry_pi", "shelly", "lattepanda"]
SERVED = {"metrics": {"gpu_power": True, "cpu_temp": True}, "interval": 15}


def _kind(n: int) -> str:
    """What device n is: most are healthy, the rest spread over the other states."""
    if n % 20 == 3:
        return "unreachable"
    if n % 25 == 7:
        return "unhealthy"
    if n % 30 == 11:
        return "no-ip"
    if n % 10 == 5:
        return "drifted"
    return "healthy"


def seed_fleet(count: int = 400, *, dead_port: int = 9, now: datetime | None = None) -> None:
    from django.contrib.auth.models import Permission, User
    from django.utils import timezone

    from devices.models import Device, DeviceHealth, DeviceRevision, DeviceStatusChange

    now = now or timezone.now()
    devices, healths, changes, revisions = [], [], [], []
    for n in range(count):
        kind = _kind(n)
        device_id = f"edge-{n:04d}" if n % 9 else f"Jetson_Lab.{n}"
        created = now - timedelta(days=30, minutes=n)
        ip = "" if kind == "no-ip" else f"127.1.{n // 250}.{n % 250 + 1}"
        devices.append(
            Device(
                device_id=device_id,
                device_type=TYPES[n % len(TYPES)],
                ip_address=ip,
                port=9102,
                reload_port=dead_port,
                extra_config=SERVED,
                created_at=created,
                updated_at=now - timedelta(minutes=n * 7),
            )
        )
        revisions.append(
            DeviceRevision(
                device_id=device_id,
                version=1,
                action="created",
                config={"device_type": TYPES[n % len(TYPES)], **SERVED},
                actor="anonymous",
                source="device",
                created_at=created,
            )
        )
        if kind == "no-ip":
            continue
        down = kind in ("unreachable", "unhealthy")
        seen = now - timedelta(seconds=20 + n)
        healths.append(
            DeviceHealth(
                device_id=device_id,
                status="healthy" if kind == "drifted" else kind,
                error={"unreachable": "timed out", "unhealthy": "HTTP 503"}.get(kind, ""),
                last_checked=now - timedelta(seconds=10),
                last_seen=seen - timedelta(hours=n % 48) if down else seen,
                status_changed_at=now - timedelta(hours=n % 48, minutes=5) if down else created,
                consecutive_failures=(n % 48) * 240 + 3 if down else 0,
                probed_address=f"{ip}:{dead_port}",
                reload_pending=n % 17 == 4,
                observed_ip=ip if n % 13 else f"127.2.0.{n % 250 + 1}",
                config_in_sync=kind != "drifted",
                drifted_keys=["interval", "metrics"] if kind == "drifted" else [],
            )
        )
        changes.append(
            DeviceStatusChange(
                device_id=device_id, previous="unknown", status="healthy", changed_at=created
            )
        )
        if down:
            changes.append(
                DeviceStatusChange(
                    device_id=device_id,
                    previous="healthy",
                    status=kind,
                    error=healths[-1].error,
                    changed_at=healths[-1].status_changed_at,
                )
            )
    Device.objects.bulk_create(devices)
    DeviceHealth.objects.bulk_create(healths)
    DeviceStatusChange.objects.bulk_create(changes)
    DeviceRevision.objects.bulk_create(revisions)
    _hostile(now)
    viewer = User.objects.create_user("viewer", password="viewer-pw-for-tests", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))


def _hostile(now: datetime) -> None:
    """A device stored by hand with markup in its id, its error and a config value."""
    from devices.models import Device, DeviceHealth, DeviceStatusChange

    device = Device.objects.create(
        device_id=HOSTILE_ID,
        device_type="shelly",
        ip_address="127.3.0.1",
        reload_port=9,
        extra_config={"note": HOSTILE_VALUE},
        created_at=now - timedelta(days=2),
        updated_at=now - timedelta(days=1),
    )
    DeviceHealth.objects.create(
        device=device,
        status="unreachable",
        error=HOSTILE_ERROR,
        status_changed_at=now - timedelta(hours=1),
        consecutive_failures=4,
        config_in_sync=False,
        drifted_keys=[HOSTILE_VALUE],
    )
    DeviceStatusChange.objects.create(
        device_id=HOSTILE_ID,
        previous="healthy",
        status="unreachable",
        error=HOSTILE_ERROR,
        changed_at=now - timedelta(hours=1),
    )
