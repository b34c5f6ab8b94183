"""`GET /prometheus/targets`: the fleet in Prometheus's HTTP service discovery format, so a
Prometheus (in or out of a cluster) scrapes the devices without any Kubernetes objects."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from devices import selectors
from devices.api import serializers as s
from devices.api.responses import TargetGroupSerializer
from devices.choices import DeviceStatus
from edgeserver.api.errorkinds import error_responses
from edgeserver.api.errors import ApiError
from edgeserver.api.views import ApiView


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
                TargetGroupSerializer(many=True),
                description="One target group per device, the whole fleet at once "
                "(`[]` when there is none)",
            ),
            **error_responses(
                "authentication_required", "forbidden", "invalid_query", "invalid_filter"
            ),
        },
        tags=["prometheus"],
    )
    def get(self, request: Request) -> Response:
        """Scrape targets for Prometheus `http_sd_configs`: one group per device with an
        address inside DEVICE_ALLOWED_NETWORKS, labelled `device_id`, `device_type`,
        `__meta_edge_status` and `__meta_edge_reload_port`; `__meta_edge_address_shared_with`
        names the other devices with the same address, when there are some."""
        query = s.TargetsQuerySerializer(data=request.query_params.dict())
        if not query.is_valid():
            field, problems = next(iter(query.errors.items()))
            raise ApiError(400, "invalid_filter", f"{field}: {' '.join(problems)}")
        targets = selectors.scrape_targets(status=query.validated_data.get("status") or None)
        context = {"shared_addresses": selectors.fleet_shared_addresses()}
        return Response(TargetGroupSerializer(targets, many=True, context=context).data)
