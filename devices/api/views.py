"""Routes of the configuration API and the stored device status.

Each view validates its input with a serializer, calls one service or selector and
renders the contract's document; errors leave through the one error renderer.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from devices import selectors, services
from devices.api import serializers as s
from devices.api.render import config_list_item, revision_item, status_item
from devices.choices import DeviceStatus, ReloadStatus
from devices.filtersets import DeviceFilterSet
from devices.validation import device_id_problem
from edgeserver.api.addresses import request_address
from edgeserver.api.errors import (
    DEVICE_NOT_FOUND,
    ApiError,
    device_not_found,
    error_response,
)
from edgeserver.api.permissions import DeviceRouteAccess, IsOperator
from edgeserver.api.views import ERROR_RESPONSES, ApiView

IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    description="ETag from GET /config/{id}; the write fails with 412 when it is stale",
)
IF_NONE_MATCH = OpenApiParameter(
    "If-None-Match",
    str,
    OpenApiParameter.HEADER,
    description="ETag of a config the caller has; 304 when it is still current",
)

DEVICE_FILTERS = [
    OpenApiParameter("status", str, enum=[c.value for c in DeviceStatus]),
    OpenApiParameter("device_type", str),
    OpenApiParameter("q", str, description="Device id or IP address contains"),
]


REFRESH = OpenApiParameter(
    "refresh",
    bool,
    description="true: probe the devices now (bounded by PROBE_TIMEOUT) and compare their "
    "running config, instead of answering from the monitor's last observations",
)


def _errors(*codes: int) -> dict[int, Any]:
    return {code: ERROR_RESPONSES.get(code, s.ErrorSerializer) for code in (400, 401, *codes)}


def _refresh_requested(request: Request) -> bool:
    if "refresh" not in request.query_params:
        return False
    serializer = s.RefreshQuerySerializer(data={"refresh": request.query_params["refresh"]})
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data["refresh"]


class ConfigListView(ApiView):
    @extend_schema(
        operation_id="config_list",
        responses={200: s.ConfigListSerializer, 401: s.ErrorSerializer},
        tags=["config"],
    )
    def get(self, request: Request) -> Response:
        """All stored configs, each with its device_id (operator route)."""
        configs = [config_list_item(device) for device in selectors.device_list()]
        return Response({"configs": configs, "total": len(configs)})


def served_config_headers(served: selectors.ServedConfig) -> dict[str, str]:
    """The headers of a served config (beside its type and length): its version as the
    ETag, and a cache may keep it only while it revalidates."""
    return {"ETag": served.etag, "Cache-Control": "no-cache"}


def serve_config(request: HttpRequest, device_id: str, *, from_device: bool) -> HttpResponse:
    """`GET /config/{id}` once the caller is allowed: the config, its ETag, 304 when the
    caller's copy is current; the device's own calls record where it called from."""
    problem = device_id_problem(device_id)
    if problem:
        return error_response(400, "invalid_device_id", problem)
    served = selectors.served_config(device_id=device_id)
    if served is None:
        return error_response(
            404,
            DEVICE_NOT_FOUND,
            "No configuration available for this device",
            device_id=device_id,
        )
    if from_device:
        services.device_contact_record(
            device_id=device_id,
            observed=request_address(request.META),
            known_ip=served.observed_ip,
            last_contact=served.last_contact,
        )
    headers = served_config_headers(served)
    if served.etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
        return HttpResponse(status=304, headers=headers)
    return HttpResponse(served.body, content_type="application/json", headers=headers)


def anonymous_device_calls_allowed() -> bool:
    """Whether a device route may be called without any credential."""
    return settings.AUTH_MODE == "open" or settings.DEVICE_REGISTRATION == "open"


def _anonymous_device_call(request: HttpRequest, kwargs: dict[str, Any]) -> bool:
    """A plain GET as field exporters send it: no credential of any kind, where anonymous
    device calls are allowed. Any credential goes through DRF's authentication instead."""
    return (
        kwargs.get("path_token") is None
        and "HTTP_AUTHORIZATION" not in request.META
        and settings.SESSION_COOKIE_NAME not in request.COOKIES
        and anonymous_device_calls_allowed()
    )


class ConfigDetailView(ApiView):
    """`GET`/`PUT` are the device routes; `POST`/`PATCH`/`DELETE` need an operator."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # The fleet's hottest call skips DRF's per-request machinery (request wrapping,
        # authenticators, content negotiation, rendering): same answer, several times the
        # throughput (bench/README.md).
        if request.method in ("GET", "HEAD") and _anonymous_device_call(request, kwargs):
            self.request = request
            return serve_config(request, kwargs["device_id"], from_device=True)
        return super().dispatch(request, *args, **kwargs)

    def get_permissions(self) -> list:
        if self.request.method in ("GET", "HEAD", "PUT", "OPTIONS"):
            return [DeviceRouteAccess()]
        return [IsOperator()]

    def _if_match(self) -> str | None:
        return self.request.headers.get("If-Match")

    def _validated(self, serializer_class: type, *, partial: bool = False) -> dict[str, Any]:
        serializer = serializer_class(
            data=self.body(), partial=partial, context={"device_id": self.validated_device_id}
        )
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    @extend_schema(
        operation_id="config_get",
        parameters=[IF_NONE_MATCH],
        responses={200: s.ConfigDocumentSerializer, 304: None, **_errors(403, 404)},
        tags=["config"],
        auth=[{"bearerAuth": []}, {}],
    )
    def get(self, request: Request, device_id: str, path_token: str | None = None) -> HttpResponse:
        """The config the exporter loads at start and after a reload (device route)."""
        from_device = self.actor(device_route=True).is_device
        return serve_config(request._request, device_id, from_device=from_device)

    @extend_schema(
        operation_id="config_upsert",
        request=s.DeviceConfigSerializer,
        parameters=[IF_MATCH],
        responses={200: s.UpsertResponseSerializer, **_errors(403, 412, 413)},
        tags=["config"],
        auth=[{"bearerAuth": []}, {}],
    )
    def put(self, request: Request, device_id: str, path_token: str | None = None) -> Response:
        """Create or replace a config; exporters register themselves this way (device route)."""
        data = self._validated(s.DeviceConfigSerializer)
        result = services.device_upsert(
            device_id=device_id,
            data=data,
            actor=self.actor(device_route=True),
            if_match=self._if_match(),
            observed=self.observed_address(),
        )
        return Response(
            {
                "status": "registered" if result.created else "updated",
                "device_id": device_id,
                "reload_triggered": result.reload_triggered,
                "version": result.device.version,
            },
            headers={"ETag": result.device.etag},
        )

    @extend_schema(
        operation_id="config_create",
        request=s.DeviceCreateSerializer,
        responses={201: s.CreateResponseSerializer, **_errors(403, 409, 413)},
        tags=["config"],
    )
    def post(self, request: Request, device_id: str, path_token: str | None = None) -> Response:
        """Create a device; 409 when it exists. `ip_address` is required."""
        data = self._validated(s.DeviceCreateSerializer)
        result = services.device_create(device_id=device_id, data=data, actor=self.actor())
        return Response(
            {
                "status": "created",
                "device_id": device_id,
                "version": result.device.version,
                "reload_triggered": result.reload_triggered,
            },
            status=201,
            headers={"ETag": result.device.etag},
        )

    @extend_schema(
        operation_id="config_patch",
        request=s.DeviceConfigSerializer,
        parameters=[IF_MATCH],
        responses={200: s.PatchResponseSerializer, **_errors(403, 404, 412, 413)},
        tags=["config"],
    )
    def patch(self, request: Request, device_id: str, path_token: str | None = None) -> Response:
        """Change only the keys present; a key set to null resets it."""
        data = self._validated(s.DeviceConfigSerializer, partial=True)
        result = services.device_patch(
            device_id=device_id, data=data, actor=self.actor(), if_match=self._if_match()
        )
        return Response(
            {
                "status": "patched",
                "device_id": device_id,
                "reload_triggered": result.reload_triggered,
                "version": result.device.version,
            },
            headers={"ETag": result.device.etag},
        )

    @extend_schema(
        operation_id="config_delete",
        parameters=[IF_MATCH],
        responses={200: s.DeleteResponseSerializer, **_errors(403, 404, 412)},
        tags=["config"],
    )
    def delete(self, request: Request, device_id: str, path_token: str | None = None) -> Response:
        """Remove a device; its history stays."""
        services.device_delete(device_id=device_id, actor=self.actor(), if_match=self._if_match())
        return Response({"status": "deleted", "device_id": device_id})


class ConfigHistoryView(ApiView):
    @extend_schema(
        operation_id="config_history",
        responses={200: s.HistorySerializer, **_errors(404)},
        tags=["config"],
    )
    def get(self, request: Request, device_id: str) -> Response:
        """The device's revisions, newest first."""
        revisions = [revision_item(r) for r in selectors.revision_list(device_id=device_id)]
        if not revisions and selectors.device_get(device_id=device_id) is None:
            raise device_not_found(device_id)
        return Response({"device_id": device_id, "revisions": revisions, "total": len(revisions)})


class ConfigRollbackView(ApiView):
    @extend_schema(
        operation_id="config_rollback",
        request=s.RollbackSerializer,
        parameters=[IF_MATCH],
        responses={200: s.RollbackResponseSerializer, **_errors(404, 412, 413)},
        tags=["config"],
    )
    def post(self, request: Request, device_id: str) -> Response:
        """Restore the config of a revision as a new revision."""
        serializer = s.RollbackSerializer(data=self.body())
        serializer.is_valid(raise_exception=True)
        version = serializer.validated_data["version"]
        result = services.device_rollback(
            device_id=device_id,
            version=version,
            actor=self.actor(),
            if_match=request.headers.get("If-Match"),
        )
        return Response(
            {
                "status": "rolled_back" if result.changed else "unchanged",
                "device_id": device_id,
                "version": result.device.version,
                "restored_version": version,
                "reload_triggered": result.reload_triggered,
            },
            headers={"ETag": result.device.etag},
        )


class DeviceListView(ApiView):
    @extend_schema(
        operation_id="devices_list",
        parameters=[*DEVICE_FILTERS, REFRESH],
        responses={200: s.DeviceListSerializer, **_errors()},
        tags=["devices"],
    )
    def get(self, request: Request) -> Response:
        """Every device with its stored status; `?refresh=true` probes the listed ones first."""
        refresh = _refresh_requested(request)
        filterset = DeviceFilterSet(request.query_params, queryset=selectors.device_list())
        if not filterset.is_valid():
            field, problems = next(iter(filterset.errors.items()))
            raise ApiError(400, "invalid_filter", f"{field}: {' '.join(problems)}")
        if refresh:
            services.devices_probe(devices=filterset.qs, recheck_drift=True)
        items = [status_item(device) for device in filterset.qs.all()]
        healthy = sum(1 for item in items if item["status"] == "healthy")
        return Response(
            {
                "devices": items,
                "total": len(items),
                "healthy": healthy,
                "unhealthy": len(items) - healthy,
            }
        )


class DeviceStatusView(ApiView):
    @extend_schema(
        operation_id="device_status",
        parameters=[REFRESH],
        responses={200: s.DeviceStatusItemSerializer, **_errors(404)},
        tags=["devices"],
    )
    def get(self, request: Request, device_id: str) -> Response:
        """One device's stored status; `?refresh=true` probes it first."""
        refresh = _refresh_requested(request)
        device = selectors.device_get_with_health(device_id=device_id)
        if device is None:
            raise device_not_found(device_id)
        if refresh:
            services.devices_probe(devices=[device], recheck_drift=True)
        return Response(status_item(device))


class DeviceReloadView(ApiView):
    @extend_schema(
        operation_id="device_reload",
        request=None,
        responses={
            200: s.ReloadResponseSerializer,
            400: s.ReloadFailureSerializer,
            401: s.ErrorSerializer,
            404: s.ErrorSerializer,
            502: s.ReloadFailureSerializer,
            503: s.ReloadFailureSerializer,
        },
        tags=["devices"],
    )
    def post(self, request: Request, device_id: str) -> Response:
        """Tell the device to re-fetch its config (`POST /reload` on its reload port).

        400 when it has no address, 502 when it answered other than 200, 503 when it could
        not be reached (or its address is outside DEVICE_ALLOWED_NETWORKS).
        """
        device = selectors.device_get(device_id=device_id)
        if device is None:
            raise device_not_found(device_id)
        result = services.device_reload(device=device)
        if result.status == ReloadStatus.RELOADED:
            return Response({"status": result.status, "device_id": device_id})
        return Response(
            {"status": result.status, "device_id": device_id, "error": result.error},
            status=result.http_status,
        )


class DeviceLocalConfigView(ApiView):
    @extend_schema(
        operation_id="device_local_config",
        responses={200: s.RunningConfigSerializer, **_errors(404, 502, 503)},
        tags=["devices"],
    )
    def get(self, request: Request, device_id: str) -> Response:
        """The config the exporter is running, fetched from the device (`GET /config`)."""
        device = selectors.device_get(device_id=device_id)
        if device is None:
            raise device_not_found(device_id)
        return Response(services.device_running_config(device=device))


class DeviceDetailView(ApiView):
    @extend_schema(
        operation_id="device_update_basic",
        request=s.DeviceBasicSerializer,
        responses={200: s.BasicUpdateResponseSerializer, **_errors(404, 413)},
        tags=["devices"],
    )
    def patch(self, request: Request, device_id: str) -> Response:
        """Change device_type, ip_address, port or reload_port only; never reloads."""
        serializer = s.DeviceBasicSerializer(data=self.body())
        serializer.is_valid(raise_exception=True)
        services.device_update_basic(
            device_id=device_id, data=serializer.validated_data, actor=self.actor()
        )
        return Response(
            {
                "status": "updated",
                "device_id": device_id,
                "message": "Device basic information updated (reload not triggered)",
            }
        )


class DevicesReloadView(DeviceDetailView):
    """`POST /devices/reload` reloads every device; `PATCH` still reaches a device whose id
    happens to be "reload", as `/devices/{id}` would."""

    @extend_schema(
        operation_id="devices_reload",
        request=None,
        responses={200: s.BulkReloadSerializer, 401: s.ErrorSerializer},
        tags=["devices"],
    )
    def post(self, request: Request) -> Response:
        """Reload every device at once (concurrently, bounded by PROBE_CONCURRENCY).

        A device without an address is "skipped" and counted in `failed`.
        """
        results = services.devices_reload(devices=selectors.device_list())
        success = sum(1 for r in results if r.status == ReloadStatus.RELOADED)
        return Response(
            {
                "results": [
                    {"device_id": r.device_id, "status": r.status}
                    | ({"error": r.error} if r.status != ReloadStatus.RELOADED else {})
                    for r in results
                ],
                "total": len(results),
                "success": success,
                "failed": len(results) - success,
            }
        )

    @extend_schema(exclude=True)
    def patch(self, request: Request, device_id: str = "reload") -> Response:
        self.validated_device_id = device_id
        return super().patch(request, device_id=device_id)


class SummaryView(ApiView):
    @extend_schema(
        operation_id="metrics_summary",
        parameters=[REFRESH],
        responses={200: s.SummarySerializer, **_errors()},
        tags=["devices"],
    )
    def get(self, request: Request) -> Response:
        """Fleet counts by status and by device type; `?refresh=true` probes every device."""
        if _refresh_requested(request):
            services.devices_probe(devices=list(selectors.device_list()), recheck_drift=True)
        return Response(selectors.fleet_summary())
