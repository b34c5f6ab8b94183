"""The Kubernetes routes of the contract.

Each view validates the namespace (and the device id, in ApiView), calls one service and
renders its result. Without a Kubernetes client every route but the manifests answers the
contract's 503; an API server that does not answer is a 503 too.
"""

from __future__ import annotations

from typing import Any

import yaml
from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from devices import selectors
from devices.api.serializers import ErrorSerializer
from edgeserver.api.errors import ApiError, device_not_found
from edgeserver.api.views import ApiView
from k8sbridge import services
from k8sbridge.api import serializers as s
from k8sbridge.client import (
    NOT_INITIALIZED,
    NOT_INITIALIZED_MESSAGE,
    ClientUnavailable,
    KubeError,
    client_configured,
)
from k8sbridge.objects import is_namespace_name
from k8sbridge.services import ClusterUnreachable

NAMESPACE = OpenApiParameter(
    "namespace",
    str,
    description="Kubernetes namespace (RFC 1123 label); default K8S_NAMESPACE (`monitoring`)",
)
UNREACHABLE = "Kubernetes API unreachable"
# What `GET /kubernetes/manifests?format=` produces: the Service route's objects per device
# (the default), or one Prometheus Operator ScrapeConfig using HTTP service discovery.
MANIFEST_FORMATS = {
    "services": services.manifests_yaml,
    "scrapeconfig": services.scrapeconfig_yaml,
}
MANIFEST_FORMAT = OpenApiParameter(
    "format",
    str,
    enum=list(MANIFEST_FORMATS),
    description="`services` (default): a Service and Endpoints/EndpointSlice per healthy "
    "device. `scrapeconfig`: a Prometheus Operator ScrapeConfig (monitoring.coreos.com/"
    "v1alpha1) that discovers every device through `SERVER_URL/prometheus/targets`",
)


def _errors(*codes: int) -> dict[int, Any]:
    return {code: ErrorSerializer for code in (400, 401, 403, *codes)}


def _namespace(value: Any) -> str:
    if value is None or value == "":
        return settings.K8S_NAMESPACE
    if not isinstance(value, str) or not is_namespace_name(value):
        raise ApiError(
            400,
            "invalid_namespace",
            f"Namespace must be a lowercase RFC 1123 label of at most 63 characters "
            f"(letters, digits, '-'), got {value!r}",
        )
    return value


class KubeView(ApiView):
    """A route that needs a Kubernetes client: 503 before anything else when none exists."""

    requires_client = True

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if not hasattr(self, request.method.lower()):
            self.http_method_not_allowed(request)  # a wrong method is a 405, cluster or not
        self.namespace = _namespace(request.query_params.get("namespace"))
        if self.requires_client and not client_configured():
            raise ClientUnavailable()

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, ClientUnavailable):
            exc = ApiError(503, NOT_INITIALIZED, NOT_INITIALIZED_MESSAGE)
        elif isinstance(exc, ClusterUnreachable):
            exc = ApiError(503, UNREACHABLE, str(exc))
        elif isinstance(exc, KubeError):
            exc = ApiError(502, "Kubernetes API error", str(exc))
        return super().handle_exception(exc)

    def device(self, device_id: str):
        device = selectors.device_get_with_health(device_id=device_id)
        if device is None:
            raise device_not_found(device_id)
        return device


class SyncView(KubeView):
    @extend_schema(
        request=s.SyncRequestSerializer,
        parameters=[NAMESPACE],
        responses={200: s.SyncResponseSerializer, **_errors(413, 503)},
        tags=["kubernetes"],
        description="Make the namespace hold the objects of the published devices (level-based).",
    )
    def post(self, request: Request) -> Response:
        body = self.body()
        namespace = _namespace(body.get("namespace")) if "namespace" in body else self.namespace
        serializer = s.SyncRequestSerializer(data={k: v for k, v in body.items() if k == "dry_run"})
        serializer.is_valid(raise_exception=True)
        result = services.cluster_sync(
            namespace=namespace, dry_run=serializer.validated_data["dry_run"]
        )
        return Response(result.as_dict())


class DeviceSyncView(KubeView):
    @extend_schema(
        operation_id="kubernetes_sync_device",
        parameters=[NAMESPACE],
        request=None,
        responses={200: s.DeviceSyncResponseSerializer, **_errors(404, 503)},
        tags=["kubernetes"],
    )
    def post(self, request: Request, device_id: str) -> Response:
        item = services.device_sync(device=self.device(device_id), namespace=self.namespace)
        body = item.as_dict()
        # The contract knows created/updated/failed for this route; "already matching" is
        # reported as updated, with `changed: false`.
        body["changed"] = item.status != "unchanged"
        if item.status == "unchanged":
            body["status"] = "updated"
        return Response(body)


class StatusView(KubeView):
    @extend_schema(
        parameters=[NAMESPACE],
        responses={200: s.StatusResponseSerializer, **_errors(502, 503)},
        tags=["kubernetes"],
    )
    def get(self, request: Request) -> Response:
        return Response(services.cluster_status(namespace=self.namespace))


class HealthView(KubeView):
    requires_client = False

    @extend_schema(
        parameters=[NAMESPACE],
        responses={200: s.HealthResponseSerializer, 503: s.HealthUnavailableSerializer,
                   **_errors()},
        tags=["kubernetes"],
    )
    def get(self, request: Request) -> Response:
        if not client_configured():
            raise ApiError(
                503,
                NOT_INITIALIZED,
                NOT_INITIALIZED_MESSAGE,
                kubernetes_available=False,
                client_initialized=False,
                namespace_accessible=False,
                rbac_permissions={},
            )
        return Response(services.cluster_health(namespace=self.namespace))


class YAMLRenderer(BaseRenderer):
    """Lets a client ask for `application/yaml`; the manifests arrive as that text."""

    media_type = "application/yaml"
    format = "yaml"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None,
               renderer_context: dict | None = None) -> bytes:
        return yaml.safe_dump(data, sort_keys=False).encode() if data is not None else b""


class ManifestsView(KubeView):
    """Reads only the database: works without any cluster access."""

    requires_client = False
    renderer_classes = [JSONRenderer, YAMLRenderer]

    @extend_schema(
        parameters=[NAMESPACE, MANIFEST_FORMAT],
        responses={
            # Typeless: a YAML stream of several documents, or only comment lines.
            (200, "application/yaml"): OpenApiResponse(
                {"nullable": True, "description": "YAML documents"},
                description="Multi-document YAML for kubectl apply -f",
            ),
            **_errors(),
        },
        tags=["kubernetes"],
    )
    def get(self, request: Request) -> HttpResponse:
        """Objects to `kubectl apply`, built from the database alone (no cluster needed)."""
        name = request.query_params.get("format") or "services"
        render = MANIFEST_FORMATS.get(name)
        if render is None:
            raise ApiError(
                400,
                "invalid_format",
                f"format must be one of {', '.join(MANIFEST_FORMATS)}, got {name!r}",
            )
        return HttpResponse(
            render(namespace=self.namespace), content_type="application/yaml; charset=utf-8"
        )


class ResourcesView(KubeView):
    @extend_schema(
        parameters=[NAMESPACE],
        responses={200: s.ResourcesResponseSerializer, **_errors(404, 502, 503)},
        tags=["kubernetes"],
    )
    def get(self, request: Request, device_id: str) -> Response:
        return Response(
            services.device_resources(device=self.device(device_id), namespace=self.namespace)
        )

    @extend_schema(
        parameters=[NAMESPACE],
        responses={200: s.DeleteResourcesResponseSerializer, **_errors(404, 503)},
        tags=["kubernetes"],
    )
    def delete(self, request: Request, device_id: str) -> Response:
        item = services.device_objects_delete(
            device=self.device(device_id), namespace=self.namespace
        )
        return Response(item.as_dict())


class CleanupView(KubeView):
    @extend_schema(
        parameters=[NAMESPACE],
        responses={200: s.CleanupResponseSerializer, **_errors(503)},
        tags=["kubernetes"],
    )
    def delete(self, request: Request) -> Response:
        return Response(services.cluster_cleanup(namespace=self.namespace))
