"""What the bridge remembers: a record of each sync and cleanup it ran.

The admin's status page and the metrics of a later issue read these; the cluster itself
is always read live.
"""

from __future__ import annotations

from django.db import models

from k8sbridge.choices import SyncAction, SyncOutcome, SyncTrigger


class SyncRun(models.Model):
    """One reconcile (or cleanup) of one namespace, written when it ends."""

    action = models.CharField(max_length=16, choices=SyncAction.choices, default=SyncAction.SYNC)
    trigger = models.CharField(max_length=16, choices=SyncTrigger.choices)
    namespace = models.CharField(max_length=63)
    scope = models.TextField(blank=True, default="", help_text="Device ids; empty = all devices")
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField()
    outcome = models.CharField(max_length=16, choices=SyncOutcome.choices)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    deleted = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    total_healthy = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="Failures, as readable lines")

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = "Kubernetes sync run"

    def __str__(self) -> str:
        when = f"{self.started_at:%Y-%m-%d %H:%M:%S}"
        return f"{self.action} {self.namespace} at {when}: {self.outcome}"

    @property
    def duration_seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()
