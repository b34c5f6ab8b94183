"""The server's own Prometheus metrics.

Under gunicorn every worker and the monitor write their samples to files in
PROMETHEUS_MULTIPROC_DIR (prepared by the gunicorn master before anything imports
prometheus_client), and `GET /metrics` adds them up, so a scrape sees the whole server
whichever worker answers it. Outside gunicorn (tests, commands) the default in-process
registry is used.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

HTTP_REQUESTS = Counter(
    "ems_http_requests_total",
    "HTTP requests served, by route and status",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "ems_http_request_duration_seconds",
    "Time to serve an HTTP request, by route",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
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
K8S_SYNC_RUNS = Counter(
    "ems_kubernetes_sync_runs_total",
    "Kubernetes reconcile runs (sync or cleanup), by outcome",
    ["action", "result"],
)
K8S_SYNC_DURATION = Histogram(
    "ems_kubernetes_sync_duration_seconds",
    "Time of one Kubernetes reconcile run",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
K8S_SYNC_ITEMS = Counter(
    "ems_kubernetes_sync_items_total",
    "Devices handled by Kubernetes reconciles, by result",
    ["result"],
)


class FleetCollector(Collector):
    """Devices by status and type, read from the database at scrape time."""

    def collect(self) -> Iterator:
        from django.conf import settings

        from devices.selectors import fleet_counts

        devices = GaugeMetricFamily(
            "ems_devices",
            "Registered devices, by status and device type",
            labels=["status", "device_type"],
        )
        for (status, device_type), count in sorted(fleet_counts().items()):
            devices.add_metric([status, device_type], count)
        yield devices
        info = InfoMetricFamily("ems_build", "Version of the running server")
        info.add_metric([], {"version": settings.VERSION})
        yield info


def exposition() -> tuple[bytes, str]:
    """The text of `GET /metrics` and its content type."""
    from django.conf import settings

    if settings.PROMETHEUS_MULTIPROC_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_DefaultRegistryView())
    registry.register(FleetCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _DefaultRegistryView(Collector):
    """The in-process registry, for single-process runs."""

    def collect(self) -> Iterator:
        yield from REGISTRY.collect()


def observe_request(*, route: str, method: str, status: int, seconds: float) -> None:
    method = method if method in HTTP_METHODS else "other"
    HTTP_REQUESTS.labels(route=route, method=method, status=str(status)).inc()
    HTTP_DURATION.labels(route=route, method=method).observe(seconds)
