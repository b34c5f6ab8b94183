"""The fleet-wide routes: every config, every device's stored status, the fleet's counts;
the lists whole by default (the contract) and paged with `?limit=&cursor=`
(devices.api.paging)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from devices import runtime, selectors
from devices.api import responses as r
from devices.api.base import DeviceApiView
from devices.api.paging import PAGE_PARAMETERS, page_of, page_request
from devices.api.selecting import SELECTOR, selector_request
from devices.api.views import DEVICE_FILTERS, OPERATOR, REFRESH, _errors, _refresh_requested
from devices.filtersets import DeviceFilterSet
from edgeserver.api.errors import ApiError


class ConfigListView(DeviceApiView):
    @extend_schema(
        operation_id="config_list",
        parameters=[SELECTOR, *PAGE_PARAMETERS],
        responses={
            200: r.ConfigListSerializer,
            **_errors(*OPERATOR, "invalid_page", "invalid_selector"),
        },
        tags=["config"],
    )
    def get(self, request: Request) -> Response:
        """All stored configs, each with its device_id (operator route); `?selector=`
        picks devices by label, `?limit=` pages."""
        page = page_request(request.query_params)
        selector = selector_request(request.query_params)
        configs = selectors.config_rows(after=page.after, limit=page.limit, selector=selector)
        configs, next_cursor = page_of(configs, page, key=lambda row: row[0])
        context = {"next_cursor": next_cursor} if page.paged else {}
        return Response(r.ConfigListSerializer(configs, context=context).data)


class DeviceListView(DeviceApiView):
    @extend_schema(
        operation_id="devices_list",
        parameters=[*DEVICE_FILTERS, SELECTOR, REFRESH, *PAGE_PARAMETERS],
        responses={
            200: r.DeviceListSerializer,
            **_errors(
                *OPERATOR, "validation_error", "invalid_filter", "invalid_page", "invalid_selector"
            ),
        },
        tags=["devices"],
    )
    def get(self, request: Request) -> Response:
        """Every device with its stored status; `?selector=` picks devices by label;
        `?refresh=true` probes the listed ones first; `?limit=` pages (and a refresh probes
        that page)."""
        refresh = _refresh_requested(request)
        page = page_request(request.query_params)
        selector = selector_request(request.query_params)
        filterset = DeviceFilterSet(request.query_params, queryset=selectors.device_list())
        if not filterset.is_valid():
            field, problems = next(iter(filterset.errors.items()))
            raise ApiError(400, "invalid_filter", f"{field}: {' '.join(problems)}")
        if refresh:
            probed = selectors.device_page(
                filterset.qs, after=page.after, limit=page.limit, selector=selector
            )
            probed, _ = page_of(probed, page, key=lambda device: device.device_id)
            runtime.devices_probe(devices=probed, recheck_drift=True)
        # Read (again): what the probes stored, and nothing deleted meanwhile.
        devices = selectors.device_rows(
            filterset.qs, after=page.after, limit=page.limit, selector=selector
        )
        devices, next_cursor = page_of(devices, page, key=lambda device: device.device_id)
        context = {"next_cursor": next_cursor} if page.paged else {}
        return Response(r.DeviceListSerializer(devices, context=context).data)


class SummaryView(DeviceApiView):
    @extend_schema(
        operation_id="metrics_summary",
        parameters=[REFRESH],
        responses={200: r.SummarySerializer, **_errors(*OPERATOR, "validation_error")},
        tags=["devices"],
    )
    def get(self, request: Request) -> Response:
        """Fleet counts by status and by device type; `?refresh=true` probes every device."""
        if _refresh_requested(request):
            runtime.devices_probe(devices=list(selectors.device_list()), recheck_drift=True)
        return Response(r.SummarySerializer(selectors.fleet_summary()).data)
