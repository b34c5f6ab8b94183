"""The record of each sync and cleanup: a SyncRun row (older ones pruned) and the metrics,
and the last full sync as the metrics read it."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from datetime import datetime
from typing import TypeVar

from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from k8sbridge.choices import SyncAction, SyncOutcome
from k8sbridge.exceptions import ClusterUnreachable
from k8sbridge.metrics import K8S_SYNC_DURATION, K8S_SYNC_ITEMS, K8S_SYNC_RUNS
from k8sbridge.models import SyncRun
from k8sbridge.results import RunResult

# Sync records kept; older ones are pruned when a new one is written.
RUNS_KEPT = 1000
# At most this many readable failure lines are kept per record.
ERRORS_KEPT = 100


R = TypeVar("R", bound=RunResult)


def recorded(
    run: Callable[[], R],
    *,
    action: str,
    trigger: str,
    namespace: str,
    scope: Collection[str] | None = None,
    dry_run: bool = False,
) -> R:
    """Run `run` and record how it ended, unless it is a dry run (which changes nothing).

    A cluster that did not answer is recorded as such, and the exception goes on.
    """
    started_at = timezone.now()
    fields = {"action": action, "trigger": trigger, "namespace": namespace, "scope": scope}
    try:
        result = run()
    except ClusterUnreachable as exc:
        if not dry_run:
            _record(
                **fields, started_at=started_at, outcome=SyncOutcome.UNREACHABLE, errors=[str(exc)]
            )
        raise
    if not dry_run:
        outcome = SyncOutcome.OK if result.ok else SyncOutcome.FAILED
        _record(
            **fields,
            started_at=started_at,
            outcome=outcome,
            errors=result.problems(),
            counts=result.counts(),
        )
    return result


def _record(
    *,
    action: str,
    trigger: str,
    namespace: str,
    scope: Collection[str] | None,
    started_at: datetime,
    outcome: str,
    errors: list[str],
    counts: dict[str, int] | None = None,
) -> None:
    counts = counts or {}
    finished_at = timezone.now()
    K8S_SYNC_RUNS.labels(action=action, result=outcome).inc()
    K8S_SYNC_DURATION.observe((finished_at - started_at).total_seconds())
    for item_result, n in counts.items():
        if item_result != "total_healthy" and n:
            K8S_SYNC_ITEMS.labels(result=item_result).inc(n)
    SyncRun.objects.create(
        action=action,
        trigger=trigger,
        namespace=namespace,
        scope=", ".join(sorted(scope)) if scope is not None else "",
        started_at=started_at,
        finished_at=finished_at,
        outcome=outcome,
        errors=errors[:ERRORS_KEPT],
        **counts,
    )
    stale = SyncRun.objects.order_by("-started_at", "-id").values_list("id", flat=True)[
        RUNS_KEPT : RUNS_KEPT + 500
    ]
    if stale:
        SyncRun.objects.filter(id__in=list(stale)).delete()


def last_full_sync(*, namespace: str) -> SyncRun | None:
    """The latest sync of the whole fleet into `namespace` (not a single device's, not a
    cleanup), whatever its outcome; None when there was none."""
    return (
        SyncRun.objects.filter(action=SyncAction.SYNC, namespace=namespace, scope="")
        .order_by("-finished_at", "-id")
        .first()
    )


class LastSyncCollector(Collector):
    """When the last full sync of K8S_NAMESPACE ended and how, read from the database at
    scrape time (so every replica says the same, whichever process ran the sync: the
    leader's auto-sync, the CronJob, an operator). No series before the first sync, so a
    server whose bridge is not used raises no alert."""

    def collect(self) -> Iterator:
        from django.conf import settings

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
