"""Metrics of the Kubernetes bridge: reconcile runs, their duration and their items, and
the last full sync."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

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


class LastSyncCollector(Collector):
    """When the last full sync of K8S_NAMESPACE ended and how, read from the database at
    scrape time (so every replica says the same, whichever process ran the sync: the
    leader's auto-sync, the CronJob, an operator). No series before the first sync, so a
    server whose bridge is not used raises no alert."""

    def collect(self) -> Iterator:
        from django.conf import settings

        from k8sbridge.runs import last_full_sync

        gauge = GaugeMetricFamily(
            "ems_kubernetes_last_sync_timestamp_seconds",
            "When the last sync of the whole fleet into the namespace ended; result: ok, "
            "failed (some items) or unreachable",
            labels=["namespace", "result"],
        )
        run = last_full_sync(namespace=settings.K8S_NAMESPACE)
        if run is not None:
            gauge.add_metric([run.namespace, run.outcome], run.finished_at.timestamp())
        yield gauge
