"""Metrics of the devices domain: config writes, probes, reloads, the fleet by status and
each device's observation."""

from __future__ import annotations

import collections

from prometheus_client import Counter, Histogram

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


def fleet_text() -> str:
    """The fleet by status and type, and each device's observation, read from the
    database at scrape time in one query, as a section of `GET /metrics` in the text
    format (edgeserver.metrics.register_text_section: one series per device).

    Every replica reads the same database, so every replica exports the same per-device
    series (the leader's monitor stored them); the shipped rules and dashboard take
    `max by (device_id, device_type)` over the replicas (README "Monitoring the fleet").
    """
    from devices.choices import DeviceStatus
    from devices.selectors import device_observations
    from edgeserver.metrics import family_text, label_pairs

    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    up, last_seen, in_sync, pending = [], [], [], []
    for device in device_observations():
        labels = label_pairs(device_id=device.device_id, device_type=device.device_type)
        counts[(device.status, device.device_type)] += 1
        up.append((labels, device.status == DeviceStatus.HEALTHY))
        if device.last_seen is not None:
            last_seen.append((labels, device.last_seen.timestamp()))
        if device.config_in_sync is not None:
            in_sync.append((labels, device.config_in_sync))
        pending.append((labels, device.reload_pending))
    by_status = [
        (label_pairs(status=status, device_type=device_type), count)
        for (status, device_type), count in sorted(counts.items())
    ]
    return "".join(
        (
            family_text("ems_devices", "Registered devices, by status and device type", by_status),
            family_text(
                "ems_device_up", "1 when the device's last probe found it healthy, else 0", up
            ),
            family_text(
                "ems_device_last_seen_timestamp_seconds",
                "When the device last answered its health probe (absent: never)",
                last_seen,
            ),
            family_text(
                "ems_device_config_in_sync",
                "1 when the device runs the config the server serves, 0 when it drifted "
                "(absent: not checked since the config changed)",
                in_sync,
            ),
            family_text(
                "ems_device_reload_pending",
                "1 while a config change waits to be delivered to the device by a reload",
                pending,
            ),
        )
    )
