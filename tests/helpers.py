"""Small helpers for API tests."""

from __future__ import annotations

import json
from typing import Any

from rest_framework.test import APIClient

JETSON = {
    "device_type": "jetson_orin",
    "metrics": {"gpu_power": True, "cpu_temp": False},
    "port": 9102,
    "reload_port": 9101,
    "shelly": {"enabled": True, "server_url": "http://shelly.local"},
}


def send(
    client: APIClient,
    method: str,
    path: str,
    body: Any = None,
    *,
    remote_addr: str | None = None,
    **headers: str,
):
    """Send `body` as JSON (or raw bytes/str as given) and return the response.

    `remote_addr` is the caller's address as the server sees it (default 127.0.0.1).
    """
    if isinstance(body, (bytes, str)):
        data = body
    elif body is None:
        data = b""
    else:
        data = json.dumps(body)
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    if remote_addr is not None:
        extra["REMOTE_ADDR"] = remote_addr
    if method.upper() in ("GET", "HEAD"):
        return getattr(client, method.lower())(path, **extra)
    return getattr(client, method.lower())(
        path, data=data, content_type="application/json", **extra
    )


def register(client: APIClient, device_id: str, reload_port: int, **config: Any):
    """Register a device at 127.0.0.1:<reload_port> with operator credentials."""
    body = {"device_type": "jetson_orin", "ip_address": "127.0.0.1", "reload_port": reload_port}
    response = send(client, "PUT", f"/config/{device_id}", {**body, **config})
    assert response.status_code == 200, response.content
    return response.json()


def make_devices(prefix: str, count: int, reload_port: int, ip: str = "127.0.0.1") -> list[str]:
    """Store many devices at once, as a large fleet would be (no revisions, no reloads)."""
    from django.utils import timezone

    from devices.models import Device, DeviceHealth

    now = timezone.now()
    devices = Device.objects.bulk_create(
        Device(
            device_id=f"{prefix}-{index:04d}",
            device_type="raspberry_pi" if index % 2 else "jetson_orin",
            ip_address=ip,
            reload_port=reload_port,
            created_at=now,
            updated_at=now,
        )
        for index in range(count)
    )
    DeviceHealth.objects.bulk_create(DeviceHealth(device=device) for device in devices)
    return [device.device_id for device in devices]
