"""`{% last_kubernetes_sync %}`: the last sync and its result, on the admin home."""

from __future__ import annotations

from typing import Any

from django import template
from django.conf import settings

from k8sbridge.choices import SyncAction
from k8sbridge.models import SyncRun

register = template.Library()

# Errors of the last run named on the home page; its record keeps them all.
ERRORS_SHOWN = 3


@register.inclusion_tag("admin/k8sbridge/last_sync.html")
def last_kubernetes_sync() -> dict[str, Any]:
    run = SyncRun.objects.filter(action=SyncAction.SYNC).first()
    return {
        "run": run,
        "errors": (run.errors or [])[:ERRORS_SHOWN] if run else [],
        "more_errors": max(0, len(run.errors or []) - ERRORS_SHOWN) if run else 0,
        "auto_sync": settings.K8S_AUTO_SYNC,
        "interval": settings.K8S_SYNC_INTERVAL,
        "namespace": settings.K8S_NAMESPACE,
    }
