"""Automatic syncs (K8S_AUTO_SYNC): the hook the device-health monitor calls.

The monitor, the one process that observes devices, has an AutoSync among its listeners
(MONITOR_LISTENERS, devices.monitor.MonitorListener) and calls
`devices_changed(ids)` right after it stored a status, IP or port change, and `tick()` on
every loop; together the cluster converges within seconds, without a CronJob. Both are
no-ops while K8S_AUTO_SYNC is false and never raise: a failed sync is logged and recorded,
and the next change or the next full reconcile tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from k8sbridge.choices import SyncTrigger
from k8sbridge.exceptions import ClientUnavailable, ClusterUnreachable
from k8sbridge.results import SyncResult
from k8sbridge.services import cluster_sync

logger = logging.getLogger(__name__)


class AutoSync:
    """Reconciles changed devices at once and the whole fleet every K8S_SYNC_INTERVAL."""

    def __init__(
        self,
        *,
        namespace: str | None = None,
        interval: float | None = None,
        enabled: bool | None = None,
    ) -> None:
        # None = read the setting at each call, so a changed setting needs no new object.
        self._namespace = namespace
        # The monitor sets this to its leadership check (devices.monitor.MonitorListener).
        self.still_leading: Callable[[], bool] | None = None
        self._interval = interval
        self._enabled = enabled
        self.last_full_sync: datetime | None = None

    @property
    def enabled(self) -> bool:
        return settings.K8S_AUTO_SYNC if self._enabled is None else self._enabled

    @property
    def namespace(self) -> str:
        return self._namespace or settings.K8S_NAMESPACE

    @property
    def interval(self) -> float:
        return self._interval if self._interval is not None else settings.K8S_SYNC_INTERVAL

    def devices_changed(self, device_ids: Iterable[str]) -> SyncResult | None:
        """Reconcile just these devices (their objects are written, updated or deleted)."""
        ids = sorted(set(device_ids))
        if not self.enabled or not ids:
            return None
        return self._run(ids)

    def tick(self, now: datetime | None = None) -> SyncResult | None:
        """A full reconcile when none ran for `interval` seconds (the first call runs one).

        `now` is the monitor's clock reading (devices.monitor.MonitorListener).
        """
        if not self.enabled:
            return None
        now = timezone.now() if now is None else now
        if (
            self.last_full_sync is not None
            and (now - self.last_full_sync).total_seconds() < self.interval
        ):
            return None
        # Counted from the attempt, so a cluster that is down is retried once per interval.
        self.last_full_sync = now
        return self._run(None)

    def _run(self, device_ids: list[str] | None) -> SyncResult | None:
        try:
            return cluster_sync(
                namespace=self.namespace,
                device_ids=device_ids,
                trigger=SyncTrigger.AUTOSYNC,
                still_leading=self.still_leading,
            )
        except (ClientUnavailable, ClusterUnreachable) as exc:
            logger.warning(
                "Automatic Kubernetes sync of %s failed: %s",
                ", ".join(device_ids) if device_ids else "all devices",
                exc,
            )
        except Exception:
            # The monitor must keep observing devices whatever goes wrong here.
            logger.exception(
                "Automatic Kubernetes sync of %s failed",
                ", ".join(device_ids) if device_ids else "all devices",
            )
        return None
