"""A device's config as one comparable value: what a config write can change."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from devices.choices import DEFAULT_PORT, DEFAULT_RELOAD_PORT
from devices.models import Device


@dataclass(frozen=True)
class DeviceConfig:
    """Everything a config write can change, as one comparable value."""

    device_type: str
    ip_address: str = ""
    port: int = DEFAULT_PORT
    reload_port: int = DEFAULT_RELOAD_PORT
    enabled_metrics: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, device: Device) -> DeviceConfig:
        return cls(
            device_type=device.device_type,
            ip_address=device.ip_address,
            port=device.port,
            reload_port=device.reload_port,
            enabled_metrics=device.enabled_metrics,
            extra=dict(device.extra_config),
        )

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> DeviceConfig:
        known = {"device_type", "ip_address", "port", "reload_port", "enabled_metrics"}
        return cls(
            device_type=snapshot["device_type"],
            ip_address=snapshot.get("ip_address") or "",
            port=snapshot.get("port", DEFAULT_PORT),
            reload_port=snapshot.get("reload_port", DEFAULT_RELOAD_PORT),
            enabled_metrics=snapshot.get("enabled_metrics"),
            extra={k: v for k, v in snapshot.items() if k not in known},
        )

    def apply_to(self, device: Device) -> None:
        device.device_type = self.device_type
        device.ip_address = self.ip_address
        device.port = self.port
        device.reload_port = self.reload_port
        device.enabled_metrics = self.enabled_metrics
        device.extra_config = self.extra

    def document(self) -> dict[str, Any]:
        """What `GET /config/{id}` returns for this config."""
        probe = Device()
        self.apply_to(probe)
        return probe.config_document()

    def snapshot(self) -> dict[str, Any]:
        """What a revision keeps: the served document plus the address."""
        return {**self.document(), "ip_address": self.ip_address}
