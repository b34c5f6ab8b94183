"""What the server stores about each device: its exporter config, its observed health and
the history of its config."""

from __future__ import annotations

from typing import Any

from django.db import models

from devices.choices import DEFAULT_PORT, DEFAULT_RELOAD_PORT, DeviceStatus, RevisionAction
from users.choices import ChangeSource


def config_document(
    *,
    device_type: str,
    port: int,
    reload_port: int,
    enabled_metrics: list[str] | None,
    extra_config: dict[str, Any],
) -> dict[str, Any]:
    """What `GET /config/{id}` serves: enabled_metrics only when non-empty, the extra config
    spread at the top level, never the id or the address."""
    document: dict[str, Any] = {
        "device_type": device_type,
        "port": port,
        "reload_port": reload_port,
    }
    if enabled_metrics:
        document["enabled_metrics"] = enabled_metrics
    document.update(extra_config)
    return document


class Device(models.Model):
    """One exporter's configuration; `GET /config/{id}` serves it (see `config_document`)."""

    device_id = models.CharField(primary_key=True, max_length=253)
    device_type = models.CharField(max_length=64, db_index=True)
    ip_address = models.CharField(
        max_length=45, blank=True, default="", help_text="IPv4 or IPv6 literal; empty when unknown"
    )
    port = models.PositiveIntegerField(default=DEFAULT_PORT, help_text="Prometheus metrics port")
    reload_port = models.PositiveIntegerField(
        default=DEFAULT_RELOAD_PORT, help_text="Management port: /health, /reload, /config"
    )
    enabled_metrics = models.JSONField(
        null=True, blank=True, default=None, help_text="List of metric names; empty = all"
    )
    extra_config = models.JSONField(
        default=dict, blank=True, help_text="Every other top-level key of the config"
    )
    version = models.PositiveIntegerField(
        default=1, help_text="Revision number of the current config (the ETag)"
    )
    labels = models.JSONField(default=dict, blank=True, help_text="Operator labels: {key: value}")
    base_config = models.JSONField(
        null=True,
        blank=True,
        default=None,
        help_text="The config its writes built, before profiles (None: the served config)",
    )
    operator_keys = models.JSONField(
        default=list,
        blank=True,
        help_text="Paths of keys an operator set for this device: they win over profiles",
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["device_id"]

    def __str__(self) -> str:
        return self.device_id

    def config_document(self) -> dict[str, Any]:
        """The body of `GET /config/{id}`: what the exporter loads as its running config."""
        return config_document(
            device_type=self.device_type,
            port=self.port,
            reload_port=self.reload_port,
            enabled_metrics=self.enabled_metrics,
            extra_config=self.extra_config,
        )

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


class DeviceHealth(models.Model):
    """The latest observation of a device, written by probes (the monitor, `?refresh=true`,
    the admin) and by the device's own calls (observed address).

    Config writes touch it only to ask for attention: `probe_requested_at` when the
    address, ports or type changed, `reload_pending` when the device could not be told of
    a change, and a reset of the drift check when what the device should run changed.
    """

    device = models.OneToOneField(
        Device, primary_key=True, on_delete=models.CASCADE, related_name="health"
    )
    status = models.CharField(
        max_length=16, choices=DeviceStatus.choices, default=DeviceStatus.UNKNOWN, db_index=True
    )
    error = models.TextField(blank=True, default="")
    exporter_status = models.CharField(
        max_length=32, blank=True, default="", help_text="The status the exporter reports itself"
    )
    last_checked = models.DateTimeField(null=True, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True, help_text="Last healthy answer")
    status_changed_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    probed_address = models.CharField(
        max_length=64, blank=True, default="", help_text="ip:reload_port the status is about"
    )
    probe_requested_at = models.DateTimeField(
        null=True,
        blank=True,
        db_index=True,
        help_text="Set by a config write; the monitor probes the device at once and clears it",
    )
    reload_pending = models.BooleanField(
        default=False,
        help_text="The config changed while the device could not be told (it was unreachable "
        "or its reload failed); the monitor reloads it when it answers again",
    )
    observed_ip = models.CharField(max_length=45, blank=True, default="")
    last_contact = models.DateTimeField(null=True, blank=True)
    config_in_sync = models.BooleanField(null=True, blank=True)
    drifted_keys = models.JSONField(default=list, blank=True)
    drift_checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "device health"

    def __str__(self) -> str:
        return f"{self.device_id}: {self.status}"


class DeviceStatusChange(models.Model):
    """One change of a device's stored status, written with the observation that made it.

    The admin's status timeline and "status changes that matter" read these; a change
    from `unknown` is a device's first probe. Kept by device id, like revisions; rows
    older than STATUS_CHANGE_RETENTION are removed by the rounds that write new ones.
    """

    device_id = models.CharField(max_length=253)
    previous = models.CharField(max_length=16, choices=DeviceStatus.choices)
    status = models.CharField(max_length=16, choices=DeviceStatus.choices)
    error = models.TextField(blank=True, default="")
    changed_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-changed_at", "-id"]
        indexes = [models.Index(fields=["device_id", "-changed_at"], name="status_change_device")]

    def __str__(self) -> str:
        return f"{self.device_id}: {self.previous} -> {self.status}"

    @property
    def is_first_probe(self) -> bool:
        return self.previous == DeviceStatus.UNKNOWN


class DeviceRevision(models.Model):
    """One change of a device's config, written in the same transaction as the change.

    Kept by device id, not by foreign key, so the history outlives a deleted device.
    """

    device_id = models.CharField(max_length=253, db_index=True)
    version = models.PositiveIntegerField()
    action = models.CharField(max_length=16, choices=RevisionAction.choices)
    config = models.JSONField(help_text="The config as GET /config/{id} served it, plus ip_address")
    actor = models.CharField(max_length=200)
    source = models.CharField(max_length=16, choices=ChangeSource.choices)
    note = models.CharField(
        max_length=200, blank=True, default="", help_text="Why, when the server decided something"
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["device_id", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["device_id", "version"], name="unique_device_version")
        ]

    def __str__(self) -> str:
        return f"{self.device_id} v{self.version} ({self.action})"


class Profile(models.Model):
    """Config keys for every device its selector matches, layered over what the devices
    report (devices.layers); a higher priority wins where two profiles set one key.

    A staged rollout (the rollouts app) sets `staged_config`/`staged_version`: the devices
    listed in StagedDevice get it, every other matching device keeps `config`.
    """

    name = models.CharField(primary_key=True, max_length=63)
    selector = models.CharField(max_length=4096, blank=True, default="")
    priority = models.IntegerField(default=0)
    config = models.JSONField(default=dict, blank=True)
    version = models.PositiveIntegerField(default=1)
    staged_config = models.JSONField(null=True, blank=True, default=None)
    staged_version = models.PositiveIntegerField(null=True, blank=True, default=None)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["priority", "name"]

    def __str__(self) -> str:
        return self.name


class StagedDevice(models.Model):
    """A device that gets its profile's staged config (a rollout's wave reached it)."""

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="staged")
    device_id = models.CharField(max_length=253, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["profile", "device_id"], name="unique_staged_device")
        ]

    def __str__(self) -> str:
        return f"{self.device_id} ({self.profile_id}, staged)"


class ProfileRevision(models.Model):
    """One version of a profile, written in the same transaction as the change."""

    profile_name = models.CharField(max_length=63, db_index=True)
    version = models.PositiveIntegerField()
    action = models.CharField(max_length=16, choices=RevisionAction.choices)
    selector = models.CharField(max_length=4096, blank=True, default="")
    priority = models.IntegerField(default=0)
    config = models.JSONField(default=dict)
    actor = models.CharField(max_length=200)
    source = models.CharField(max_length=16, choices=ChangeSource.choices)
    note = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["profile_name", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["profile_name", "version"], name="unique_profile_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.profile_name} v{self.version} ({self.action})"
