"""OpenAPI details of the device routes that drf-spectacular cannot infer: the device id
rule on every path, and the addresses DEVICE_ALLOWED_NETWORKS admits (computed when the
schema is generated, so the schema says what this server accepts)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerFieldExtension

from devices.validation import DEVICE_ID_PATTERN, PROFILE_NAME, allowed_networks
from edgeserver.api.ippattern import addresses_pattern


def allowed_address_schema() -> dict[str, Any]:
    """An IPv4 or IPv6 literal inside DEVICE_ALLOWED_NETWORKS."""
    networks = allowed_networks(tuple(settings.DEVICE_ALLOWED_NETWORKS))
    options = []
    for version, fmt in ((4, "ipv4"), (6, "ipv6")):
        of_version = [n for n in networks if n.version == version]
        if of_version:
            options.append(
                {"type": "string", "format": fmt, "pattern": addresses_pattern(of_version)}
            )
    if not options:
        options = [{"type": "string", "not": {}}]
    listed = ", ".join(str(n) for n in networks) or "none"
    return {
        "anyOf": options,
        "description": f"An IPv4 or IPv6 literal inside DEVICE_ALLOWED_NETWORKS ({listed}); "
        "anything else is `invalid_ip_address` or `ip_not_allowed`",
    }


class IPAddressFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "devices.api.serializers.IPAddressField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema = allowed_address_schema()
        if self.target.allow_empty:
            schema["anyOf"].append({"type": "string", "maxLength": 0})
            schema["description"] += "; empty keeps the stored address"
        return schema


def device_id_parameters(result: dict[str, Any], generator: Any, request: Any, public: bool):
    """Every `{device_id}` path parameter follows the one device id rule, and every profile
    `{name}` the profile name rule."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter.get("name") == "device_id":
                    parameter["schema"] = {
                        "type": "string",
                        "pattern": f"^{DEVICE_ID_PATTERN.pattern}$",
                        "maxLength": 253,
                    }
                    parameter["description"] = (
                        "The device's hostname as the exporter reports it, e.g. edge-01"
                    )
                if parameter.get("in") == "path" and parameter.get("name") == "name":
                    parameter["schema"] = {
                        "type": "string",
                        "pattern": PROFILE_NAME.pattern,
                        "maxLength": 63,
                    }
                    parameter["description"] = "The profile's name, e.g. gpu-metrics"
    return result
