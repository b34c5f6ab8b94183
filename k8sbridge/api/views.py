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
from devices.api.base import DeviceApiView
from devices.exceptions import DeviceNotFound
from devices.models import Device
from edgeserver.api.errorkinds import error_responses
from edgeserver.api.errors import ApiError
from k8sbridge import inspect, manifests, services
from k8sbridge.api import serializers as s
from k8sbridge.api.errors import (
    API_ERROR,
    NOT_INITIALIZED,
    UNREACHABLE,
    not_initialized_message,
)
from k8sbridge.client import kube_api
from k8sbridge.exceptions import ClientUnavailable
from k8sbridge.objects import is_namespace_name

NAMESPACE = OpenApiParameter("namespace", s.NAMESPACE_SCHEMA)
# What `GET /kubernetes/manifests?format=` produces: the Service route's objects per device
# (the default), or one Prometheus Operator ScrapeConfig using HTTP service discovery.
MANIFEST_FORMATS = {
    "services": manifests.manifests_yaml,
    "scrapeconfig": manifests.scrapeconfig_yaml,
}
MANIFEST_FORMAT = OpenApiParameter(
    "format",
    str,
    enum=list(MANIFEST_FORMATS),
    description="`services` (default): a Service and Endpoints/EndpointSlice per healthy "
    "device. `scrapeconfig`: a Prometheus Operator ScrapeConfig (monitoring.coreos.com/"
    "v1alpha1) that discovers every device through `SERVER_URL/prometheus/targets`",
)


# The kinds every Kubernetes route can answer, and those that need the cluster.
ROUTE = ("authentication_required", "forbidden", "invalid_query", "invalid_namespace")
CLUSTER = (*ROUTE, NOT_INITIALIZED, UNREACHABLE)
DEVICE = ("invalid_device_id", "Device not found", "Not found")


def _errors(*kinds: str) -> dict[int, Any]:
    return error_responses(*dict.fromkeys(kinds))


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


class KubeView(DeviceApiView):
    """A route that needs a Kubernetes client: 503 before anything else when none exists."""

    # (The docstring is the routes' schema description; the bridge's exceptions are
    # answered by its table, k8sbridge/api/errors.py.)

    requires_client = True

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self.namespace = _namespace(request.query_params.get("namespace"))
        # OPTIONS describes the route; it needs no cluster.
        if self.requires_client and request.method != "OPTIONS":
            kube_api()  # raises ClientUnavailable: the contract's 503, saying why

    def device(self, device_id: str) -> Device:
        device = selectors.device_get_with_health(device_id=device_id)
        if device is None:
            raise DeviceNotFound(device_id)
        return device


class SyncView(KubeView):
    @extend_schema(
        request=s.SyncRequestSerializer,
        parameters=[NAMESPACE],
        responses={
            200: s.SyncResponseSerializer,
            **_errors(
                *CLUSTER,
                "Invalid request body",
                "request_too_large",
                "validation_error",
                "Missing required field",
                API_ERROR,
            ),
        },
        tags=["kubernetes"],
    )
    def post(self, request: Request) -> Response:
        """Make the namespace hold exactly the objects of the published devices: create or
        update each one's Service, Endpoints and EndpointSlice, delete managed objects nobody
        wants (level-based; nothing written when nothing differs). The body's `namespace`
        wins over `?namespace=`; `dry_run` computes the plan and writes nothing."""
        body = self.body()
        namespace = _namespace(body.get("namespace")) if "namespace" in body else self.namespace
        serializer = s.SyncRequestSerializer(data={k: v for k, v in body.items() if k == "dry_run"})
        serializer.is_valid(raise_exception=True)
        result = services.cluster_sync(
            namespace=namespace, dry_run=serializer.validated_data["dry_run"]
        )
        return Response(s.SyncResponseSerializer(result).data)


class DeviceSyncView(KubeView):
    @extend_schema(
        operation_id="kubernetes_sync_device",
        parameters=[NAMESPACE],
        request=None,
        responses={200: s.DeviceSyncResponseSerializer, **_errors(*CLUSTER, *DEVICE, API_ERROR)},
        tags=["kubernetes"],
    )
    def post(self, request: Request, device_id: str) -> Response:
        """Reconcile one device: its objects are created or updated (`changed: false` when
        they already matched), or removed when it should have none, which is then `failed`
        with why (`device is not healthy`, `no IP address registered`)."""
        item = services.device_sync(device=self.device(device_id), namespace=self.namespace)
        return Response(s.DeviceSyncResponseSerializer(item).data)


class StatusView(KubeView):
    @extend_schema(
        parameters=[NAMESPACE],
        responses={200: s.StatusResponseSerializer, **_errors(*CLUSTER, API_ERROR)},
        tags=["kubernetes"],
    )
    def get(self, request: Request) -> Response:
        """Which objects exist per device and whether the cluster holds exactly what a sync
        would leave (a dry run: nothing is written). Objects of devices that are not
        registered are listed too, and count as unsynced."""
        status = services.cluster_status(namespace=self.namespace)
        return Response(s.StatusResponseSerializer(status).data)


class HealthView(KubeView):
    requires_client = False

    @extend_schema(
        parameters=[NAMESPACE],
        responses={
            200: s.HealthResponseSerializer,
            **_errors(*ROUTE),
            503: s.HealthUnavailableSerializer,
        },
        tags=["kubernetes"],
    )
    def get(self, request: Request) -> Response:
        """Whether the API server answers, the namespace can be read, and RBAC allows each
        verb the configured K8S_ENDPOINTS_MODE needs on each kind (SelfSubjectAccessReview);
        503 with the booleans false when no client can be built."""
        try:
            kube_api()
        except ClientUnavailable as exc:
            raise ApiError(
                503,
                NOT_INITIALIZED,
                not_initialized_message(exc),
                kubernetes_available=False,
                client_initialized=False,
                namespace_accessible=False,
                rbac_permissions={},
            ) from None
        health = inspect.cluster_health(namespace=self.namespace)
        return Response(s.HealthResponseSerializer(health).data)


class YAMLRenderer(BaseRenderer):
    """Lets a client ask for `application/yaml`; the manifests arrive as that text."""

    media_type = "application/yaml"
    format = "yaml"
    charset = "utf-8"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: dict | None = None,
    ) -> bytes:
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
                {"description": "YAML documents (a stream, or only comment lines)"},
                description="Multi-document YAML for kubectl apply -f",
            ),
            **_errors(*ROUTE, "invalid_format"),
        },
        tags=["kubernetes"],
    )
    def get(self, request: Request) -> HttpResponse:
        """The objects a sync would write, as YAML for `kubectl apply -f`, built from the
        database alone (no cluster access needed); `?format=scrapeconfig` gives a
        Prometheus Operator ScrapeConfig that discovers the devices over HTTP instead."""
        name = request.query_params.get("format", "services")  # given empty: a mistake
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
        responses={200: s.ResourcesResponseSerializer, **_errors(*CLUSTER, *DEVICE, API_ERROR)},
        tags=["kubernetes"],
    )
    def get(self, request: Request, device_id: str) -> Response:
        """The device's Service, Endpoints and EndpointSlice as the cluster holds them
        (three reads by name), and the target Prometheus scrapes through them."""
        found = inspect.device_resources(device=self.device(device_id), namespace=self.namespace)
        return Response(s.ResourcesResponseSerializer(found).data)

    @extend_schema(
        parameters=[NAMESPACE],
        responses={
            200: s.DeleteResourcesResponseSerializer,
            **_errors(*CLUSTER, *DEVICE, API_ERROR),
        },
        tags=["kubernetes"],
    )
    def delete(self, request: Request, device_id: str) -> Response:
        """Delete the device's objects (objects that are not managed by this server, or that
        belong to another device, stay: then `failed` with why). A published device gets
        them back at the next sync."""
        item = services.device_objects_delete(
            device=self.device(device_id), namespace=self.namespace
        )
        return Response(s.DeleteResourcesResponseSerializer(item).data)


class CleanupView(KubeView):
    @extend_schema(
        parameters=[NAMESPACE],
        responses={200: s.CleanupResponseSerializer, **_errors(*CLUSTER, API_ERROR)},
        tags=["kubernetes"],
    )
    def delete(self, request: Request) -> Response:
        """Delete every object labelled managed_by=edge-metrics-server in the namespace, and
        nothing else."""
        result = services.cluster_cleanup(namespace=self.namespace)
        return Response(s.CleanupResponseSerializer(result).data)
