"""Metrics of the devices domain: config writes, probes, reloads, and the fleet by status."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONFIG_WRITES = Counter(
    "ems_config_writes_total",
    "Config changes stored, by who made them (api, admin, device) and the action",
    ["source", "action"],
)
PROBES = Counter(
    "ems_device_probes_total",
    "Device health probes, by what they found: healthy, unhealthy, unreachable, or refused "
    "(the address is outside DEVICE_ALLOWED_NETWORKS; nothing was sent)",
    ["result"],
)
PROBE_DURATION = Histogram(
    "ems_device_probe_duration_seconds",
    "Time of one device health probe that was sent (refused ones are not timed)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)
RELOADS = Counter(
    "ems_device_reloads_total",
    "Device reloads, by result: reloaded, failed, or skipped (no address, bulk reload)",
    ["result"],
)


class FleetCollector(Collector):
    """Devices by status and type, read from the database at scrape time."""

    def collect(self) -> Iterator:
        from devices.selectors import fleet_counts

        devices = GaugeMetricFamily(
            "ems_devices",
            "Registered devices, by status and device type",
            labels=["status", "device_type"],
        )
        for (status, device_type), count in sorted(fleet_counts().items()):
            devices.add_metric([status, device_type], count)
        yield devices
