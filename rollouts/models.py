"""What a staged rollout stores: the rollout, its waves (the canary first) and each device's
state in it. Everything the leader's driver decides from is here, so a restart or another
leader resumes where the rollout was."""

from __future__ import annotations

from django.db import models

from rollouts.choices import DeviceState, RolloutStatus


class Rollout(models.Model):
    """A new config of a profile going out wave by wave (devices.profiles stages it)."""

    profile_name = models.CharField(max_length=63, db_index=True)
    from_version = models.PositiveIntegerField()
    to_version = models.PositiveIntegerField()
    config = models.JSONField(help_text="The profile's new config")
    strategy = models.JSONField(help_text="canary, waves, wave_wait_seconds, ...")
    status = models.CharField(
        max_length=16, choices=RolloutStatus.choices, default=RolloutStatus.RUNNING, db_index=True
    )
    staging_open = models.BooleanField(
        default=True,
        help_text="The profile still holds this rollout's staged version (ended once the "
        "rollout ended and the profile was promoted or rolled back)",
    )
    reason = models.TextField(blank=True, default="", help_text="Why it ended, when it did")
    actor = models.CharField(max_length=200)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"rollout {self.pk} of {self.profile_name} v{self.to_version}"

    @property
    def active(self) -> bool:
        return self.status in (RolloutStatus.RUNNING, RolloutStatus.PAUSED)


class RolloutWave(models.Model):
    """One stage of a rollout: index 0 is the canary (percent None), then each wave."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="waves")
    index = models.PositiveIntegerField()
    percent = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["rollout", "index"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "index"], name="unique_rollout_wave")
        ]

    def __str__(self) -> str:
        return "canary" if self.percent is None else f"wave {self.index} ({self.percent} %)"


class RolloutDevice(models.Model):
    """A device of a rollout: its wave, and how far the new version got on it."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="devices")
    device_id = models.CharField(max_length=253)
    wave = models.PositiveIntegerField(help_text="Index of its wave (0: the canary)")
    position = models.PositiveIntegerField(help_text="Its place in the rollout's order")
    state = models.CharField(
        max_length=16, choices=DeviceState.choices, default=DeviceState.PENDING, db_index=True
    )
    offline = models.BooleanField(
        default=False,
        help_text="Offline when its wave came: staged, not counted, confirmed when it answers",
    )
    error = models.TextField(blank=True, default="")
    applied_at = models.DateTimeField(
        null=True, blank=True, help_text="When it got the new version (the confirm clock)"
    )
    settled_at = models.DateTimeField(null=True, blank=True, help_text="Confirmed or failed")

    class Meta:
        ordering = ["rollout", "position"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "device_id"], name="unique_rollout_device")
        ]

    def __str__(self) -> str:
        return f"{self.device_id}: {self.state}"
