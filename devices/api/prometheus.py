"""`GET /prometheus/targets`: the fleet in Prometheus's HTTP service discovery format, so a
Prometheus (in or out of a cluster) scrapes the devices without any Kubernetes objects."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from devices import selectors
from devices.api import serializers as s
from devices.api.render import target_group
from devices.choices import DeviceStatus
from edgeserver.api.errors import ApiError
from edgeserver.api.views import ApiView

# What Prometheus accepts from an http_sd endpoint
# (https://prometheus.io/docs/prometheus/latest/http_sd/), narrowed to what this route sends.
TARGET_GROUPS_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["targets", "labels"],
        "properties": {
            "targets": {
                "type": "array",
                "items": {"type": "string", "description": "ip:port, IPv6 as [ip]:port"},
                "minItems": 1,
                "maxItems": 1,
            },
            "labels": {
                "type": "object",
                "required": [
                    "device_id",
                    "device_type",
                    "__meta_edge_status",
                    "__meta_edge_reload_port",
                ],
                "properties": {
                    "device_id": {"type": "string"},
                    "device_type": {"type": "string"},
                    "__meta_edge_status": {
                        "type": "string",
                        "enum": [c.value for c in DeviceStatus],
                    },
                    "__meta_edge_reload_port": {"type": "string", "pattern": "^[0-9]+$"},
                },
                "additionalProperties": {"type": "string"},
            },
        },
        "additionalProperties": False,
    },
}


class PrometheusTargetsView(ApiView):
    """An operator route (AUTH_MODE): Prometheus sends its token through
    `http_sd_configs[].authorization` (or a ScrapeConfig's `httpSDConfigs[].authorization`)."""

    @extend_schema(
        operation_id="prometheus_targets",
        parameters=[
            OpenApiParameter(
                "status",
                str,
                enum=[c.value for c in DeviceStatus],
                description="Only devices of this status (default: every device with an "
                "allowed address, so dead ones show as up == 0)",
            )
        ],
        responses={
            200: OpenApiResponse(
                TARGET_GROUPS_SCHEMA,
                description="One target group per device, the whole fleet at once "
                "(`[]` when there is none)",
            ),
            400: s.ErrorSerializer,
            401: s.ErrorSerializer,
            403: s.ErrorSerializer,
        },
        tags=["prometheus"],
    )
    def get(self, request: Request) -> Response:
        """Scrape targets for Prometheus `http_sd_configs`: one group per device with an
        address inside DEVICE_ALLOWED_NETWORKS, labelled `device_id`, `device_type`,
        `__meta_edge_status` and `__meta_edge_reload_port`."""
        query = s.TargetsQuerySerializer(data=request.query_params)
        if not query.is_valid():
            field, problems = next(iter(query.errors.items()))
            raise ApiError(400, "invalid_filter", f"{field}: {' '.join(problems)}")
        targets = selectors.scrape_targets(status=query.validated_data.get("status") or None)
        return Response([target_group(target) for target in targets])
