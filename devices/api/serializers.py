"""Shapes of the device API: validation of request bodies and the documented responses.

Field errors carry the contract's error kind as their code (`invalid_port`,
`invalid_ip_address`, ...); the error renderer turns the first one into the response.
"""

from __future__ import annotations

import json
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError

from devices.choices import (
    DEFAULT_PORT,
    DEFAULT_RELOAD_PORT,
    ChangeSource,
    DeviceStatus,
    ReloadStatus,
    RevisionAction,
)
from devices.validation import (
    DEVICE_TYPE_MAX_LENGTH,
    address_allowed,
    address_not_allowed_message,
    normalise_ip,
)

CORE_KEYS = ("device_type", "ip_address", "port", "reload_port", "enabled_metrics")


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _invalid(message: str, code: str) -> ValidationError:
    return ValidationError(ErrorDetail(message, code=code))


@extend_schema_field({"type": "string", "minLength": 1, "maxLength": DEVICE_TYPE_MAX_LENGTH})
class DeviceTypeField(serializers.Field):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str) or not data.strip():
            raise _invalid(
                f"device_type must be a non-empty string, got {_shown(data)}",
                "invalid_device_type",
            )
        value = data.strip()
        if len(value) > DEVICE_TYPE_MAX_LENGTH:
            raise _invalid(
                f"device_type must be at most {DEVICE_TYPE_MAX_LENGTH} characters",
                "invalid_device_type",
            )
        return value

    def to_representation(self, value: str) -> str:
        return value


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": 65535})
class PortField(serializers.Field):
    """A TCP port: an integer 1-65535. A bool, a float or a numeric string is refused."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int) or not 1 <= data <= 65535:
            raise _invalid(
                f"{self.field_name} must be an integer between 1 and 65535, got {_shown(data)}",
                "invalid_port",
            )
        return data

    def to_representation(self, value: int) -> int:
        return value


@extend_schema_field(
    {"type": "string", "description": "IPv4 or IPv6 literal inside DEVICE_ALLOWED_NETWORKS"}
)
class IPAddressField(serializers.Field):
    """An IP literal, stored in canonical form. `allow_empty` lets "" mean "keep".

    Every address a client can store passes here, so the outbound guard refuses one the
    server would not contact (`ip_not_allowed`) before anything is stored.
    """

    def __init__(self, *, allow_empty: bool = True, **kwargs: Any) -> None:
        self.allow_empty = allow_empty
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if data == "" and self.allow_empty:
            return ""
        try:
            value = normalise_ip(data)
        except (TypeError, ValueError):
            raise _invalid(
                f"Invalid IP address format: {_shown(data)}", "invalid_ip_address"
            ) from None
        if not address_allowed(value):
            raise _invalid(address_not_allowed_message(value), "ip_not_allowed")
        return value

    def to_representation(self, value: str) -> str:
        return value


class RequiredIPAddressField(IPAddressField):
    """The address a create must name: missing, null or empty is `ip_address_required`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_empty=False, required=True, allow_null=False, **kwargs)

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if data in (serializers.empty, None, ""):
            raise _invalid(
                "Device IP address must be specified in configuration", "ip_address_required"
            )
        return super().validate_empty_values(data)


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "string"},
        "nullable": True,
        "description": "Metric names to collect; null or empty = all",
    }
)
class MetricNamesField(serializers.Field):
    def to_internal_value(self, data: Any) -> list[str]:
        if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
            raise _invalid(
                f"enabled_metrics must be a list of strings or null, got {_shown(data)}",
                "invalid_enabled_metrics",
            )
        return data

    def to_representation(self, value: list[str]) -> list[str]:
        return value


class OpenObjectSerializer(serializers.Serializer):
    """A JSON object whose other top-level keys are part of the document (extra config)."""


class OpenObjectSchema(OpenApiSerializerExtension):
    target_class = OpenObjectSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["additionalProperties"] = {}
        return schema


class DeviceConfigSerializer(OpenObjectSerializer):
    """Body of `PUT /config/{id}`: the known fields, plus any other keys as extra config.

    `port`/`reload_port` absent or null take their defaults; `ip_address` absent or empty
    keeps the stored address. A top-level extra key set to null is dropped (the exporter
    cannot load `"shelly": null`); under `partial=True` (PATCH) null removes the key.
    """

    device_type = DeviceTypeField()
    ip_address = IPAddressField(required=False, allow_null=True)
    port = PortField(required=False, allow_null=True, help_text=f"Default {DEFAULT_PORT}")
    reload_port = PortField(
        required=False, allow_null=True, help_text=f"Default {DEFAULT_RELOAD_PORT}"
    )
    enabled_metrics = MetricNamesField(required=False, allow_null=True)

    def to_internal_value(self, data: dict[str, Any]) -> dict[str, Any]:
        values = super().to_internal_value(data)
        device_id = self.context.get("device_id")
        if "device_id" in data and data["device_id"] != device_id:
            raise ValidationError(
                {
                    "device_id": [
                        ErrorDetail(
                            f"Body names device {_shown(data['device_id'])} but the path names "
                            f"{device_id}",
                            code="device_id_mismatch",
                        )
                    ]
                }
            )
        values["extra"] = {
            key: value
            for key, value in data.items()
            if key not in CORE_KEYS and key != "device_id" and (self.partial or value is not None)
        }
        return values


class DeviceCreateSerializer(DeviceConfigSerializer):
    """Body of `POST /config/{id}`: like PUT, but `ip_address` is required."""

    ip_address = RequiredIPAddressField()


class DeviceBasicSerializer(serializers.Serializer):
    """Body of `PATCH /devices/{id}`: only these four keys are read; others are ignored."""

    device_type = DeviceTypeField(required=False)
    ip_address = IPAddressField(required=False, allow_null=True, allow_empty=False)
    port = PortField(required=False, allow_null=True)
    reload_port = PortField(required=False, allow_null=True)


class RefreshQuerySerializer(serializers.Serializer):
    """`?refresh=true`: probe the devices now instead of answering from stored observations."""

    refresh = serializers.BooleanField(required=False, default=False)


class RollbackSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)

    def to_internal_value(self, data: dict[str, Any]) -> dict[str, Any]:
        version = data.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValidationError(
                {
                    "version": [
                        ErrorDetail(
                            f"version must be a positive integer, got {_shown(version)}",
                            code="invalid_version",
                        )
                    ]
                }
            )
        return {"version": version}


# ---- Response shapes (documentation of what the views return) ----------------------------


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
    device_id = serializers.CharField(required=False)
    message = serializers.CharField(required=False)


class ConfigDocumentSerializer(OpenObjectSerializer):
    device_type = serializers.CharField()
    port = serializers.IntegerField()
    reload_port = serializers.IntegerField()
    enabled_metrics = serializers.ListField(child=serializers.CharField(), required=False)


class ConfigListItemSerializer(ConfigDocumentSerializer):
    device_id = serializers.CharField()


class ConfigListSerializer(serializers.Serializer):
    configs = ConfigListItemSerializer(many=True)
    total = serializers.IntegerField()


class UpsertResponseSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["registered", "updated"])
    device_id = serializers.CharField()
    reload_triggered = serializers.BooleanField()
    version = serializers.IntegerField()


class CreateResponseSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["created"])
    device_id = serializers.CharField()
    version = serializers.IntegerField()
    reload_triggered = serializers.BooleanField()


class PatchResponseSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["patched"])
    device_id = serializers.CharField()
    reload_triggered = serializers.BooleanField()
    version = serializers.IntegerField()


class DeleteResponseSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["deleted"])
    device_id = serializers.CharField()


class BasicUpdateResponseSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["updated"])
    device_id = serializers.CharField()
    message = serializers.CharField()


class RevisionSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    action = serializers.ChoiceField(choices=RevisionAction.choices)
    config = serializers.DictField(help_text="GET /config/{id} as it was, plus ip_address")
    actor = serializers.CharField()
    source = serializers.ChoiceField(choices=ChangeSource.choices)
    note = serializers.CharField(allow_blank=True, help_text="Why, when the server decided")
    created_at = serializers.DateTimeField()


class HistorySerializer(serializers.Serializer):
    device_id = serializers.CharField()
    revisions = RevisionSerializer(many=True)
    total = serializers.IntegerField()


class RollbackResponseSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["rolled_back", "unchanged"])
    device_id = serializers.CharField()
    version = serializers.IntegerField()
    restored_version = serializers.IntegerField()
    reload_triggered = serializers.BooleanField()


class DeviceStatusItemSerializer(serializers.Serializer):
    device_id = serializers.CharField()
    device_type = serializers.CharField()
    ip_address = serializers.CharField(allow_blank=True)
    port = serializers.IntegerField()
    reload_port = serializers.IntegerField()
    status = serializers.ChoiceField(choices=DeviceStatus.choices)
    last_seen = serializers.DateTimeField(required=False, help_text="Last healthy answer")
    error = serializers.CharField(required=False, help_text="Why it is not healthy")
    last_checked = serializers.DateTimeField(allow_null=True, help_text="Last probe")
    observed_ip = serializers.CharField(
        allow_null=True, help_text="Address the device last called GET/PUT /config/{id} from"
    )
    last_contact = serializers.DateTimeField(allow_null=True)
    config_in_sync = serializers.BooleanField(
        allow_null=True,
        help_text="Whether the device runs the config the server serves; null = not checked",
    )
    drifted_keys = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="When config_in_sync is false"
    )
    exporter_status = serializers.CharField(
        required=False, help_text="The exporter's own status (healthy, degraded, starting)"
    )
    reload_pending = serializers.BooleanField(
        help_text="The config changed while the device was unreachable or its reload failed; "
        "the monitor reloads it when it answers again"
    )


class DeviceListSerializer(serializers.Serializer):
    devices = DeviceStatusItemSerializer(many=True)
    total = serializers.IntegerField()
    healthy = serializers.IntegerField()
    unhealthy = serializers.IntegerField()


class ReloadResponseSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=[ReloadStatus.RELOADED.value])
    device_id = serializers.CharField()


class ReloadFailureSerializer(serializers.Serializer):
    """`{"status": "failed", "device_id", "error"}`; a refused request has the usual shape."""

    status = serializers.ChoiceField(choices=[ReloadStatus.FAILED.value], required=False)
    device_id = serializers.CharField(required=False)
    error = serializers.CharField()
    message = serializers.CharField(required=False)


class ReloadResultSerializer(serializers.Serializer):
    device_id = serializers.CharField()
    status = serializers.ChoiceField(choices=ReloadStatus.choices)
    error = serializers.CharField(required=False)


class BulkReloadSerializer(serializers.Serializer):
    results = ReloadResultSerializer(many=True)
    total = serializers.IntegerField()
    success = serializers.IntegerField()
    failed = serializers.IntegerField(help_text="Failed and skipped")


class RunningConfigSerializer(OpenObjectSerializer):
    """The exporter's running config, relayed as the device returned it."""


class SummarySerializer(serializers.Serializer):
    total = serializers.IntegerField()
    healthy = serializers.IntegerField()
    unhealthy = serializers.IntegerField()
    by_device_type = serializers.DictField(child=serializers.IntegerField())
    by_status = serializers.DictField(child=serializers.IntegerField())


class ServerHealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["healthy"])
    service = serializers.CharField()
    version = serializers.CharField()


# ---- Prometheus HTTP service discovery (`GET /prometheus/targets`) -------------------------


class TargetsQuerySerializer(serializers.Serializer):
    """`?status=`: only the devices of one contract status (default: every status)."""

    status = serializers.ChoiceField(choices=DeviceStatus.choices, required=False, allow_blank=True)
