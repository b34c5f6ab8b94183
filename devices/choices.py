"""Enumerations of the devices domain, shared by models, serializers, filters and admin."""

from django.db import models

DEFAULT_PORT = 9100
DEFAULT_RELOAD_PORT = 9101

# Device types the exporter knows; any other non-empty type is accepted too.
KNOWN_DEVICE_TYPES = (
    "jetson_orin",
    "jetson_xavier",
    "jetson_nano",
    "jetson",
    "raspberry_pi",
    "orange_pi",
    "lattepanda",
    "shelly",
)


class DeviceStatus(models.TextChoices):
    HEALTHY = "healthy", "Healthy"
    UNHEALTHY = "unhealthy", "Unhealthy"
    UNREACHABLE = "unreachable", "Unreachable"
    UNKNOWN = "unknown", "Unknown"


class RevisionAction(models.TextChoices):
    CREATED = "created", "Created"
    UPDATED = "updated", "Updated"
    PATCHED = "patched", "Patched"
    DELETED = "deleted", "Deleted"
    ROLLED_BACK = "rolled_back", "Rolled back"
    # A device's served config changed because a profile (or a rollout of one) did.
    PROFILE = "profile", "Profile"


class ReloadStatus(models.TextChoices):
    RELOADED = "reloaded", "Reloaded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
