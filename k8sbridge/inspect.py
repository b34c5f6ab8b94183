"""Reads of the cluster that change nothing: one device's objects, and whether the API
server answers and RBAC allows every call the configured mode makes."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from devices.models import Device
from k8sbridge.client import KubeApi, kube_api
from k8sbridge.cluster import objects_named
from k8sbridge.exceptions import KubeError
from k8sbridge.objects import KINDS, Kind, is_managed, kinds_for
from k8sbridge.objects import object_owner as owner_of
from k8sbridge.results import (
    ClusterHealth,
    DeviceResources,
    EndpointSliceState,
    EndpointsState,
    Port,
    ServiceState,
    SliceEndpoint,
)
from k8sbridge.selectors import device_plan

# Verbs the bridge needs on each kind it writes, and on kinds it only cleans up.
WRITE_VERBS = ("get", "list", "create", "patch", "delete")
CLEANUP_VERBS = ("list", "delete")
NO_ANSWER = "error: the Kubernetes API server did not answer"


def device_resources(*, device: Device, namespace: str) -> DeviceResources:
    """What the cluster holds at the device's name, whoever's it is (three get calls).

    Raises ClusterUnreachable (no answer) or KubeError (a refused read).
    """
    name = device_plan(device).service
    found = objects_named(kube_api(), namespace, name)
    service, endpoints, endpointslice = (found.get((kind, name)) for kind in KINDS)
    return DeviceResources(
        device_id=device.device_id,
        service=_service_state(name, service),
        endpoints=_endpoints_state(name, endpoints, device.port),
        endpointslice=_endpointslice_state(name, endpointslice),
        prometheus_target=f"http://{name}.{namespace}.svc:{device.port}/metrics",
    )


def _state(name: str, obj: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "name": name,
        "exists": obj is not None,
        "managed": obj is not None and is_managed(obj),
        "owner": owner_of(obj) if obj is not None else None,
    }


def _service_state(name: str, service: dict[str, Any] | None) -> ServiceState:
    spec = (service or {}).get("spec") or {}
    ports = [Port(p.get("name"), p.get("port")) for p in spec.get("ports") or []]
    return ServiceState(**_state(name, service), cluster_ip=spec.get("clusterIP"), ports=ports)


def _endpoints_state(name: str, endpoints: dict[str, Any] | None, port: int) -> EndpointsState:
    """Addresses as `ip:port`; a subset without ports is taken to serve the device's port."""
    ready, not_ready = [], []
    for subset in (endpoints or {}).get("subsets") or []:
        for number in [p.get("port") for p in subset.get("ports") or []] or [port]:
            ready += [f"{a.get('ip')}:{number}" for a in subset.get("addresses") or []]
            not_ready += [f"{a.get('ip')}:{number}" for a in subset.get("notReadyAddresses") or []]
    return EndpointsState(
        **_state(name, endpoints), ready_addresses=ready, not_ready_addresses=not_ready
    )


def _endpointslice_state(name: str, endpointslice: dict[str, Any] | None) -> EndpointSliceState:
    endpoints = [
        SliceEndpoint(list(e.get("addresses") or []), (e.get("conditions") or {}).get("ready"))
        for e in (endpointslice or {}).get("endpoints") or []
    ]
    return EndpointSliceState(
        **_state(name, endpointslice),
        address_type=(endpointslice or {}).get("addressType"),
        endpoints=endpoints,
    )


def cluster_health(*, namespace: str) -> ClusterHealth:
    """Whether the API server answers and RBAC allows every call the configured mode makes.

    A namespace that cannot be read (a namespaced Role has no `get namespaces`) is
    reported, not fatal: the bridge never needs to read it.
    """
    api = kube_api()
    mode = settings.K8S_ENDPOINTS_MODE
    rbac: dict[str, str] = {}
    namespace_accessible = False
    try:
        api.read_namespace(namespace)
        namespace_accessible = available = True
        rbac["namespace"] = "ok"
    except KubeError as exc:
        available = not exc.unreachable
        rbac["namespace"] = f"error: {exc}"
    ready = available
    for kind in KINDS:
        needed = kind in kinds_for(mode)
        if not available:
            rbac[kind.resource] = NO_ANSWER
            continue
        try:
            rbac[kind.resource], granted = _permissions(api, kind, namespace, mode)
        except KubeError as exc:
            available = not exc.unreachable
            rbac[kind.resource] = f"error: could not check permissions: {exc}"
            granted = False
        ready = ready and (granted or not needed)
    return ClusterHealth(
        kubernetes_available=available,
        namespace_accessible=namespace_accessible,
        namespace=namespace,
        mode=mode,
        api_server=api.host,
        ready=ready,
        rbac_permissions=rbac,
    )


def _permissions(api: KubeApi, kind: Kind, namespace: str, mode: str) -> tuple[str, bool]:
    """What RBAC allows on `kind` (SelfSubjectAccessReviews), and whether that is all the
    mode needs. Raises KubeError."""
    needed = kind in kinds_for(mode)
    verbs = WRITE_VERBS if needed else CLEANUP_VERBS
    denied = [verb for verb in verbs if not api.can_i(verb, kind, namespace)]
    if not denied:
        return "ok", True
    cannot = f"cannot {', '.join(denied)} {kind.resource}"
    if needed:
        return f"error: {cannot} in namespace {namespace}", False
    return (
        f"not required (K8S_ENDPOINTS_MODE={mode}); {cannot}, so left-over {kind.name} "
        "objects are not removed",
        False,
    )
