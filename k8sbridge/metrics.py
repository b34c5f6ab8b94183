"""Metrics of the Kubernetes bridge: reconcile runs, their duration and their items (the
last full sync is read at scrape time: k8sbridge.runs.LastSyncCollector)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
