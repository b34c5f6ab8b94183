"""The Kubernetes bridge's operations: reconcile the cluster with the fleet, and the reads
and deletes behind the Kubernetes routes, the command, the admin and automatic syncs.

Reconcile is level-based: the desired objects come from the database (stored status, never
a probe), the actual ones from one list call per kind by the managed_by label; only the
difference is written (server-side apply) and managed objects nobody wants are deleted.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import yaml
from django.conf import settings
from django.utils import timezone

from devices.choices import DeviceStatus
from devices.models import Device
from devices.selectors import device_list
from edgeserver.metrics import K8S_SYNC_DURATION, K8S_SYNC_ITEMS, K8S_SYNC_RUNS
from k8sbridge.choices import SyncAction, SyncOutcome, SyncTrigger
from k8sbridge.client import KubeApi, KubeError, kube_api
from k8sbridge.models import SyncRun
from k8sbridge.objects import (
    ENDPOINTS,
    ENDPOINTSLICE,
    KINDS,
    PROMETHEUS_CREDENTIALS,
    SERVICE,
    DevicePlan,
    Kind,
    desired_object,
    desired_scrapeconfig,
    is_managed,
    kinds_for,
    object_owner,
    owned_fields,
    plan_devices,
    service_name,
)

logger = logging.getLogger(__name__)

# After this many calls in a row got no answer, the rest of a sync is not attempted: each
# would only wait for its own timeout.
UNANSWERED_LIMIT = 3
# Sync records kept; older ones are pruned when a new one is written.
RUNS_KEPT = 1000
# Verbs the bridge needs on each kind it writes, and on kinds it only cleans up.
WRITE_VERBS = ("get", "list", "create", "patch", "delete")
CLEANUP_VERBS = ("list", "delete")

Progress = Callable[[int, int], None]


class ClusterUnreachable(Exception):
    """The API server gave no answer to the calls a whole operation depends on."""


class _Refused(Exception):
    """An object the bridge may not touch is in the way."""


@dataclass
class ItemResult:
    """The outcome for one device (or one orphaned name) in a sync."""

    device_id: str
    service: str
    status: str
    error: str = ""
    actions: list[str] = field(default_factory=list)
    # The failure was a call the API server never answered (refused, timed out).
    unanswered: bool = False

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "device_id": self.device_id,
            "service": self.service,
            "status": self.status,
        }
        if self.status == "failed":
            body["error"] = self.error
        body["actions"] = list(self.actions)
        return body


@dataclass
class SyncResult:
    namespace: str
    dry_run: bool = False
    created: list[ItemResult] = field(default_factory=list)
    updated: list[ItemResult] = field(default_factory=list)
    unchanged: list[ItemResult] = field(default_factory=list)
    deleted: list[ItemResult] = field(default_factory=list)
    failed: list[ItemResult] = field(default_factory=list)
    # Devices in scope that should have no objects (not healthy, no IP), with why.
    not_published: list[ItemResult] = field(default_factory=list)
    total_healthy: int = 0
    # Problems that concern the whole sync (a kind that could not be listed).
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.errors

    def add(self, item: ItemResult) -> None:
        getattr(self, item.status).append(item)

    def items(self) -> list[ItemResult]:
        return [*self.created, *self.updated, *self.unchanged, *self.deleted, *self.failed]

    def item_for(self, device_id: str) -> ItemResult | None:
        for item in [*self.created, *self.updated, *self.unchanged, *self.failed]:
            if item.device_id == device_id:
                return item
        return None

    def as_dict(self) -> dict[str, Any]:
        def rows(items: list[ItemResult]) -> list[dict[str, Any]]:
            return [i.as_dict() for i in sorted(items, key=lambda i: (i.device_id, i.service))]

        return {
            "status": "synced",
            "namespace": self.namespace,
            "dry_run": self.dry_run,
            "created": rows(self.created),
            "updated": rows(self.updated),
            "unchanged": rows(self.unchanged),
            "deleted": rows(self.deleted),
            "failed": rows(self.failed),
            "total_healthy": self.total_healthy,
            "errors": list(self.errors),
            "warnings": list(self.warnings),
        }


# ---- reading the cluster ------------------------------------------------------------------


def _managed_objects(
    api: KubeApi, namespace: str, mode: str
) -> tuple[dict[Kind, dict[str, dict[str, Any]] | None], list[str], list[str]]:
    """One list call per kind. A kind that could not be listed maps to None.

    Returns (objects by kind and name, errors for kinds the mode writes, warnings for kinds
    it only cleans up). Raises ClusterUnreachable when the API server does not answer.
    """
    actual: dict[Kind, dict[str, dict[str, Any]] | None] = {}
    errors, warnings = [], []
    for kind in KINDS:
        try:
            items = api.list(kind, namespace, kind.selector)
        except KubeError as exc:
            if exc.unreachable:
                raise ClusterUnreachable(str(exc)) from exc
            actual[kind] = None
            message = f"could not list {kind.resource}: {exc}"
            if kind in kinds_for(mode):
                errors.append(message)
            else:
                warnings.append(f"{message} (left-over {kind.name} objects are not removed)")
            continue
        actual[kind] = {item["metadata"]["name"]: item for item in items}
    return actual, errors, warnings


def _devices() -> list[Device]:
    return list(device_list())


# ---- reconcile ----------------------------------------------------------------------------


def _write_device(
    api: KubeApi,
    plan: DevicePlan,
    namespace: str,
    mode: str,
    actual: dict[Kind, dict[str, dict[str, Any]] | None],
    dry_run: bool,
) -> ItemResult:
    """Make the cluster hold exactly this device's objects; write only what differs."""
    name = plan.service
    actions: list[str] = []
    service_uid: str | None = None
    try:
        for kind in kinds_for(mode):
            body = desired_object(
                kind, plan.device, namespace, mode=mode, ready=plan.ready, service_uid=service_uid
            )
            current = (actual[kind] or {}).get(name)
            if current is None:
                # Not among ours: an object of someone else's may carry the name.
                current = api.get(kind, namespace, name)
                if current is not None and not is_managed(current):
                    raise _Refused(
                        f"{kind.name} {namespace}/{name} exists and is not managed by "
                        "edge-metrics-server (no managed_by label); it was left untouched"
                    )
            if current is None:
                action = "create"
            elif owned_fields(kind, body) == owned_fields(kind, current):
                action = ""
            elif kind is ENDPOINTSLICE and current.get("addressType") != body["addressType"]:
                action = "replace"  # addressType is immutable
            else:
                action = "update"
            result = current
            if action:
                actions.append(f"{action} {kind.name} {name}")
                if not dry_run:
                    if action == "replace":
                        api.delete(kind, namespace, name)
                    result = api.apply(kind, body)
            if kind is SERVICE and result is not None:
                service_uid = result["metadata"].get("uid")
        for kind in KINDS:
            if kind in kinds_for(mode):
                continue
            stale = (actual[kind] or {}).get(name)
            if stale is not None and object_owner(stale) == plan.device_id:
                actions.append(f"delete {kind.name} {name}")
                if not dry_run:
                    api.delete(kind, namespace, name)
    except KubeError as exc:
        return ItemResult(plan.device_id, name, "failed", str(exc), actions,
                          unanswered=exc.unreachable)
    except _Refused as exc:
        return ItemResult(plan.device_id, name, "failed", str(exc), actions)
    if f"create Service {name}" in actions:
        status = "created"
    elif actions:
        status = "updated"
    else:
        status = "unchanged"
    return ItemResult(plan.device_id, name, status, "", actions)


def _delete_unwanted(
    api: KubeApi,
    namespace: str,
    actual: dict[Kind, dict[str, dict[str, Any]] | None],
    published: Collection[str],
    scope: Collection[str] | None,
    dry_run: bool,
    result: SyncResult,
) -> None:
    """Delete managed objects whose name no published device holds.

    Dependents first (slices, Endpoints, then the Service). A kind that could not be
    listed is left alone. In a scoped sync only objects of the scoped devices are deleted.
    """
    by_name: dict[str, ItemResult] = {}
    for kind in (ENDPOINTSLICE, ENDPOINTS, SERVICE):
        for name, obj in sorted((actual[kind] or {}).items()):
            if name in published:
                continue
            owner = object_owner(obj) or name
            if scope is not None and owner not in scope:
                continue
            item = by_name.setdefault(name, ItemResult(owner, name, "deleted"))
            if item.status == "failed":
                continue
            item.actions.append(f"delete {kind.name} {name}")
            if dry_run:
                continue
            try:
                api.delete(kind, namespace, name)
            except KubeError as exc:
                item.status, item.error = "failed", str(exc)
    for item in by_name.values():
        result.add(item)


def _reconcile(
    api: KubeApi,
    namespace: str,
    device_ids: Collection[str] | None,
    dry_run: bool,
    progress: Progress | None,
) -> SyncResult:
    mode = settings.K8S_ENDPOINTS_MODE
    plans = plan_devices(_devices(), policy=settings.K8S_UNHEALTHY_POLICY)
    scope = None if device_ids is None else set(device_ids)
    in_scope = [p for p in plans if scope is None or p.device_id in scope]
    result = SyncResult(namespace=namespace, dry_run=dry_run)
    result.total_healthy = sum(
        1 for p in in_scope if p.status == DeviceStatus.HEALTHY and p.device.ip_address
    )
    actual, errors, warnings = _managed_objects(api, namespace, mode)
    result.errors += errors
    result.warnings += warnings
    if errors:
        # Without the actual objects nothing can be compared, so nothing is written or
        # deleted; every device that should be published is reported as not synced.
        for plan in in_scope:
            if plan.publish or plan.failed:
                reason = plan.problem if plan.failed else "not synced: " + "; ".join(errors)
                result.add(ItemResult(plan.device_id, plan.service, "failed", reason))
        return result

    unanswered = 0
    for done, plan in enumerate(in_scope, start=1):
        if plan.failed:
            result.add(ItemResult(plan.device_id, plan.service, "failed", plan.problem))
        elif not plan.publish:
            result.not_published.append(
                ItemResult(plan.device_id, plan.service, "failed", plan.problem)
            )
        elif unanswered >= UNANSWERED_LIMIT:
            result.add(ItemResult(plan.device_id, plan.service, "failed",
                                  "not attempted: the Kubernetes API server stopped answering"))
        else:
            item = _write_device(api, plan, namespace, mode, actual, dry_run)
            unanswered = unanswered + 1 if item.unanswered else 0
            result.add(item)
        if progress is not None:
            progress(done, len(in_scope))
    published = {p.service for p in plans if p.publish}
    _delete_unwanted(api, namespace, actual, published, scope, dry_run, result)
    return result


def _record_run(
    *,
    action: str,
    trigger: str,
    namespace: str,
    scope: Collection[str] | None,
    started_at: datetime,
    outcome: str,
    result: SyncResult | None = None,
    errors: list[str] | None = None,
) -> None:
    lines = list(errors or [])
    counts: dict[str, int] = {}
    if result is not None:
        lines += result.errors
        lines += [f"{i.device_id} ({i.service}): {i.error}" for i in result.failed]
        counts = {
            "created": len(result.created),
            "updated": len(result.updated),
            "unchanged": len(result.unchanged),
            "deleted": len(result.deleted),
            "failed": len(result.failed),
            "total_healthy": result.total_healthy,
        }
    finished_at = timezone.now()
    K8S_SYNC_RUNS.labels(action=action, result=outcome).inc()
    K8S_SYNC_DURATION.observe((finished_at - started_at).total_seconds())
    for item_result, n in counts.items():
        if item_result != "total_healthy" and n:
            K8S_SYNC_ITEMS.labels(result=item_result).inc(n)
    SyncRun.objects.create(
        action=action,
        trigger=trigger,
        namespace=namespace,
        scope=", ".join(sorted(scope)) if scope is not None else "",
        started_at=started_at,
        finished_at=finished_at,
        outcome=outcome,
        errors=lines[:100],
        **counts,
    )
    stale = SyncRun.objects.order_by("-started_at", "-id").values_list("id", flat=True)[
        RUNS_KEPT:RUNS_KEPT + 500
    ]
    if stale:
        SyncRun.objects.filter(id__in=list(stale)).delete()


def cluster_sync(
    *,
    namespace: str,
    device_ids: Collection[str] | None = None,
    dry_run: bool = False,
    trigger: str = SyncTrigger.API,
    progress: Progress | None = None,
) -> SyncResult:
    """Make `namespace` hold the objects of the published devices and nothing else of ours.

    `device_ids` limits the sync to those devices (their objects are written or deleted;
    nobody else's are touched). `dry_run` reads but writes nothing; its result is the plan.
    Raises ClientUnavailable (no configuration) or ClusterUnreachable (no answer).
    """
    api = kube_api()
    started_at = timezone.now()
    try:
        result = _reconcile(api, namespace, device_ids, dry_run, progress)
    except ClusterUnreachable as exc:
        logger.warning("Kubernetes sync of %s failed: %s", namespace, exc)
        if not dry_run:
            _record_run(action=SyncAction.SYNC, trigger=trigger, namespace=namespace,
                        scope=device_ids, started_at=started_at,
                        outcome=SyncOutcome.UNREACHABLE, errors=[str(exc)])
        raise
    if not dry_run:
        _record_run(action=SyncAction.SYNC, trigger=trigger, namespace=namespace,
                    scope=device_ids, started_at=started_at,
                    outcome=SyncOutcome.OK if result.ok else SyncOutcome.FAILED, result=result)
    logger.info(
        "Kubernetes sync of %s%s: %d created, %d updated, %d unchanged, %d deleted, %d failed",
        namespace, " (dry run)" if dry_run else "", len(result.created), len(result.updated),
        len(result.unchanged), len(result.deleted), len(result.failed),
    )
    for item in result.failed:
        logger.warning("Kubernetes sync of %s failed: %s", item.device_id, item.error)
    return result


def device_sync(
    *, device: Device, namespace: str, trigger: str = SyncTrigger.API
) -> ItemResult:
    """Sync one device. A device that should not be published gets its objects removed and
    is reported as failed with why (`device is not healthy`, `no IP address registered`)."""
    result = cluster_sync(namespace=namespace, device_ids=[device.device_id], trigger=trigger)
    item = result.item_for(device.device_id)
    if item is not None:
        return item
    reason = next(
        (i.error for i in result.not_published if i.device_id == device.device_id),
        "device is not published",
    )
    deleted = [a for i in result.deleted if i.device_id == device.device_id for a in i.actions]
    return ItemResult(device.device_id, service_name(device.device_id), "failed", reason, deleted)


# ---- the other routes ---------------------------------------------------------------------


def _owned_by(obj: dict[str, Any] | None, device_id: str) -> dict[str, Any] | None:
    if obj is not None and is_managed(obj) and object_owner(obj) == device_id:
        return obj
    return None


def _device_name(device: Device) -> str:
    plan = next(
        p for p in plan_devices(_devices(), policy=settings.K8S_UNHEALTHY_POLICY)
        if p.device_id == device.device_id
    )
    return plan.service


def device_resources(*, device: Device, namespace: str) -> dict[str, Any]:
    """What the cluster holds for a device, read by name (three get calls)."""
    api = kube_api()
    name = _device_name(device)
    try:
        objects = {kind: api.get(kind, namespace, name) for kind in KINDS}
    except KubeError as exc:
        if exc.unreachable:
            raise ClusterUnreachable(str(exc)) from exc
        raise
    service, endpoints, endpointslice = (objects[k] for k in KINDS)
    ready, not_ready = [], []
    for subset in (endpoints or {}).get("subsets") or []:
        ports = [p.get("port") for p in subset.get("ports") or []] or [device.port]
        for port in ports:
            ready += [f"{a.get('ip')}:{port}" for a in subset.get("addresses") or []]
            not_ready += [f"{a.get('ip')}:{port}" for a in subset.get("notReadyAddresses") or []]

    def owner(obj: dict[str, Any] | None) -> str | None:
        return object_owner(obj) if obj is not None else None

    def managed(obj: dict[str, Any] | None) -> bool:
        return obj is not None and is_managed(obj)

    slice_endpoints = (endpointslice or {}).get("endpoints") or []
    return {
        "device_id": device.device_id,
        "service": {
            "name": name,
            "exists": service is not None,
            "managed": managed(service),
            "owner": owner(service),
            "cluster_ip": ((service or {}).get("spec") or {}).get("clusterIP"),
            "ports": [
                {"name": p.get("name"), "port": p.get("port")}
                for p in ((service or {}).get("spec") or {}).get("ports") or []
            ],
        },
        "endpoints": {
            "name": name,
            "exists": endpoints is not None,
            "managed": managed(endpoints),
            "owner": owner(endpoints),
            "ready_addresses": ready,
            "not_ready_addresses": not_ready,
        },
        "endpointslice": {
            "name": name,
            "exists": endpointslice is not None,
            "managed": managed(endpointslice),
            "owner": owner(endpointslice),
            "address_type": (endpointslice or {}).get("addressType"),
            "endpoints": [
                {
                    "addresses": list(e.get("addresses") or []),
                    "ready": (e.get("conditions") or {}).get("ready"),
                }
                for e in slice_endpoints
            ],
        },
        "prometheus_target": f"http://{name}.{namespace}.svc:{device.port}/metrics",
    }


def device_objects_delete(*, device: Device, namespace: str) -> ItemResult:
    """Delete a device's objects; objects not managed by us, or another device's, stay."""
    api = kube_api()
    name = _device_name(device)
    actions: list[str] = []
    refused: list[str] = []
    try:
        for kind in (ENDPOINTSLICE, ENDPOINTS, SERVICE):
            obj = api.get(kind, namespace, name)
            if obj is None:
                continue
            if _owned_by(obj, device.device_id) is None:
                owner = object_owner(obj) if is_managed(obj) else None
                refused.append(
                    f"{kind.name} {name} belongs to device {owner}" if owner
                    else f"{kind.name} {name} is not managed by edge-metrics-server"
                )
                continue
            if api.delete(kind, namespace, name):
                actions.append(f"delete {kind.name} {name}")
    except KubeError as exc:
        if exc.unreachable and not actions:
            raise ClusterUnreachable(str(exc)) from exc
        return ItemResult(device.device_id, name, "failed", str(exc), actions)
    if refused:
        return ItemResult(device.device_id, name, "failed",
                          "; ".join(refused) + "; left untouched", actions)
    return ItemResult(device.device_id, name, "deleted", "", actions)


def _in_sync(plan: DevicePlan, namespace: str, mode: str,
             actual: dict[Kind, dict[str, dict[str, Any]] | None]) -> bool:
    objects = {kind: _owned_by((actual[kind] or {}).get(plan.service), plan.device_id)
               for kind in KINDS}
    if not plan.publish:
        return all(obj is None for obj in objects.values())
    service_uid = None
    for kind in KINDS:
        obj = objects[kind]
        if kind not in kinds_for(mode):
            if obj is not None:
                return False
            continue
        if obj is None:
            return False
        body = desired_object(kind, plan.device, namespace, mode=mode, ready=plan.ready,
                              service_uid=service_uid)
        if owned_fields(kind, body) != owned_fields(kind, obj):
            return False
        if kind is SERVICE:
            service_uid = obj["metadata"].get("uid")
    return True


def cluster_status(*, namespace: str) -> dict[str, Any]:
    """Per device: which objects exist and whether the cluster matches what it should hold.

    `synced` counts registered devices whose objects are exactly as a sync would leave
    them (a device that should have none, and has none, is synced).
    """
    api = kube_api()
    mode = settings.K8S_ENDPOINTS_MODE
    actual, errors, warnings = _managed_objects(api, namespace, mode)
    plans = plan_devices(_devices(), policy=settings.K8S_UNHEALTHY_POLICY)
    registered = {p.device_id for p in plans}
    resources = []
    synced = 0
    for plan in plans:
        def exists(kind: Kind, plan: DevicePlan = plan) -> bool:
            obj = (actual[kind] or {}).get(plan.service)
            return _owned_by(obj, plan.device_id) is not None

        in_sync = not errors and _in_sync(plan, namespace, mode, actual)
        synced += in_sync
        resources.append({
            "device_id": plan.device_id,
            "service": plan.service,
            "service_exists": exists(SERVICE),
            "endpoints_exists": exists(ENDPOINTS),
            "endpointslice_exists": exists(ENDPOINTSLICE),
            "registered": True,
            "device_status": plan.status,
            "published": plan.publish,
            "in_sync": in_sync,
            **({"error": plan.problem} if plan.failed else {}),
        })
    orphans: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        for name, obj in (actual[kind] or {}).items():
            owner = object_owner(obj) or name
            if owner in registered:
                continue
            entry = orphans.setdefault(name, {
                "device_id": owner,
                "service": name,
                "service_exists": False,
                "endpoints_exists": False,
                "endpointslice_exists": False,
                "registered": False,
                "device_status": None,
                "published": False,
                "in_sync": False,
            })
            key = {SERVICE: "service_exists", ENDPOINTS: "endpoints_exists",
                   ENDPOINTSLICE: "endpointslice_exists"}[kind]
            entry[key] = True
    resources += sorted(orphans.values(), key=lambda r: r["service"])
    services = actual[SERVICE]
    return {
        "kubernetes_enabled": True,
        "namespace": namespace,
        "mode": mode,
        "unhealthy_policy": settings.K8S_UNHEALTHY_POLICY,
        "total_k8s_resources": len(services) if services is not None else 0,
        "total_registered_devices": len(plans),
        "synced": synced,
        "unsynced": len(plans) - synced,
        "resources": resources,
        "errors": errors + warnings,
    }


def cluster_health(*, namespace: str) -> dict[str, Any]:
    """Whether the API server answers and RBAC allows every call the configured mode makes.

    A namespace that cannot be read (a namespaced Role has no `get namespaces`) is
    reported, not fatal: the bridge never needs to read it.
    """
    api = kube_api()
    mode = settings.K8S_ENDPOINTS_MODE
    rbac: dict[str, str] = {}
    available = namespace_accessible = False
    try:
        api.read_namespace(namespace)
        available = namespace_accessible = True
        rbac["namespace"] = "ok"
    except KubeError as exc:
        available = not exc.unreachable
        rbac["namespace"] = f"error: {exc}"
    ready = available
    for kind in KINDS:
        needed = kind in kinds_for(mode)
        if not available:
            rbac[kind.resource] = "error: the Kubernetes API server did not answer"
            continue
        verbs = WRITE_VERBS if needed else CLEANUP_VERBS
        try:
            denied = [verb for verb in verbs if not api.can_i(verb, kind, namespace)]
        except KubeError as exc:
            available = available and not exc.unreachable
            rbac[kind.resource] = f"error: could not check permissions: {exc}"
            ready = ready and not needed
            continue
        if not denied:
            rbac[kind.resource] = "ok"
        elif needed:
            ready = False
            rbac[kind.resource] = (
                f"error: cannot {', '.join(denied)} {kind.resource} in namespace {namespace}"
            )
        else:
            rbac[kind.resource] = (
                f"not required (K8S_ENDPOINTS_MODE={mode}); cannot {', '.join(denied)} "
                f"{kind.resource}, so left-over {kind.name} objects are not removed"
            )
    return {
        "kubernetes_available": available,
        "client_initialized": True,
        "namespace_accessible": namespace_accessible,
        "namespace": namespace,
        "mode": mode,
        "api_server": api.host,
        "ready": ready,
        "rbac_permissions": rbac,
    }


def cluster_cleanup(
    *, namespace: str, dry_run: bool = False, trigger: str = SyncTrigger.API
) -> dict[str, Any]:
    """Delete every object labelled managed_by=edge-metrics-server in `namespace`."""
    api = kube_api()
    started_at = timezone.now()
    deleted: dict[Kind, list[str]] = {kind: [] for kind in KINDS}
    failed: list[dict[str, str]] = []
    errors: list[str] = []
    for kind in (ENDPOINTSLICE, ENDPOINTS, SERVICE):
        try:
            items = api.list(kind, namespace, kind.selector)
        except KubeError as exc:
            if exc.unreachable:
                if not dry_run:
                    _record_run(action=SyncAction.CLEANUP, trigger=trigger, namespace=namespace,
                                scope=None, started_at=started_at,
                                outcome=SyncOutcome.UNREACHABLE, errors=[str(exc)])
                raise ClusterUnreachable(str(exc)) from exc
            errors.append(f"could not list {kind.resource}: {exc}")
            continue
        for item in items:
            name = item["metadata"]["name"]
            if not dry_run:
                try:
                    api.delete(kind, namespace, name)
                except KubeError as exc:
                    failed.append({"kind": kind.name, "name": name, "error": str(exc)})
                    continue
            deleted[kind].append(name)
    if not dry_run:
        result = SyncResult(namespace=namespace, errors=errors)
        result.deleted = [ItemResult("", n, "deleted") for names in deleted.values() for n in names]
        result.failed = [ItemResult("", f["name"], "failed", f["error"]) for f in failed]
        _record_run(action=SyncAction.CLEANUP, trigger=trigger, namespace=namespace, scope=None,
                    started_at=started_at, result=result,
                    outcome=SyncOutcome.OK if result.ok else SyncOutcome.FAILED)
    return {
        "status": "cleaned",
        "namespace": namespace,
        "dry_run": dry_run,
        "deleted_services": sorted(deleted[SERVICE]),
        "deleted_endpoints": sorted(deleted[ENDPOINTS]),
        "deleted_endpointslices": sorted(deleted[ENDPOINTSLICE]),
        "failed": failed,
        "errors": errors,
    }


def manifests_yaml(*, namespace: str) -> str:
    """The objects a sync would write, as YAML for `kubectl apply -f` (no cluster needed).

    EndpointSlices carry no ownerReference: the Service's uid exists only in a cluster.
    """
    mode = settings.K8S_ENDPOINTS_MODE
    policy = settings.K8S_UNHEALTHY_POLICY
    plans = plan_devices(_devices(), policy=policy)
    published = [p for p in plans if p.publish]
    lines = [
        "# Kubernetes objects of the edge devices, generated by Edge Metrics Server",
        f"# Namespace: {namespace}",
        f"# K8S_ENDPOINTS_MODE={mode}, K8S_UNHEALTHY_POLICY={policy}",
        f"# Apply with: kubectl apply -n {namespace} -f <this file>",
    ]
    lines += [f"# Skipped {p.device_id}: {p.problem}" for p in plans if p.failed]
    if not published:
        lines.append("# No healthy devices: there is nothing to apply.")
        return "\n".join(lines) + "\n"
    documents = [
        desired_object(kind, plan.device, namespace, mode=mode, ready=plan.ready)
        for plan in published
        for kind in kinds_for(mode)
    ]
    return _yaml_stream(lines, documents)


def scrapeconfig_yaml(*, namespace: str) -> str:
    """A Prometheus Operator ScrapeConfig that discovers the devices through this server's
    `GET /prometheus/targets`, as YAML for `kubectl apply -f` (no cluster needed)."""
    authorize = settings.AUTH_MODE == "token"
    scrapeconfig = desired_scrapeconfig(
        namespace, server_url=settings.SERVER_URL, authorize=authorize
    )
    url = scrapeconfig["spec"]["httpSDConfigs"][0]["url"]
    lines = [
        "# Prometheus Operator ScrapeConfig for the edge devices, generated by Edge Metrics Server",
        f"# Namespace: {namespace}",
        f"# Prometheus reads the targets from {url} (SERVER_URL): it must be able to reach it.",
    ]
    if _loopback_host(settings.SERVER_URL):
        lines.append(
            "# Warning: SERVER_URL names this host itself; set it to the server's address as "
            "Prometheus reaches it (in a cluster: http://<service>.<namespace>.svc:<port>)."
        )
    if authorize:
        secret, key = PROMETHEUS_CREDENTIALS["name"], PROMETHEUS_CREDENTIALS["key"]
        lines += [
            "# AUTH_MODE=token: Prometheus sends an operator token, read from the Secret "
            f"{secret} (key {key}):",
            f"#   kubectl create secret generic {secret} -n {namespace} "
            f"--from-literal={key}=<operator token>",
            "# Needs Prometheus Operator 0.66 or later (ScrapeConfig with httpSDConfigs "
            "authorization).",
        ]
    else:
        lines.append("# Needs Prometheus Operator 0.65 or later (ScrapeConfig v1alpha1).")
    lines.append(f"# Apply with: kubectl apply -n {namespace} -f <this file>")
    return _yaml_stream(lines, [scrapeconfig])


def _loopback_host(url: str) -> bool:
    """Whether `url` names the host it is read on: useless to a Prometheus elsewhere."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _yaml_stream(comments: list[str], documents: list[dict[str, Any]]) -> str:
    """Comment lines, then each document after `---`: what the manifests route serves."""
    body = yaml.safe_dump_all(
        documents, explicit_start=True, sort_keys=False, default_flow_style=False
    )
    return "\n".join(comments) + "\n" + body
