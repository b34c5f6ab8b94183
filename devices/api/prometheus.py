"""`GET /prometheus/targets`: the fleet in Prometheus's HTTP service discovery format, so a
Prometheus (in or out of a cluster) scrapes the devices without any Kubernetes objects."""

from __future__ import annotations

import hashlib
import json

from django.http import HttpResponse
from django.utils.http import parse_etags
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request

from devices import selectors
from devices.api import serializers as s
from devices.api.paging import PAGE_PARAMETERS, page_of, page_request
from devices.api.responses import TargetGroupSerializer
from devices.api.selecting import SELECTOR, selector_request
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
            ),
            SELECTOR,
            OpenApiParameter(
                "If-None-Match",
                str,
                OpenApiParameter.HEADER,
                description="ETag of a list the caller has; 304 when the list is still the same",
            ),
            *PAGE_PARAMETERS,
        ],
        responses={
            200: OpenApiResponse(
                TargetGroupSerializer(many=True),
                description="One target group per device, the whole fleet at once "
                "(`[]` when there is none); with `?limit=`, a page, and the next page's "
                "cursor in `X-Next-Cursor` and a `Link: <...>; rel=\"next\"` header "
                "(neither on the last page). The `ETag` names this exact list.",
            ),
            304: OpenApiResponse(description="If-None-Match names the current list's ETag"),
            **error_responses(
                "authentication_required",
                "forbidden",
                "invalid_query",
                "invalid_filter",
                "invalid_page",
                "invalid_selector",
            ),
        },
        tags=["prometheus"],
    )
    def get(self, request: Request) -> HttpResponse:
        """Scrape targets for Prometheus `http_sd_configs`: one group per device with an
        address inside DEVICE_ALLOWED_NETWORKS, labelled `device_id`, `device_type`,
        `__meta_edge_status` and `__meta_edge_reload_port`, and with the device's labels
        (keys sanitised to Prometheus label names; the server's own labels win a
        collision); `__meta_edge_address_shared_with` names the other devices with the
        same address, when there are some. `?selector=` picks devices by label."""
        query = s.TargetsQuerySerializer(data=request.query_params.dict())
        if not query.is_valid():
            field, problems = next(iter(query.errors.items()))
            raise ApiError(400, "invalid_filter", f"{field}: {' '.join(problems)}")
        page = page_request(request.query_params)
        targets = selectors.scrape_targets(
            status=query.validated_data.get("status") or None,
            after=page.after,
            limit=page.limit,
            selector=selector_request(request.query_params),
        )
        targets, next_cursor = page_of(targets, page, key=lambda target: target.device_id)
        context = {"shared_addresses": selectors.fleet_shared_addresses()}
        data = TargetGroupSerializer(targets, many=True, context=context).data
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            # The list itself names its version: any change of any target changes it.
            "ETag": f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"',
            "Cache-Control": "no-cache",
        }
        if next_cursor is not None:
            headers["X-Next-Cursor"] = next_cursor
            following = request.query_params.copy()
            following["cursor"] = next_cursor
            headers["Link"] = f'<{request.path}?{following.urlencode()}>; rel="next"'
        known = parse_etags(request.headers.get("If-None-Match", ""))
        if headers["ETag"] in known or known == ["*"]:
            return HttpResponse(status=304, headers=headers)
        return HttpResponse(body, content_type="application/json", headers=headers)
