"""Enumerations of the Kubernetes bridge, shared by models, services and admin."""

from django.db import models


class SyncTrigger(models.TextChoices):
    API = "api", "API"
    COMMAND = "command", "Management command"
    AUTOSYNC = "autosync", "Automatic sync"
    ADMIN = "admin", "Admin"


class SyncAction(models.TextChoices):
    SYNC = "sync", "Sync"
    CLEANUP = "cleanup", "Cleanup"


class SyncOutcome(models.TextChoices):
    OK = "ok", "All succeeded"
    FAILED = "failed", "Some items failed"
    UNREACHABLE = "unreachable", "Cluster unreachable"
