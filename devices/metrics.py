"""Metrics of the devices domain: config writes, probes, reloads, the fleet by status and
each device's observation."""

from __future__ import annotations

import collections
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
    """The fleet by status and type, and each device's observation, read from the
    database at scrape time in one query.

    Every replica reads the same database, so every replica exports the same per-device
    series (the leader's monitor wrote them); the shipped rules and dashboard take
    `max by (device_id, device_type)` over the replicas (README "Monitoring the fleet").
    """

    def collect(self) -> Iterator:
        from devices.choices import DeviceStatus
        from devices.selectors import device_observations

        labels = ["device_id", "device_type"]
        devices = GaugeMetricFamily(
            "ems_devices",
            "Registered devices, by status and device type",
            labels=["status", "device_type"],
        )
        up = GaugeMetricFamily(
            "ems_device_up",
            "1 when the device's last probe found it healthy, else 0",
            labels=labels,
        )
        last_seen = GaugeMetricFamily(
            "ems_device_last_seen_timestamp_seconds",
            "When the device last answered its health probe (absent: never)",
            labels=labels,
        )
        in_sync = GaugeMetricFamily(
            "ems_device_config_in_sync",
            "1 when the device runs the config the server serves, 0 when it drifted "
            "(absent: not checked since the config changed)",
            labels=labels,
        )
        pending = GaugeMetricFamily(
            "ems_device_reload_pending",
            "1 while a config change waits to be delivered to the device by a reload",
            labels=labels,
        )
        counts: collections.Counter[tuple[str, str]] = collections.Counter()
        for device in device_observations():
            key = [device.device_id, device.device_type]
            counts[(device.status, device.device_type)] += 1
            up.add_metric(key, 1.0 if device.status == DeviceStatus.HEALTHY else 0.0)
            if device.last_seen is not None:
                last_seen.add_metric(key, device.last_seen.timestamp())
            if device.config_in_sync is not None:
                in_sync.add_metric(key, 1.0 if device.config_in_sync else 0.0)
            pending.add_metric(key, 1.0 if device.reload_pending else 0.0)
        for (status, device_type), count in sorted(counts.items()):
            devices.add_metric([status, device_type], count)
        yield from (devices, up, last_seen, in_sync, pending)
