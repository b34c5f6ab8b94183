"""Enumerations of staged rollouts: a rollout's status and each device's state in it."""

from django.db import models


class RolloutStatus(models.TextChoices):
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    SUCCEEDED = "succeeded", "Succeeded"
    ABORTED = "aborted", "Aborted"
    ROLLED_BACK = "rolled_back", "Rolled back"


# A rollout that still holds its profile's staged version.
ACTIVE = (RolloutStatus.RUNNING, RolloutStatus.PAUSED)


class DeviceState(models.TextChoices):
    PENDING = "pending", "Pending"
    APPLIED = "applied", "Applied"
    CONFIRMED = "confirmed", "Confirmed"
    FAILED = "failed", "Failed"
    ROLLED_BACK = "rolled_back", "Rolled back"


# The states of a device that got the new version.
GOT_VERSION = (DeviceState.APPLIED, DeviceState.CONFIRMED, DeviceState.FAILED)
