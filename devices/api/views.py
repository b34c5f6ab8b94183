"""Routes of the configuration API and the stored device status.

Each view validates its input with a serializer, calls one service or selector and
answers with an output serializer (devices.api.responses); domain errors leave through
the one error table (devices.api.errors).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.request import Request
from rest_framework.response import Response

from devices import runtime, selectors, served, services
from devices.api import responses as r
from devices.api import serializers as s
from devices.api.base import DeviceApiView
from devices.api.hotpath import plain_call
from devices.api.selecting import SELECTOR, selector_request
from devices.choices import DeviceStatus, ReloadStatus
from devices.exceptions import DeviceNotFound
from devices.layering import device_explain
from devices.validation import device_id_problem
from edgeserver.api.addresses import request_address
from edgeserver.api.errorkinds import error_responses
from edgeserver.api.errors import error_response, render_error
from users.permissions import DeviceRouteAccess, IsOperator

IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    description='ETag from GET /config/{id} (quoted: `"3"`), or `*`; the write fails with 412 '
    "when it names another version (a value that is not a list of entity tags never matches)",
)
IF_NONE_MATCH = OpenApiParameter(
    "If-None-Match",
    str,
    OpenApiParameter.HEADER,
    description="ETag of a config the caller has; 304 when it is still current",
)

DEVICE_FILTERS = [
    OpenApiParameter("status", str, enum=[c.value for c in DeviceStatus]),
    OpenApiParameter(
        "device_type",
        {"type": "string", "minLength": 1, "pattern": "^[^\\u0000]+$"},
        description="Only devices of this type",
    ),
    OpenApiParameter(
        "q",
        {"type": "string", "pattern": "^[^\\u0000]*$"},
        description="Device id or IP address contains",
    ),
]

REFRESH = OpenApiParameter(
    "refresh",
    bool,
    description="true: probe the devices now (bounded by PROBE_TIMEOUT) and compare their "
    "running config, instead of answering from the monitor's last observations",
)


# The kinds every operator route can answer, and those of a route with a `{device_id}`,
# with a body, and with a config body (devices.api.errors declares what each means).
OPERATOR = ("authentication_required", "forbidden", "invalid_query")
# (`Not found`: a path the routes do not take at all, e.g. a token holding a slash.)
DEVICE = (*OPERATOR, "invalid_device_id", "Device not found", "Not found")
BODY = ("Invalid request body", "request_too_large", "validation_error", "Missing required field")
CONFIG_BODY = (
    *BODY,
    "Missing required field",
    "invalid_device_type",
    "invalid_port",
    "invalid_ip_address",
    "ip_not_allowed",
    "invalid_enabled_metrics",
    "device_id_mismatch",
)
CONDITIONAL = ("precondition_failed",)


def _errors(*kinds: str) -> dict[int, Any]:
    return error_responses(*dict.fromkeys(kinds))


def _refresh_requested(request: Request) -> bool:
    if "refresh" not in request.query_params:
        return False
    serializer = s.RefreshQuerySerializer(data={"refresh": request.query_params["refresh"]})
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data["refresh"]


def _served(request: HttpRequest, device_id: str, *, from_device: bool) -> HttpResponse:
    answer = served.serve(
        device_id=device_id,
        caller=request_address(request.META) if from_device else None,
        if_none_match=request.headers.get("If-None-Match", ""),
    )
    if answer is None:
        raise DeviceNotFound(device_id, "No configuration available for this device")
    return HttpResponse(answer.body, status=answer.status, headers=dict(answer.headers))


class ConfigDetailView(DeviceApiView):
    """`GET`/`PUT` are the device routes; `POST`/`PATCH`/`DELETE` need an operator."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # An exporter's plain call (the fast path's definition) skips DRF's per-request
        # machinery, as it does ahead of Django: the same answer, from served.serve.
        if plain_call(request.META) is not None:
            problem = device_id_problem(kwargs["device_id"])
            if problem:
                return error_response(400, "invalid_device_id", problem)
            try:
                return _served(request, kwargs["device_id"], from_device=True)
            except DeviceNotFound as exc:
                return render_error(exc)
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
        responses={
            200: r.ConfigDocumentSerializer,
            304: None,
            **_errors(*DEVICE),
        },
        tags=["config"],
        auth=[{"bearerAuth": []}, {}],
    )
    def get(self, request: Request, device_id: str, path_token: str | None = None) -> HttpResponse:
        """The config the exporter loads at start and after a reload (device route);
        `?explain=true` (operators): which layer set each key."""
        if request.query_params.get("explain") in ("true", "1"):
            if not IsOperator().has_permission(request, self):
                self.permission_denied(request)
            device = selectors.device_get(device_id=device_id)
            if device is None:
                raise DeviceNotFound(device_id, "No configuration available for this device")
            return Response(device_explain(device))
        from_device = self.actor(device_route=True).is_device
        return _served(request._request, device_id, from_device=from_device)

    @extend_schema(
        operation_id="config_upsert",
        request=s.DeviceConfigSerializer,
        parameters=[IF_MATCH],
        responses={200: r.UpsertResponseSerializer, **_errors(*DEVICE, *CONFIG_BODY, *CONDITIONAL)},
        tags=["config"],
        auth=[{"bearerAuth": []}, {}],
    )
    def put(self, request: Request, device_id: str, path_token: str | None = None) -> Response:
        """Create or replace a config; exporters register themselves this way (device route)."""
        result = services.device_upsert(
            device_id=device_id,
            data=self._validated(s.DeviceConfigSerializer),
            actor=self.actor(device_route=True),
            if_match=self._if_match(),
            observed=self.observed_address(),
        )
        body = r.UpsertResponseSerializer(result).data
        return Response(body, headers={"ETag": result.device.etag})

    @extend_schema(
        operation_id="config_create",
        request=s.DeviceCreateSerializer,
        responses={
            201: r.CreateResponseSerializer,
            **_errors(*DEVICE, *CONFIG_BODY, "ip_address_required", "Device already exists"),
        },
        tags=["config"],
    )
    def post(self, request: Request, device_id: str, path_token: str | None = None) -> Response:
        """Create a device; 409 when it exists. `ip_address` is required."""
        result = services.device_create(
            device_id=device_id, data=self._validated(s.DeviceCreateSerializer), actor=self.actor()
        )
        body = r.CreateResponseSerializer(result).data
        return Response(body, status=201, headers={"ETag": result.device.etag})

    @extend_schema(
        operation_id="config_patch",
        request=s.DeviceConfigSerializer,
        parameters=[IF_MATCH],
        responses={200: r.PatchResponseSerializer, **_errors(*DEVICE, *CONFIG_BODY, *CONDITIONAL)},
        tags=["config"],
    )
    def patch(self, request: Request, device_id: str, path_token: str | None = None) -> Response:
        """Change only the keys present; a key set to null resets it."""
        result = services.device_patch(
            device_id=device_id,
            data=self._validated(s.DeviceConfigSerializer, partial=True),
            actor=self.actor(),
            if_match=self._if_match(),
        )
        body = r.PatchResponseSerializer(result).data
        return Response(body, headers={"ETag": result.device.etag})

    @extend_schema(
        operation_id="config_delete",
        parameters=[IF_MATCH],
        responses={200: r.DeleteResponseSerializer, **_errors(*DEVICE, *CONDITIONAL)},
        tags=["config"],
    )
    def delete(self, request: Request, device_id: str, path_token: str | None = None) -> Response:
        """Remove a device; its history stays."""
        services.device_delete(device_id=device_id, actor=self.actor(), if_match=self._if_match())
        return Response(r.DeleteResponseSerializer(device_id).data)


PATH_TOKEN = OpenApiParameter(
    "path_token",
    str,
    OpenApiParameter.PATH,
    description="A device token bound to this device, or an enrollment token (operator "
    "tokens are refused here: a URL ends up in logs)",
)


@extend_schema_view(
    get=extend_schema(
        operation_id="device_path_config_get",
        parameters=[PATH_TOKEN, IF_NONE_MATCH],
        auth=[{}],
        description="`GET /config/{device_id}` for an exporter whose CONFIG_SERVER_URL ends "
        "in `/d/<token>`: the token travels in the path (a device token of this device, or "
        "an enrollment token).",
    ),
    put=extend_schema(
        operation_id="device_path_config_upsert",
        parameters=[PATH_TOKEN, IF_MATCH],
        auth=[{}],
        description="`PUT /config/{device_id}` for an exporter whose CONFIG_SERVER_URL ends "
        "in `/d/<token>`; a device with a token of its own is written only with it.",
    ),
)
class DevicePathConfigView(ConfigDetailView):
    """`/d/{token}/config/{id}`: the device routes with the credential in the path, for
    exporters that cannot send headers (`CONFIG_SERVER_URL=http://server/d/<token>`). Only
    what a device does: GET and PUT; device and enrollment tokens only."""

    http_method_names = ["get", "put", "head", "options"]


class ConfigHistoryView(DeviceApiView):
    @extend_schema(
        operation_id="config_history",
        responses={200: r.HistorySerializer, **_errors(*DEVICE)},
        tags=["config"],
    )
    def get(self, request: Request, device_id: str) -> Response:
        """The device's revisions, newest first."""
        revisions = list(selectors.revision_list(device_id=device_id))
        if not revisions and selectors.device_get(device_id=device_id) is None:
            raise DeviceNotFound(device_id)
        return Response(r.HistorySerializer({"device_id": device_id, "revisions": revisions}).data)


class ConfigRollbackView(DeviceApiView):
    @extend_schema(
        operation_id="config_rollback",
        request=s.RollbackSerializer,
        parameters=[IF_MATCH],
        responses={
            200: r.RollbackResponseSerializer,
            **_errors(
                *DEVICE,
                *BODY,
                *CONDITIONAL,
                "invalid_version",
                "Revision not found",
                "ip_not_allowed",
            ),
        },
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
        body = r.RollbackResponseSerializer(result, context={"restored_version": version}).data
        return Response(body, headers={"ETag": result.device.etag})


class DeviceStatusView(DeviceApiView):
    @extend_schema(
        operation_id="device_status",
        parameters=[REFRESH],
        responses={200: r.DeviceStatusItemSerializer, **_errors(*DEVICE, "validation_error")},
        tags=["devices"],
    )
    def get(self, request: Request, device_id: str) -> Response:
        """One device's stored status; `?refresh=true` probes it first."""
        refresh = _refresh_requested(request)
        device = selectors.device_get_with_health(device_id=device_id)
        if device is None:
            raise DeviceNotFound(device_id)
        if refresh:
            runtime.devices_probe(devices=[device], recheck_drift=True)
        return Response(r.DeviceStatusItemSerializer(device).data)


def _device(device_id: str):
    device = selectors.device_get(device_id=device_id)
    if device is None:
        raise DeviceNotFound(device_id)
    return device


class DeviceReloadView(DeviceApiView):
    @extend_schema(
        operation_id="device_reload",
        request=None,
        responses={
            **_errors(*DEVICE),
            200: r.ReloadResponseSerializer,
            400: r.ReloadFailureSerializer,
            502: r.ReloadFailureSerializer,
            503: r.ReloadFailureSerializer,
        },
        tags=["devices"],
    )
    def post(self, request: Request, device_id: str) -> Response:
        """Tell the device to re-fetch its config (`POST /reload` on its reload port).

        400 when it has no address, 502 when it answered other than 200, 503 when it could
        not be reached (or its address is outside DEVICE_ALLOWED_NETWORKS).
        """
        result = runtime.device_reload(device=_device(device_id))
        if result.status == ReloadStatus.RELOADED:
            return Response(r.ReloadResponseSerializer(result).data)
        return Response(r.ReloadFailureSerializer(result).data, status=result.http_status)


class DeviceLocalConfigView(DeviceApiView):
    @extend_schema(
        operation_id="device_local_config",
        responses={
            200: r.RunningConfigSerializer,
            **_errors(*DEVICE, "No IP address", "Device error", "Device unreachable"),
        },
        tags=["devices"],
    )
    def get(self, request: Request, device_id: str) -> Response:
        """The config the exporter is running, fetched from the device (`GET /config`)."""
        running = runtime.device_running_config(device=_device(device_id))
        return Response(r.RunningConfigSerializer(running).data)


# PATCH /devices/{id}: its answers, also those of the device whose id is `reload`.
BASIC_UPDATE_RESPONSES = {
    200: r.BasicUpdateResponseSerializer,
    **_errors(
        *DEVICE,
        *BODY,
        "invalid_device_type",
        "invalid_port",
        "invalid_ip_address",
        "ip_not_allowed",
    ),
}


class DeviceDetailView(DeviceApiView):
    @extend_schema(
        operation_id="device_update_basic",
        request=s.DeviceBasicSerializer,
        responses=BASIC_UPDATE_RESPONSES,
        tags=["devices"],
    )
    def patch(self, request: Request, device_id: str) -> Response:
        """Change device_type, ip_address, port or reload_port only; never reloads."""
        serializer = s.DeviceBasicSerializer(data=self.body())
        serializer.is_valid(raise_exception=True)
        result = services.device_update_basic(
            device_id=device_id, data=serializer.validated_data, actor=self.actor()
        )
        return Response(r.BasicUpdateResponseSerializer(result).data)


class DeviceAddressView(DeviceApiView):
    @extend_schema(
        operation_id="device_address_clear",
        responses={200: r.AddressClearedSerializer, **_errors(*DEVICE)},
        tags=["devices"],
    )
    def delete(self, request: Request, device_id: str) -> Response:
        """Forget the device's IP address: it becomes `unknown`, is no longer probed, and
        leaves Kubernetes and the scrape targets at the next sync. (`ip_address` null or
        empty in a write keeps the address, as the contract says.)"""
        result = services.device_clear_ip(device_id=device_id, actor=self.actor())
        return Response(r.AddressClearedSerializer(result).data)


class DevicesReloadView(DeviceDetailView):
    """`POST /devices/reload` reloads every device; `PATCH` still reaches a device whose id
    happens to be "reload", as `/devices/{id}` would."""

    @extend_schema(
        operation_id="devices_reload",
        request=None,
        parameters=[SELECTOR],
        responses={200: r.BulkReloadSerializer, **_errors(*OPERATOR, "invalid_selector")},
        tags=["devices"],
    )
    def post(self, request: Request) -> Response:
        """Reload every device at once (concurrently, bounded by PROBE_CONCURRENCY), or
        only those `?selector=` matches.

        A device without an address is "skipped" and counted in `failed`.
        """
        selector = selector_request(request.query_params)
        devices = selectors.device_list()
        if selector:
            devices = selectors.device_selected(selector, devices)
        results = runtime.devices_reload(devices=devices)
        return Response(r.BulkReloadSerializer(results).data)

    @extend_schema(
        operation_id="device_reload_update_basic",
        request=s.DeviceBasicSerializer,
        responses=BASIC_UPDATE_RESPONSES,
        tags=["devices"],
    )
    def patch(self, request: Request, device_id: str = "reload") -> Response:
        """`PATCH /devices/{id}` of the device whose id is `reload`."""
        self.validated_device_id = device_id
        return super().patch(request, device_id=device_id)

