"""The Kubernetes objects a device should have, as plain dicts: the one source of truth.

Pure functions, no API calls: the sync, the manifests route and the management command
all build their objects here, and tests compare them with literal dicts.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from devices.choices import DeviceStatus
from devices.models import Device
from devices.selectors import device_status

MANAGER = "edge-metrics-server"
APP = "edge-exporter"
SERVICE_PREFIX = "edge-device-"
PORT_NAME = "metrics"
DEVICE_ID_ANNOTATION = "edge-metrics-server/device-id"
# The keys of the device's own labels on its Service (comma-separated): what tells the
# bridge's labels from others' there, so that a label the device lost is removed.
DEVICE_LABELS_ANNOTATION = "edge-metrics-server/labels"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SLICE_MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"

# Every object the bridge writes carries this label; nothing without it is ever touched.
MANAGED_SELECTOR = f"managed_by={MANAGER}"
# With K8S_ENDPOINTS_MODE=endpoints the cluster mirrors our Endpoints into slices that copy
# their labels (managed_by included); those belong to the mirroring controller, so slices
# are also selected by the slice-specific managed-by label.
SLICE_SELECTOR = f"{MANAGED_SELECTOR},{SLICE_MANAGED_BY_LABEL}={MANAGER}"

# The labels and annotations whose values the bridge decides; others on an object are
# someone else's and are ignored when desired and actual objects are compared.
OWNED_LABELS = frozenset(
    {
        "app",
        "device_id",
        "device_type",
        "managed_by",
        SERVICE_NAME_LABEL,
        SLICE_MANAGED_BY_LABEL,
        SKIP_MIRROR_LABEL,
    }
)
OWNED_ANNOTATIONS = frozenset({DEVICE_ID_ANNOTATION, DEVICE_LABELS_ANNOTATION})

MODES = ("both", "endpointslice", "endpoints")
POLICIES = ("delete", "not-ready")

NO_IP = "no IP address registered"
NOT_HEALTHY = "device is not healthy"

_RFC1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_RFC1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_NAME_MAX = 63
_HASH_CHARS = 8


@dataclass(frozen=True)
class Kind:
    """A kind of object the bridge manages."""

    name: str
    resource: str
    api_version: str
    selector: str

    def __str__(self) -> str:
        return self.name


SERVICE = Kind("Service", "services", "v1", MANAGED_SELECTOR)
ENDPOINTS = Kind("Endpoints", "endpoints", "v1", MANAGED_SELECTOR)
ENDPOINTSLICE = Kind("EndpointSlice", "endpointslices", "discovery.k8s.io/v1", SLICE_SELECTOR)
KINDS = (SERVICE, ENDPOINTS, ENDPOINTSLICE)


def kinds_for(mode: str) -> tuple[Kind, ...]:
    """The kinds written per device under K8S_ENDPOINTS_MODE, the Service first."""
    return {
        "both": (SERVICE, ENDPOINTS, ENDPOINTSLICE),
        "endpointslice": (SERVICE, ENDPOINTSLICE),
        "endpoints": (SERVICE, ENDPOINTS),
    }[mode]


def is_namespace_name(value: str) -> bool:
    """A valid namespace name: an RFC 1123 label of at most 63 characters."""
    return len(value) <= _NAME_MAX and bool(_RFC1123_LABEL.fullmatch(value))


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:_HASH_CHARS]


def _slug(value: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")


def service_name(device_id: str) -> str:
    """The name of a device's Service, Endpoints and EndpointSlice.

    `edge-device-<id lower-cased>` (the contract's name) when that is a valid RFC 1035
    label; otherwise the id is slugged, trimmed and suffixed with a hash of the exact id,
    so different ids never share a name by truncation or sanitising.
    """
    name = SERVICE_PREFIX + device_id.lower()
    if len(name) <= _NAME_MAX and _RFC1035_LABEL.fullmatch(name):
        return name
    base = (SERVICE_PREFIX + _slug(device_id))[: _NAME_MAX - _HASH_CHARS - 1].rstrip("-")
    return f"{base}-{_digest(device_id)}"


def name_holder_id(name: str) -> str:
    """The lower-cased id of every device that can get `name`.

    Contract names (`edge-device-<id lower-cased>`) are shared by ids equal but for case;
    a hashed name is another id's only by a hash collision, or when an id lower-cases to
    it, which this also finds.
    """
    return name.removeprefix(SERVICE_PREFIX)


def label_value(value: str) -> str:
    """`value` when it is a valid label value, else a sanitised one with a hash suffix."""
    if len(value) <= _NAME_MAX and _LABEL_VALUE.fullmatch(value):
        return value
    slug = _slug(value)[: _NAME_MAX - _HASH_CHARS - 1].strip("-")
    return f"{slug}-{_digest(value)}" if slug else _digest(value)


def address_type(ip: str) -> str:
    return "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"


def device_labels(device: Device) -> dict[str, str]:
    return {
        "app": APP,
        "device_id": label_value(device.device_id),
        "device_type": label_value(device.device_type),
        "managed_by": MANAGER,
    }


def service_labels(device: Device) -> dict[str, str]:
    """The device's labels (PUT /devices/{id}/labels) that its Service carries, for a
    ServiceMonitor's `targetLabels`: all but the keys the bridge sets itself (app,
    device_id, device_type, managed_by, ...), which keep the bridge's values."""
    return {k: v for k, v in sorted((device.labels or {}).items()) if k not in OWNED_LABELS}


def _metadata(device: Device, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "name": service_name(device.device_id),
        "namespace": namespace,
        "labels": labels,
        "annotations": {DEVICE_ID_ANNOTATION: device.device_id},
    }


def desired_service(device: Device, namespace: str) -> dict[str, Any]:
    """A headless Service without selector: its endpoints are written by the bridge. It
    carries the device's labels too (service_labels), their keys in an annotation."""
    own = service_labels(device)
    metadata = _metadata(device, namespace, {**own, **device_labels(device)})
    if own:
        metadata["annotations"][DEVICE_LABELS_ANNOTATION] = ",".join(own)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "clusterIP": "None",
            "ports": [
                {
                    "name": PORT_NAME,
                    "port": device.port,
                    "targetPort": device.port,
                    "protocol": "TCP",
                }
            ],
        },
    }


def desired_endpoints(
    device: Device, namespace: str, *, ready: bool = True, skip_mirror: bool = False
) -> dict[str, Any]:
    """Endpoints naming the device's address; not-ready addresses stay Prometheus targets.

    `skip_mirror` keeps the cluster from mirroring them into a second EndpointSlice when
    the bridge writes its own.
    """
    labels = device_labels(device)
    if skip_mirror:
        labels[SKIP_MIRROR_LABEL] = "true"
    address_key = "addresses" if ready else "notReadyAddresses"
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": _metadata(device, namespace, labels),
        "subsets": [
            {
                address_key: [{"ip": device.ip_address}],
                "ports": [{"name": PORT_NAME, "port": device.port, "protocol": "TCP"}],
            }
        ],
    }


def desired_endpointslice(
    device: Device, namespace: str, *, ready: bool = True, service_uid: str | None = None
) -> dict[str, Any]:
    """The EndpointSlice of the device's Service, owned by it when its uid is known.

    Without a uid (a manifest for `kubectl apply`) it has no ownerReference.
    """
    labels = {
        **device_labels(device),
        SERVICE_NAME_LABEL: service_name(device.device_id),
        SLICE_MANAGED_BY_LABEL: MANAGER,
    }
    body = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": _metadata(device, namespace, labels),
        "addressType": address_type(device.ip_address),
        "endpoints": [{"addresses": [device.ip_address], "conditions": {"ready": ready}}],
        "ports": [{"name": PORT_NAME, "port": device.port, "protocol": "TCP"}],
    }
    return owned_by_service(body, service_uid)


def owned_by_service(endpointslice: dict[str, Any], service_uid: str | None) -> dict[str, Any]:
    """The slice with its Service (same name) as controlling owner; as it is without a uid.

    The uid exists only once the Service does, so a sync that creates the Service sets it
    on the slice after that write.
    """
    if not service_uid:
        return endpointslice
    metadata = endpointslice["metadata"]
    owner = {
        "apiVersion": "v1",
        "kind": "Service",
        "name": metadata["name"],
        "uid": service_uid,
        "controller": True,
    }
    return {**endpointslice, "metadata": {**metadata, "ownerReferences": [owner]}}


def desired_object(
    kind: Kind,
    device: Device,
    namespace: str,
    *,
    mode: str,
    ready: bool,
    service_uid: str | None = None,
) -> dict[str, Any]:
    if kind is SERVICE:
        return desired_service(device, namespace)
    if kind is ENDPOINTS:
        return desired_endpoints(
            device, namespace, ready=ready, skip_mirror=ENDPOINTSLICE in kinds_for(mode)
        )
    return desired_endpointslice(device, namespace, ready=ready, service_uid=service_uid)


def owned_fields(kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
    """The part of an object the bridge decides, in a comparable form.

    Desired and actual objects are equal when these are equal: fields the API server adds
    (uid, clusterIPs, ipFamilies, managedFields, ...) and labels others set are ignored.
    """
    metadata = obj.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    # The device's labels the object says it carries are the bridge's too.
    owned = OWNED_LABELS | set(annotations.get(DEVICE_LABELS_ANNOTATION, "").split(","))
    view: dict[str, Any] = {
        "labels": {k: v for k, v in (metadata.get("labels") or {}).items() if k in owned},
        "annotations": {k: v for k, v in annotations.items() if k in OWNED_ANNOTATIONS},
    }

    def ports(items: list[dict[str, Any]] | None, *, target: bool = False) -> list[tuple]:
        return [
            (
                p.get("name"),
                p.get("port"),
                p.get("targetPort") if target else None,
                p.get("protocol") or "TCP",
            )
            for p in items or []
        ]

    if kind is SERVICE:
        spec = obj.get("spec") or {}
        view["clusterIP"] = spec.get("clusterIP")
        view["ports"] = ports(spec.get("ports"), target=True)
    elif kind is ENDPOINTS:
        view["subsets"] = [
            (
                sorted(a.get("ip") for a in subset.get("addresses") or []),
                sorted(a.get("ip") for a in subset.get("notReadyAddresses") or []),
                sorted(ports(subset.get("ports"))),
            )
            for subset in obj.get("subsets") or []
        ]
    else:
        view["addressType"] = obj.get("addressType")
        view["endpoints"] = [
            (list(e.get("addresses") or []), (e.get("conditions") or {}).get("ready"))
            for e in obj.get("endpoints") or []
        ]
        view["ports"] = ports(obj.get("ports"))
        view["ownerReferences"] = [
            (
                r.get("apiVersion"),
                r.get("kind"),
                r.get("name"),
                r.get("uid"),
                bool(r.get("controller")),
            )
            for r in metadata.get("ownerReferences") or []
        ]
    return view


def object_owner(obj: dict[str, Any]) -> str | None:
    """The exact id of the device an object belongs to.

    From the annotation; objects written before it existed (the original server's) carry
    the id only in their `device_id` label.
    """
    metadata = obj.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    if DEVICE_ID_ANNOTATION in annotations:
        return annotations[DEVICE_ID_ANNOTATION]
    return (metadata.get("labels") or {}).get("device_id")


def is_managed(obj: dict[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get("managed_by") == MANAGER


@dataclass(frozen=True)
class DevicePlan:
    """What the cluster should hold for one device."""

    device: Device
    service: str
    status: str
    publish: bool
    ready: bool
    # Why the device is not published ("" when it is); `failed` marks a problem the
    # operator must fix (a name collision), not a state such as "not healthy".
    problem: str = ""
    failed: bool = False

    @property
    def device_id(self) -> str:
        return self.device.device_id


def plan_device(device: Device, *, owner: str, policy: str) -> DevicePlan:
    """What the cluster should hold for `device`, whose name `owner` holds.

    `owner` is the id of the device registered first (created_at, then id) among those
    with the same name: see plan_devices.
    """
    name = service_name(device.device_id)
    status, _ = device_status(device)
    if owner != device.device_id:
        problem = (
            f"name collision: {name} is already used by device {owner}, which was registered first"
        )
        return DevicePlan(
            device, name, status, publish=False, ready=False, failed=True, problem=problem
        )
    if not device.ip_address:
        return DevicePlan(device, name, status, publish=False, ready=False, problem=NO_IP)
    if status == DeviceStatus.HEALTHY:
        return DevicePlan(device, name, status, publish=True, ready=True)
    if policy == "not-ready":
        return DevicePlan(device, name, status, publish=True, ready=False)
    return DevicePlan(device, name, status, publish=False, ready=False, problem=NOT_HEALTHY)


def plan_devices(devices: Iterable[Device], *, policy: str) -> list[DevicePlan]:
    """Decide, for every device given, its name and whether its objects should exist.

    Names are handed out in registration order (created_at, then id), over all devices
    whatever their health, so a name always stays with the same device: when two ids
    lower-case to one name, the device registered first keeps it and the other fails.
    A device's plan depends only on the devices with its name (see name_holder_id), so a
    plan of a few devices needs only those and the devices sharing their names.
    """
    claimed: dict[str, str] = {}
    plans = []
    for device in sorted(devices, key=lambda d: (d.created_at, d.device_id)):
        owner = claimed.setdefault(service_name(device.device_id), device.device_id)
        plans.append(plan_device(device, owner=owner, policy=policy))
    return sorted(plans, key=lambda plan: plan.device_id)


# Objects by (kind, name): what a reconcile compares, desired or actual.
ObjectKey = tuple[Kind, str]
Objects = dict[ObjectKey, dict[str, Any]]


def desired_objects(plans: Iterable[DevicePlan], namespace: str, *, mode: str) -> Objects:
    """Every object the published devices should have, the Service first for each device.

    Slices have no ownerReference here: a Service's uid exists only in a cluster.
    """
    return {
        (kind, plan.service): desired_object(
            kind, plan.device, namespace, mode=mode, ready=plan.ready
        )
        for plan in plans
        if plan.publish
        for kind in kinds_for(mode)
    }
