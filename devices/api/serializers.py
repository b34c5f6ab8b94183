"""What the device routes accept: validation of request bodies and query parameters.

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
    DeviceStatus,
)
from devices.labels import MAX_LABELS, InvalidLabel, validate_labels
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


# What surrounds a device type and is dropped: whitespace by every regex engine's reckoning
# (ECMA's `\s` adds U+FEFF, Python's adds U+001C-U+001F and U+0085), spelled out, so that
# the schema's pattern and this field agree to the character whoever reads the pattern.
WHITESPACE = "".join(
    ["\t\n\v\f\r \u00a0\u1680", *map(chr, range(0x2000, 0x200B)), "\u2028\u2029\u202f\u205f\u3000"]
)
_SPACE = r"\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
DEVICE_TYPE_SCHEMA = {
    "type": "string",
    # 1-64 characters once surrounding whitespace is dropped; no NUL.
    "pattern": (
        rf"^[{_SPACE}]*[^{_SPACE}\u0000]"
        rf"(?:[^\u0000]{{0,{DEVICE_TYPE_MAX_LENGTH - 2}}}[^{_SPACE}\u0000])?[{_SPACE}]*$"
    ),
    "description": "The exporter's device type (known: jetson_orin, jetson_xavier, "
    "jetson_nano, jetson, raspberry_pi, orange_pi, lattepanda, shelly; others are accepted); "
    "surrounding whitespace is dropped",
}


@extend_schema_field(DEVICE_TYPE_SCHEMA)
class DeviceTypeField(serializers.Field):
    def to_internal_value(self, data: Any) -> str:
        value = data.strip(WHITESPACE) if isinstance(data, str) else ""
        if not value or "\x00" in value:
            raise _invalid(
                f"device_type must be a non-empty string, got {_shown(data)}",
                "invalid_device_type",
            )
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
    """A TCP port: an integer 1-65535 (`9100.0` is that integer in JSON, as JSON Schema has
    it). A bool, a fraction or a numeric string is refused."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, float) and data.is_integer():
            data = int(data)
        if isinstance(data, bool) or not isinstance(data, int) or not 1 <= data <= 65535:
            raise _invalid(
                f"{self.field_name} must be an integer between 1 and 65535, got {_shown(data)}",
                "invalid_port",
            )
        return data

    def to_representation(self, value: int) -> int:
        return value


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
        if direction == "request" and isinstance(self.target, DeviceConfigSerializer):
            # Only the path's id is accepted here, which a schema cannot say: best left out.
            schema.setdefault("properties", {})["device_id"] = {
                "not": {},
                "description": "Leave out: a body naming the path's device is accepted, any "
                "other id is refused (`device_id_mismatch`)",
            }
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


class StrictBooleanField(serializers.Field):
    """A query flag: exactly `true` or `false` (DRF's BooleanField also takes yes, 1, on...)."""

    VALUES = {"true": True, "false": False}

    def to_internal_value(self, data: Any) -> bool:
        if data not in self.VALUES:
            raise _invalid(
                f"{self.field_name} must be true or false, got {_shown(data)}", "invalid"
            )
        return self.VALUES[data]


class RefreshQuerySerializer(serializers.Serializer):
    """`?refresh=true`: probe the devices now instead of answering from stored observations."""

    refresh = StrictBooleanField(required=False, default=False)


class RollbackSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)

    def to_internal_value(self, data: dict[str, Any]) -> dict[str, Any]:
        version = data.get("version")
        if isinstance(version, float) and version.is_integer():
            version = int(version)  # 3.0 is the integer 3 in JSON
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


# ---- Prometheus HTTP service discovery (`GET /prometheus/targets`) -------------------------


class TargetsQuerySerializer(serializers.Serializer):
    """`?status=`: only the devices of one contract status (default: every status)."""

    status = serializers.ChoiceField(choices=DeviceStatus.choices, required=False)


_LABEL_NAME = "[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = f"^(?:[a-z0-9](?:[-a-z0-9]{{0,61}}[a-z0-9])?/)?{_LABEL_NAME}$"


@extend_schema_field(
    {
        "type": "object",
        "propertyNames": {"pattern": _LABEL_KEY},
        "additionalProperties": {"type": "string", "pattern": f"^(?:{_LABEL_NAME})?$"},
        "maxProperties": MAX_LABELS,
        "example": {"site": "lab-3", "rack": "r2"},
    }
)
class LabelsField(serializers.Field):
    """Labels in Kubernetes' syntax (devices.labels.validate_labels): `invalid_label`,
    naming the bad key or value, for anything else."""

    def to_internal_value(self, data: Any) -> dict[str, str]:
        try:
            return validate_labels(data)
        except InvalidLabel as exc:
            raise _invalid(str(exc), "invalid_label") from exc

    def to_representation(self, value: dict[str, str]) -> dict[str, str]:
        return value


class DeviceLabelsSerializer(serializers.Serializer):
    """Body of `PUT /devices/{id}/labels`: the whole label set (other keys are ignored)."""

    labels = LabelsField(
        help_text="Keys `[prefix/]name` (name 1-63 of letters, digits, `-_.`, starting and "
        "ending alphanumeric; prefix a DNS subdomain); values empty or 1-63 of the same; "
        f"at most {MAX_LABELS}"
    )
