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


def send(client: APIClient, method: str, path: str, body: Any = None, **headers: str):
    """Send `body` as JSON (or raw bytes/str as given) and return the response."""
    if isinstance(body, (bytes, str)):
        data = body
    elif body is None:
        data = b""
    else:
        data = json.dumps(body)
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    if method.upper() in ("GET", "HEAD"):
        return getattr(client, method.lower())(path, **extra)
    return getattr(client, method.lower())(
        path, data=data, content_type="application/json", **extra
    )
